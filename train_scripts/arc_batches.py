"""ARC training batches built on the training device: every trainable pair as tensors, augmented with tensor ops.

The ARC recipe (`run_multimodal.py --recipe arc`) trains on a few thousand pairs under random views, hundreds of
times each. Building those views one grid at a time through numpy and the processor would keep a GPU waiting, so
the pairs live on the device as padded tensors and each batch is drawn there:

1. a random dihedral transform and a random colour permutation (colour 0 fixed) per sample, the same for its
   input and its output (`processing.transforms` defines both; `tests/test_arc_batches.py` checks that this file
   agrees with it cell for cell);
2. a random whole-cell offset at which the input and the output, drawn at the same corner, both fit;
3. the input drawn one cell per token (`TRMImageProcessor.render_cell_labels`: the processor's own pixels), the
   output as the cell head's per-token targets (`cell_labels`), and the view as `augmentation_ids`.

The dataset the Trainer iterates holds only pair indices (`ArcPairIndices`); `TRMTrainer` turns each micro-batch of
indices into model inputs with `ArcPairBank.batch`, seeded by the optimizer step, so a resumed run draws the same
views as an uninterrupted one.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Sampler

from vision_trm.configuration.conventions import (
    ARC_VIEW_PARTS,
    BACKGROUND_CLASS,
    BORDER_CLASS,
    MODALITY_GRID,
    NUM_COLORS,
    NUM_DIHEDRAL_TRANSFORMS,
)

PADDING = -1  # outside a grid, in the padded [N, G, G] tensors (never a colour)


def parse_view_parts(text: str) -> tuple[str, ...]:
    """`"dihedral,translation"` -> `("dihedral", "translation")`; `"none"` -> `()`. Names outside `ARC_VIEW_PARTS` and
    repeated names are errors that name them."""
    if text.strip() == "none":
        return ()
    parts = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(set(parts) - set(ARC_VIEW_PARTS))
    if unknown:
        raise ValueError(f"{unknown} are not parts of a view; use a comma list of {ARC_VIEW_PARTS}, or none")
    if len(set(parts)) != len(parts) or not parts:
        raise ValueError(f"view parts {text!r}: name each of {ARC_VIEW_PARTS} at most once, or write none")
    return parts


class ArcPairBank:
    """The trainable ARC pairs as padded tensors: `inputs`, `outputs` `[N, G, G]` (`PADDING` outside each grid),
    `input_sizes`, `output_sizes` `[N, 2]`, `task_ids` `[N]`."""

    def __init__(self, pairs: list[dict], task_vocabulary: dict[str, int], max_grid_size: int,
                 task_canvas_cells: dict[str, int] | None = None):
        if not pairs:
            raise ValueError("no ARC pairs to train on")
        self.max_grid_size = max_grid_size
        self.inputs, self.input_sizes = _pad([pair["input"] for pair in pairs], max_grid_size)
        self.outputs, self.output_sizes = _pad([pair["output"] for pair in pairs], max_grid_size)
        # The colours (in `_pad`) and sizes are checked here, once, on the host, so that drawing a batch on the GPU
        # need not read values back (each read is a sync).
        self.largest_side = int(torch.cat([self.input_sizes, self.output_sizes]).max())
        missing = sorted({pair["task_name"] for pair in pairs} - set(task_vocabulary))
        if missing:
            raise ValueError(f"{len(missing)} ARC tasks have no task id, e.g. {missing[:3]}")
        self.task_ids = torch.tensor([task_vocabulary[pair["task_name"]] for pair in pairs], dtype=torch.long)
        self.canvas_cells = None
        if task_canvas_cells is not None:
            # A cropped cell canvas (`crop_cell_canvas`): the task's canvas (`processing.grids.task_canvas_cells`),
            # grown where this pair is larger than every grid its task shows before answering.
            unsized = sorted({pair["task_name"] for pair in pairs} - set(task_canvas_cells))
            if unsized:
                raise ValueError(f"{len(unsized)} ARC tasks have no canvas size, e.g. {unsized[:3]}")
            task_cells = torch.tensor([task_canvas_cells[pair["task_name"]] for pair in pairs], dtype=torch.long)
            own = torch.maximum(self.input_sizes, self.output_sizes).amax(dim=1) + 2
            self.canvas_cells = torch.maximum(task_cells, own)

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def to(self, device) -> "ArcPairBank":
        for name in ("inputs", "outputs", "input_sizes", "output_sizes", "task_ids", "canvas_cells"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name).to(device))
        return self

    @torch.no_grad()
    def batch(self, indices: torch.Tensor, image_processor, generator: torch.Generator, augment: bool = True,
              copy_fraction: float = 0.0, canvas_slack: int = 0, view_parts: tuple[str, ...] = ARC_VIEW_PARTS,
              views: torch.Tensor | None = None) -> dict:
        """Model inputs and `cell_labels` of the pairs `indices`, each under a random view and offset (the identity
        view at the top-left corner with `augment=False`). `view_parts`: which parts of the view are drawn at
        random when augmenting (`conventions.ARC_VIEW_PARTS`; the recipe passes `TRMConfig.arc_view_parts`).
        `views`: a `[V, 11]` table of `augmentation_ids` rows (`conventions.standard_arc_views`; the recipe passes it
        for `TRMConfig.num_task_views` or `arc_training_views`): each sample's dihedral transform and colours are
        then one of its rows, drawn uniformly, instead of drawn at random part by part (the placement is still
        drawn with "translation").

        With `canvas_cells` (a cropped cell canvas) the batch's canvas is the largest of its pairs' canvases plus a
        random `0..canvas_slack` cells (room for translation; never beyond the full canvas), so batch pairs of
        similar canvases together (`SimilarCanvasSampler`).

        `copy_fraction`: the share of rows (drawn at random) whose target is their own input, under task id 0 ("no
        task"). Copying is the function most ARC outputs start from; these rows teach it outright, and task 0 keeps
        it apart from every task's own rule."""
        unknown = sorted(set(view_parts) - set(ARC_VIEW_PARTS))
        if unknown:
            raise ValueError(f"view_parts {unknown} are not parts of a view; the parts are {ARC_VIEW_PARTS}")
        parts = set(view_parts) if augment else set()
        indices = indices.to(self.inputs.device)
        batch = indices.shape[0]
        inputs, outputs = self.inputs[indices], self.outputs[indices]
        input_sizes, output_sizes = self.input_sizes[indices], self.output_sizes[indices]
        task_ids = self.task_ids[indices]
        if copy_fraction > 0:
            copy = torch.rand(batch, generator=generator, device=indices.device) < copy_fraction
            outputs = torch.where(copy[:, None, None], inputs, outputs)
            output_sizes = torch.where(copy[:, None], input_sizes, output_sizes)
            task_ids = torch.where(copy, 0, task_ids)
        dihedral = torch.zeros(batch, dtype=torch.long, device=indices.device)
        permutation = torch.arange(NUM_COLORS, device=indices.device).expand(batch, -1)
        if views is not None and augment:
            table = views.to(indices.device)
            drawn = table[torch.randint(0, table.shape[0], (batch,), generator=generator, device=indices.device)]
            dihedral, permutation = drawn[:, 0], drawn[:, 1:]
        else:
            if "dihedral" in parts:
                dihedral = torch.randint(0, NUM_DIHEDRAL_TRANSFORMS, (batch,), generator=generator,
                                         device=indices.device)
            if "colours" in parts:
                permutation = random_colour_permutations(batch, generator)
        inputs, input_sizes = transform_grids(inputs, input_sizes, dihedral, permutation)
        outputs, output_sizes = transform_grids(outputs, output_sizes, dihedral, permutation)
        side = image_processor.tokens_per_side
        if self.largest_side + 2 > side:  # on the host: every pair's grids with their frame fit the canvas
            raise ValueError(f"a grid of side {self.largest_side} with its frame does not fit {side} cells")
        if self.canvas_cells is not None:  # each pair's canvas holds its own grids with their frame
            slack = int(torch.randint(0, canvas_slack + 1, (1,), generator=generator, device=indices.device)) \
                if "translation" in parts and canvas_slack else 0
            side = min(side, int(self.canvas_cells[indices].max()) + slack)
        corner = random_corners(torch.maximum(input_sizes, output_sizes), side, generator, "translation" in parts,
                                check_fits=False)
        # The pairs' colours were checked when the bank was built, so the maps need no check on the device.
        return {
            "pixel_values": image_processor.render_cell_labels(cell_maps(inputs, input_sizes, corner, side),
                                                               check_values=False),
            "modality_ids": torch.full((batch,), MODALITY_GRID, dtype=torch.long, device=indices.device),
            "task_ids": task_ids,
            "augmentation_ids": torch.cat([dihedral[:, None], permutation], dim=1),
            "cell_labels": cell_maps(outputs, output_sizes, corner, side),
        }


class ArcPairIndices(Dataset):
    """What the Trainer's dataloader iterates in the ARC recipe: `{"arc_pair_index": i}` for every pair (the
    distributed sampler shards it across processes as any dataset)."""

    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        return {"arc_pair_index": index}


class SimilarCanvasSampler(Sampler):
    """Pair indices in batches of similar cropped canvases: each epoch, a random permutation sorted (stably) by
    canvas size, cut into batches of `batch_size`, the batches in random order. A batch's canvas is its largest
    pair's, so mixing a 5 x 5 task with a 30 x 30 one would spend 1,024 tokens on both.

    Seeded by `(seed, epoch)`; the Trainer's dataloader calls `set_epoch`, so a resumed run draws the same order.
    """

    def __init__(self, canvas_cells: torch.Tensor, batch_size: int, seed: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.canvas_cells = canvas_cells.cpu()
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.canvas_cells)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        order = torch.randperm(len(self.canvas_cells), generator=generator)
        order = order[torch.argsort(self.canvas_cells[order], stable=True)]
        batches = list(order.split(self.batch_size))
        for index in torch.randperm(len(batches), generator=generator).tolist():
            yield from batches[index].tolist()


def collate_pair_indices(rows: list[dict]) -> dict:
    return {"arc_pair_index": torch.tensor([row["arc_pair_index"] for row in rows], dtype=torch.long)}


# ------------------------------------------------------------------------------------------------ tensor ops
def _pad(grids: list, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    padded = torch.full((len(grids), side, side), PADDING, dtype=torch.long)
    sizes = torch.zeros((len(grids), 2), dtype=torch.long)
    for index, grid in enumerate(grids):
        grid = torch.as_tensor(grid, dtype=torch.long)
        if grid.dim() != 2 or grid.shape[0] > side or grid.shape[1] > side:
            raise ValueError(f"ARC pair {index}: grid of shape {tuple(grid.shape)} does not fit {side} x {side}")
        if grid.numel() and (int(grid.min()) < 0 or int(grid.max()) >= NUM_COLORS):
            raise ValueError(f"ARC pair {index}: grid holds colours outside 0..{NUM_COLORS - 1}")
        padded[index, : grid.shape[0], : grid.shape[1]] = grid
        sizes[index] = torch.tensor(grid.shape)
    return padded, sizes


def random_colour_permutations(batch: int, generator: torch.Generator) -> torch.Tensor:
    """`[batch, 10]`: colour 0 fixed, colours 1..9 shuffled per row."""
    device = generator.device
    shuffled = torch.rand((batch, NUM_COLORS - 1), generator=generator, device=device).argsort(dim=1) + 1
    return torch.cat([torch.zeros((batch, 1), dtype=torch.long, device=device), shuffled], dim=1)


def transform_grids(grids: torch.Tensor, sizes: torch.Tensor, dihedral: torch.Tensor, permutation: torch.Tensor):
    """`processing.transforms.transform_grid` on a batch of top-left-padded grids: colours first, then dihedral
    transform `dihedral[b]` (a left-right flip when >= 4, then `dihedral % 4` counter-clockwise quarter turns), the
    result moved back to the top-left corner. Returns `(grids, sizes)`."""
    coloured = torch.where(grids >= 0, permutation.gather(1, grids.clamp(min=0).flatten(1)).view_as(grids), PADDING)
    # All eight transforms of the whole padded square (a few thousand small ints each), then each row's own.
    flipped = coloured.flip(2)
    candidates = torch.stack([torch.rot90(flipped if d >= 4 else coloured, d % 4, dims=(1, 2)) for d in range(8)])
    moved = candidates[dihedral, torch.arange(grids.shape[0], device=grids.device)]
    quarter_turn = (dihedral % 2 == 1)[:, None]
    new_sizes = torch.where(quarter_turn, sizes.flip(1), sizes)
    return _to_top_left(moved), new_sizes


def _to_top_left(grids: torch.Tensor) -> torch.Tensor:
    """Shifts each grid's cells (everything but `PADDING`) so that its box starts at row 0, column 0."""
    side = grids.shape[-1]
    inside = grids >= 0
    top = inside.any(dim=2).int().argmax(dim=1)
    left = inside.any(dim=1).int().argmax(dim=1)
    positions = torch.arange(side, device=grids.device)
    rows = (positions[None, :] + top[:, None]) % side
    cols = (positions[None, :] + left[:, None]) % side
    batch = torch.arange(grids.shape[0], device=grids.device)[:, None, None]
    return grids[batch, rows[:, :, None], cols[:, None, :]]


def random_corners(sizes: torch.Tensor, side: int, generator: torch.Generator, augment: bool = True,
                   check_fits: bool = True) -> torch.Tensor:
    """`[B, 2]` whole-cell (top, left) frame corners at which grids of `sizes` (plus their frame) fit `side`.
    `check_fits=False` skips the check (a GPU sync) for a caller that has made sure on the host."""
    room = side - sizes - 2
    if check_fits and (room < 0).any():
        raise ValueError(f"a grid of size {sizes[(room < 0).any(1)][0].tolist()} with its frame does not fit {side} cells")
    if not augment:
        return torch.zeros_like(sizes)
    draw = torch.rand(sizes.shape, generator=generator, device=sizes.device)
    return (draw * (room + 1)).floor().long()


def cell_maps(grids: torch.Tensor, sizes: torch.Tensor, corners: torch.Tensor, side: int) -> torch.Tensor:
    """`[B, side, side]` cell classes (`processing.grids.cell_label_map` on a batch): each grid's colours with its
    one-cell frame's corner at `corners`, `BORDER_CLASS` on the frame, `BACKGROUND_CLASS` elsewhere."""
    positions = torch.arange(side, device=grids.device)
    row = positions[None, :] - corners[:, :1] - 1                              # grid row of each token row [B, T]
    col = positions[None, :] - corners[:, 1:] - 1
    in_rows = (row >= 0) & (row < sizes[:, :1])
    in_cols = (col >= 0) & (col < sizes[:, 1:])
    framed_rows = (row >= -1) & (row <= sizes[:, :1])
    framed_cols = (col >= -1) & (col <= sizes[:, 1:])
    batch = torch.arange(grids.shape[0], device=grids.device)[:, None, None]
    colours = grids[batch, row.clamp(0, grids.shape[1] - 1)[:, :, None], col.clamp(0, grids.shape[2] - 1)[:, None, :]]
    inside = in_rows[:, :, None] & in_cols[:, None, :]
    framed = framed_rows[:, :, None] & framed_cols[:, None, :]
    layout = torch.where(framed, BORDER_CLASS, BACKGROUND_CLASS)
    return torch.where(inside, colours, layout)
