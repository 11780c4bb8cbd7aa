"""The small model configs and batches that the model, loss, seam, Hub and CLI tests share (also as fixtures in
conftest.py)."""

import torch
from transformers import CLIPVisionConfig

from vision_trm.configuration import IGNORE_INDEX, MAX_GRID_SIZE, TRMConfig


def small_model_config(**overrides) -> TRMConfig:
    """The tiny preset shrunk further: 32 px canvas (16 tokens), width 32, 5 classes, 4 task ids, 2 steps."""
    values = dict(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_attention_heads=2,
        vit_num_layers=1,
        adapter_num_layers=1,
        concept_vocab_size=16,
        num_capsules=4,
        planner_num_paths=3,
        planner_num_thoughts=2,
        max_text_length=16,
        num_labels=5,
        num_task_ids=4,
        deep_supervision_steps=2,
    )
    values.update(overrides)
    return TRMConfig.from_preset("tiny", **values)


def small_clip_config(**overrides) -> TRMConfig:
    """`small_model_config` with a one-layer CLIP tower, so that both perception paths and the fusion exist."""
    clip = CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8
    )
    return small_model_config(pretrained_tower="clip", vision_config=clip.to_dict(), **overrides)


def model_batch(config: TRMConfig, batch: int = 3, seed: int = 0) -> tuple[dict, dict]:
    """`(inputs, labels)` of a mixed batch: row 0 an ARC grid with a 3x4 target (task 1), row 1 an image with class
    3, row 2 a text with a decoder target. `inputs` holds the model inputs, `labels` the three label arrays."""
    generator = torch.Generator().manual_seed(seed)
    grid_labels = torch.full((batch, MAX_GRID_SIZE, MAX_GRID_SIZE), IGNORE_INDEX, dtype=torch.long)
    grid_labels[0, :3, :4] = torch.randint(0, 10, (3, 4), generator=generator)
    text = torch.randint(3, config.text_vocab_size, (batch, 8), generator=generator)
    text_labels = torch.full_like(text, IGNORE_INDEX)
    text_labels[2] = text[2]
    inputs = {
        "pixel_values": torch.randn(batch, 3, config.image_size, config.image_size, generator=generator),
        "modality_ids": torch.tensor([2, 1, 0])[:batch],
        "task_ids": torch.tensor([1, 0, 0])[:batch],
        "decoder_input_ids": text,
        "decoder_attention_mask": torch.ones_like(text),
    }
    labels = {
        "labels": torch.tensor([IGNORE_INDEX, 3, IGNORE_INDEX])[:batch],
        "grid_labels": grid_labels,
        "text_labels": text_labels,
    }
    return inputs, labels


def make_grid_labels(sizes, size=30):
    """`grid_labels` [len(sizes), size, size]: a random grid of each (height, width) top-left, IGNORE_INDEX elsewhere
    (a height of 0: no target)."""
    labels = torch.full((len(sizes), size, size), IGNORE_INDEX, dtype=torch.long)
    for index, (height, width) in enumerate(sizes):
        if height:
            labels[index, :height, :width] = torch.randint(0, 10, (height, width))
    return labels
