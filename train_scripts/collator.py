"""Mixed-batch collator: raw composite rows (grids, images, text) -> model inputs, through the `TRMProcessor`.

Rows keep raw fields (see `data_sources`), so the Trainer must run with `remove_unused_columns=False`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

MODALITY_TEXT, MODALITY_IMAGE, MODALITY_GRID = 0, 1, 2

MODEL_INPUT_NAMES = (
    "pixel_values", "modality_ids", "task_ids", "grid_sizes", "labels", "grid_labels", "decoder_input_ids",
    "decoder_attention_mask", "text_labels",
)


def row_to_input(row):
    """The processor input of one composite row: a grid (list of rows), a PIL image or a string."""
    modality = int(row["modality"])
    if modality == MODALITY_GRID:
        return [list(map(int, r)) for r in row["input_grid"]]
    if modality == MODALITY_IMAGE:
        array = np.frombuffer(row["image"], dtype=np.uint8).reshape(row["image_shape"])
        return Image.fromarray(array, mode="L" if array.ndim == 2 else "RGB")
    if modality == MODALITY_TEXT:
        return row["text"]
    raise ValueError(f"unknown modality {modality} in row from {row.get('source')!r}")


@dataclass
class MultimodalCollator:
    """Calls `processor(inputs, labels=..., targets=..., text_targets=...)` on a list of composite rows.

    `task_ids` come from the rows (the composite's task vocabulary), whatever the processor infers.
    `keep_sources=True` adds `row_sources` (a list of strings, popped by the trainer before the forward) so that a
    NaN guard can name what was in the failing batch.
    """

    processor: object
    keep_sources: bool = False
    random_placement: bool = False  # grid scale / translation augmentation, seeded from the batch's content
    seed: int = 0
    input_names: tuple = field(default=MODEL_INPUT_NAMES)

    def __call__(self, rows):
        inputs, labels, targets, text_targets = [], [], [], []
        for row in rows:
            modality = int(row["modality"])
            inputs.append(row_to_input(row))
            labels.append(int(row["label"]) if row.get("label", -100) is not None else -100)
            targets.append([list(map(int, r)) for r in row["output_grid"]]
                           if modality == MODALITY_GRID and row.get("output_grid") else None)
            text_targets.append(row["text_target"] if modality == MODALITY_TEXT and row.get("text_target") else None)
        placement = self._placement(rows)
        encoded = self.processor(
            inputs,
            labels=labels,
            targets=targets,
            text_targets=text_targets if any(t is not None for t in text_targets) else None,
            return_tensors="pt",
            **placement,
        )
        batch = {name: encoded[name] for name in self.input_names if name in encoded and encoded[name] is not None}
        batch["task_ids"] = torch.tensor([int(row.get("task_id", 0) or 0) for row in rows], dtype=torch.long)
        batch["modality_ids"] = torch.tensor([int(row["modality"]) for row in rows], dtype=torch.long)
        if "labels" not in batch:
            batch["labels"] = torch.tensor(labels, dtype=torch.long)
        if self.keep_sources:
            batch["row_sources"] = [row.get("source", "") for row in rows]
        return batch

    def _placement(self, rows) -> dict:
        """The placement seed is a hash of the batch's rows, not a draw from a global RNG: the dataloader collates
        one batch ahead of the checkpoint that restores RNG states, so a global draw would break exact resume."""
        if not self.random_placement:
            return {}
        digest = hashlib.sha256(str(self.seed).encode())
        for row in rows:
            digest.update(repr((row.get("source"), row.get("input_grid"), row.get("text"), row.get("image"))).encode())
        return {"random_placement": True, "seed": int.from_bytes(digest.digest()[:4], "little")}
