"""Data of the experiments: Fashion-MNIST and KJV rows from the product's composite builder, batches through the
product's collator, and the held-out evaluations (accuracy and perplexity per supervision step).

The composite is built once (cached by `build_composite`, data seed 0, so every arm and seed sees the same pools);
a training seed changes the model's initialisation and the order of the batches, never the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from vision_trm.configuration.conventions import IGNORE_INDEX, MODALITY_IMAGE, MODALITY_TEXT, MODEL_INPUT_NAMES
from vision_trm.modeling_trm.losses import shifted_text_cross_entropy

from ..collator import MultimodalCollator
from ..data_sources import CompositeSpec, build_composite

# The pools every experiment draws from (CPU and GPU scale: 12,000 training rows per source, 1,000 held-out rows
# each; the test scale uses a few dozen).
POOL_SPEC = dict(sources=("fashion_mnist", "kjv"), weights=(0.5, 0.5), seed=0)
TEXT_TARGET_CHARS = 24  # a shorter continuation than the main job's 48: the decoder is most of a CPU step


@dataclass
class Pools:
    train_images: list
    train_texts: list
    test_images: list
    test_texts: list


@lru_cache(maxsize=2)
def load_pools(samples_per_source: int = 12000, eval_samples: int = 1000) -> Pools:
    """Fashion-MNIST and KJV rows (raw composite rows: image bytes, text and its continuation), built by the
    product's `build_composite` (cached where it caches: `$VISION_TRM_DATA_CACHE` or ~/.cache/vision_trm)."""
    spec = CompositeSpec(**POOL_SPEC, max_samples_per_source=samples_per_source, max_eval_samples=eval_samples,
                         text_target_chars=TEXT_TARGET_CHARS)
    data, _ = build_composite(spec)
    train = data["train"].to_list()
    if not train:
        raise ValueError(f"the composite built from {spec} has no training rows")
    return Pools(
        train_images=[row for row in train if row["modality"] == MODALITY_IMAGE],
        train_texts=[row for row in train if row["modality"] == MODALITY_TEXT],
        test_images=data["fashion_mnist_test"].to_list(),
        test_texts=data["kjv_test"].to_list(),
    )


class MixedBatches:
    """`next_batch(step)`: `batch_size` rows drawn (seeded) from the pools with the given modality fractions,
    collated by the product's `MultimodalCollator` into the model's keyword inputs."""

    def __init__(self, processor, pools: Pools, batch_size: int, seed: int, image_fraction: float = 0.5):
        if not 0.0 <= image_fraction <= 1.0:
            raise ValueError(f"image_fraction must lie in [0, 1], got {image_fraction}")
        self.collator = MultimodalCollator(processor)
        self.pools = pools
        self.batch_size = batch_size
        self.num_images = round(batch_size * image_fraction)
        self.rng = np.random.default_rng(seed)

    def rows(self) -> list:
        images = [self.pools.train_images[i] for i in self.rng.integers(len(self.pools.train_images), size=self.num_images)]
        texts = [self.pools.train_texts[i]
                 for i in self.rng.integers(len(self.pools.train_texts), size=self.batch_size - self.num_images)]
        return images + texts

    def __call__(self, step: int) -> dict:
        return self.collator(self.rows())


def _batches(rows, batch_size: int):
    for start in range(0, len(rows), batch_size):
        yield rows[start:start + batch_size]


def model_inputs(batch: dict, device) -> dict:
    return {name: batch[name].to(device) for name in MODEL_INPUT_NAMES if name in batch}


@torch.no_grad()
def evaluate_images(model, processor, rows, batch_size: int = 100, transform=None) -> dict:
    """Held-out classification accuracy at each sample's halting step and after every supervision step.

    `transform(batch) -> batch` may change the inputs first (the ablations use it)."""
    collator = MultimodalCollator(processor)
    device = next(model.parameters()).device
    right = total = 0
    per_step_right = None
    for chunk in _batches(rows, batch_size):
        batch = collator(chunk)
        if transform is not None:
            batch = transform(batch)
        outputs = model(**model_inputs(batch, device))
        labels = batch["labels"].to(device)
        right += int((outputs.class_logits.argmax(-1) == labels).sum())
        total += len(chunk)
        steps = (outputs.step_class_predictions == labels[:, None]).sum(0).double()
        per_step_right = steps if per_step_right is None else per_step_right[: len(steps)] + steps[: len(per_step_right)]
    results = {"image_accuracy": right / max(total, 1)}
    for index, value in enumerate(per_step_right.tolist()):
        results[f"image_accuracy_step{index + 1}"] = value / max(total, 1)
    return results


@torch.no_grad()
def evaluate_texts(model, processor, rows, batch_size: int = 50) -> dict:
    """Held-out perplexity per byte of the continuation (KJV test books), at the halting step and per step."""
    collator = MultimodalCollator(processor)
    device = next(model.parameters()).device
    nll = tokens = 0.0
    per_step_nll = None
    for chunk in _batches(rows, batch_size):
        batch = collator(chunk)
        outputs = model(**model_inputs(batch, device))
        labels = batch["text_labels"].to(device)
        row_nll, row_tokens = shifted_text_cross_entropy(outputs.text_logits, labels)
        nll += float(row_nll.sum())
        tokens += float(row_tokens.sum())
        steps = torch.stack([shifted_text_cross_entropy(outputs.step_text_logits[:, s], labels)[0].sum()
                             for s in range(outputs.step_text_logits.shape[1])]).double()
        per_step_nll = steps if per_step_nll is None else per_step_nll[: len(steps)] + steps[: len(per_step_nll)]
    results = {"text_perplexity": math.exp(nll / max(tokens, 1))}
    for index, value in enumerate(per_step_nll.tolist()):
        results[f"text_perplexity_step{index + 1}"] = math.exp(value / max(tokens, 1))
    return results


def blank_text_labels(batch: dict) -> dict:
    """The same batch with no text targets (image-only evaluation needs no decoder run)."""
    return {k: v for k, v in batch.items() if k not in ("decoder_input_ids", "decoder_attention_mask", "text_labels")}


def ignore_labels_like(labels: torch.Tensor) -> torch.Tensor:
    return torch.full_like(labels, IGNORE_INDEX)
