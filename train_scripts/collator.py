"""Mixed-batch collator: raw composite rows (grids, images, text) -> model inputs and labels, through the processor.

Rows keep raw fields (see `data_sources`), so the Trainer must run with `remove_unused_columns=False`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from vision_trm.configuration.conventions import (
    ARC_VIEW_PARTS,
    IDENTITY_AUGMENTATION,
    IGNORE_INDEX,
    LABEL_NAMES,
    MODALITY_GRID,
    MODALITY_IMAGE,
    MODALITY_TEXT,
    MODEL_INPUT_NAMES,
)
from vision_trm.processing.transforms import transform_grid


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


def shown_view(augmentation, view_parts=ARC_VIEW_PARTS):
    """The view `(dihedral, permutation)` a row is shown in: its named `augmentation` (`[dihedral, *permutation]`)
    less the parts a model is not trained to see at random (`TRMConfig.arc_view_parts`: without `"dihedral"` the
    identity transform, without `"colours"` the identity permutation); None for a row without a view."""
    if not augmentation:
        return None
    dihedral, permutation = augmentation[0], list(augmentation[1:])
    if "dihedral" not in view_parts:
        dihedral = 0
    if "colours" not in view_parts:
        permutation = list(IDENTITY_AUGMENTATION[1:])
    return dihedral, permutation


def _grid_as_shown(row, view_parts):
    """A row's input grid in the view it is shown in (the stored grid for rows without one): the placement seed is a
    hash of what the batch shows, the same for a pair stored in its view or stored as is with the view named."""
    grid, view = row.get("input_grid"), shown_view(row.get("augmentation"), view_parts)
    if view is None or not grid:
        return grid
    return transform_grid(grid, view[0], np.array(view[1])).tolist()


@dataclass
class MultimodalCollator:
    """Calls `processor(inputs, labels=..., grid_targets=..., text_targets=..., task_ids=..., augmentations=...)` on
    composite rows and keeps `names` (the model's inputs and labels; `("pixel_values",)` for N2N pre-training).

    `keep_sources=True` adds `row_sources` (a list of strings, popped by the trainer before the forward) so that a
    NaN guard can name what was in the failing batch.
    """

    processor: object
    keep_sources: bool = False
    random_placement: bool = False  # grid scale / translation augmentation, seeded from the batch's content
    seed: int = 0
    names: tuple = field(default=MODEL_INPUT_NAMES + LABEL_NAMES)
    # The parts of an ARC row's view shown (the model's `config.arc_view_parts`); "translation" allows the random
    # placement of grids.
    view_parts: tuple = ARC_VIEW_PARTS

    def __call__(self, rows):
        inputs = [row_to_input(row) for row in rows]
        grid_targets = [row["output_grid"] if int(row["modality"]) == MODALITY_GRID and row.get("output_grid")
                        else None for row in rows]
        # A text row's continuation, or an image row's program (image -> code); empty for every other row.
        text_targets = [row["text_target"] if row.get("text_target") else None for row in rows]
        views = [shown_view(row.get("augmentation"), self.view_parts) for row in rows]
        encoded = self.processor(
            inputs,
            labels=[row.get("label", IGNORE_INDEX) for row in rows],
            grid_targets=grid_targets,
            text_targets=text_targets if any(t is not None for t in text_targets) else None,
            # An ARC row's task id; otherwise the id of the row's task_name (an image-to-code prompt), else 0.
            task_ids=[int(row.get("task_id") or 0) or self.processor.task_id_of(row.get("task_name") or None)
                      for row in rows],
            # An ARC row's view: the processor draws the pair in it and returns `augmentation_ids`.
            augmentations=views if any(view is not None for view in views) else None,
            return_tensors="pt",
            **self._placement(rows),
            **self._canvas(rows),
        )
        batch = {name: encoded[name] for name in self.names if name in encoded}
        if self.keep_sources:
            batch["row_sources"] = [row.get("source", "") for row in rows]
        return batch

    @staticmethod
    def _canvas(rows) -> dict:
        """ARC rows of a model with `crop_cell_canvas` carry their task's `canvas_cells`; a batch takes the largest."""
        cells = [row["canvas_cells"] for row in rows if row.get("canvas_cells")]
        return {"canvas_cells": max(cells)} if cells else {}

    def _placement(self, rows) -> dict:
        """The placement seed is a hash of the batch's rows, not a draw from a global RNG: the dataloader collates
        one batch ahead of the checkpoint that restores RNG states, so a global draw would break exact resume."""
        if not self.random_placement or "translation" not in self.view_parts:
            return {}
        digest = hashlib.sha256(str(self.seed).encode())
        for row in rows:
            digest.update(repr((row.get("source"), _grid_as_shown(row, self.view_parts), row.get("text"),
                                row.get("image"))).encode())
        return {"random_placement": True, "seed": int.from_bytes(digest.digest()[:4], "little")}
