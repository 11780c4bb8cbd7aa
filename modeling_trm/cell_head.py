"""The per-token cell head (`grid_head_type="cells"`): one ARC cell per token, the output drawn where the input is.

With the processor's cell-aligned layout every token of the `T x T` token grid is exactly one cell of the canvas:
a colour, the one-cell frame (`BORDER_CLASS`) around the grid, or the background (`BACKGROUND_CLASS`). The head
classifies each of the recursion's answer tokens into those 12 classes, so copying the input is a per-token identity
(no query has to search for "its" cell). The output grid's size and position are where the predicted frame lands;
`decode_cell_logits` finds them exactly, as the best-scoring box over every position and size.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from ..configuration.conventions import BACKGROUND_CLASS, BORDER_CLASS, IGNORE_INDEX, NUM_CELL_CLASSES, NUM_COLORS

# Decoding scores every box in a chunk of samples at once, `[chunk, K, K]` float64 (K = 465 (top, height) pairs at
# T = 32, G = 30): chunks hold at most this many scores, which bounds the memory (~128 MiB) whatever the batch.
_DECODE_CHUNK_SCORES = 1 << 24


class CellHead(nn.Module):
    """LayerNorm + Linear(hidden -> k * k * 12) on each answer token: `[batch, T * k, T * k, NUM_CELL_CLASSES]`
    logits, `k = cells_per_token` (1 in the ARC presets: one token, one cell).

    The answer state is `[batch, prefix + T * T, hidden]`; the prefix tokens (task / modality) are dropped, the last
    `T * T` tokens are the token grid in row-major order (the ViT's patch order), each writing the `k x k` cells its
    own patch shows.
    """

    def __init__(self, config):
        super().__init__()
        self.tokens_per_side = config.num_patches_per_side
        self.cells_per_token = getattr(config, "cells_per_token", 1)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.classifier = nn.Linear(config.hidden_size, self.cells_per_token**2 * NUM_CELL_CLASSES)

    def forward(self, answer_state: torch.Tensor, tokens_per_side: int | None = None) -> torch.Tensor:
        """`[batch, T * k, T * k, 12]` for a `T x T` token grid of `k x k` cells each (`cells_per_token`);
        `tokens_per_side`: the canvas's token grid side, smaller than the config's on a cropped cell canvas."""
        side, k = tokens_per_side or self.tokens_per_side, self.cells_per_token
        cells = answer_state[:, -side * side :]
        logits = self.classifier(self.norm(cells)).view(answer_state.shape[0], side, side, k, k, NUM_CELL_CLASSES)
        # token (row, col)'s block of cells (i, j) is cell (row * k + i, col * k + j): the block lands where it is read
        return logits.permute(0, 1, 3, 2, 4, 5).reshape(answer_state.shape[0], side * k, side * k, NUM_CELL_CLASSES)


# ------------------------------------------------------------------------------------------------ decoding
@torch.no_grad()
def decode_cell_logits(cell_logits: torch.Tensor, max_grid_size: int,
                       sizes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The one decoding of cell logits `[..., T, T, 12]` into grids.

    Every box (frame corner top, left; interior height h, width w in 1..`max_grid_size`; frame inside the token
    grid) is scored by the per-token log-probabilities it implies: inside, each token's best colour; on the one-cell
    frame, the border class; outside, the background class. The argmax box is exact: all box sums at once as two
    matrix products with range-indicator matrices, in float64 (no search heuristic, no TF32 / bf16 rounding).
    `sizes` `[..., 2]` long (optional): a known output size (h, w) per sample, for which only boxes of that size
    compete (the best position); (0, 0), or a size whose frame does not fit the token grid, leaves the sample free.
    Returns `grids` `[..., G, G]` long (the box's best colours, top-left aligned, `IGNORE_INDEX` outside h x w: the
    `grid_labels` padding) and `boxes` `[..., 4]` long (top, left, h, w; the frame's corner, in cells).
    """
    if cell_logits.dim() < 3 or cell_logits.shape[-3] != cell_logits.shape[-2] or cell_logits.shape[-1] != NUM_CELL_CLASSES:
        raise ValueError(f"cell_logits must have shape (..., T, T, {NUM_CELL_CLASSES}), got {tuple(cell_logits.shape)}")
    side = cell_logits.shape[-2]
    if side < 3:
        raise ValueError(f"a {side} x {side} token grid cannot hold a grid and its frame")
    lead = cell_logits.shape[:-3]
    flat = cell_logits.reshape(-1, side, side, NUM_CELL_CLASSES)
    if sizes is None:
        wanted = torch.zeros(flat.shape[0], 2, dtype=torch.long, device=flat.device)
    elif tuple(sizes.shape) != (*lead, 2):
        raise ValueError(f"sizes must have shape {(*lead, 2)} (one (h, w) per sample), got {tuple(sizes.shape)}")
    else:
        wanted = sizes.reshape(-1, 2).to(device=flat.device, dtype=torch.long)
    starts, box_sizes = _box_ranges(side, max_grid_size, flat.device)
    chunk = max(1, _DECODE_CHUNK_SCORES // starts.numel() ** 2)
    with torch.autocast(device_type=flat.device.type, enabled=False):
        decoded = [_decode_chunk(part, starts, box_sizes, max_grid_size, part_sizes)
                   for part, part_sizes in zip(flat.split(chunk), wanted.split(chunk))]
    grids = torch.cat([grid for grid, _ in decoded]).view(*lead, max_grid_size, max_grid_size)
    boxes = torch.cat([box for _, box in decoded]).view(*lead, 4)
    return grids, boxes


@functools.lru_cache(maxsize=64)
def _box_ranges(side: int, max_grid_size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (frame start, grid size) along one axis whose frame fits `side` cells: two `[K]` long tensors. Kept
    per (side, device): the boolean selection reads the mask on the host, a GPU sync every training step."""
    start, size = torch.meshgrid(
        torch.arange(side, device=device), torch.arange(1, max_grid_size + 1, device=device), indexing="ij"
    )
    fits = start + size + 2 <= side
    return start[fits], size[fits]


def _decode_chunk(cell_logits, starts, sizes, pad_to: int, wanted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    log_probs = cell_logits.double().log_softmax(-1)
    best, colours = log_probs[..., :NUM_COLORS].max(-1)
    border, background = log_probs[..., BORDER_CLASS], log_probs[..., BACKGROUND_CLASS]
    # score(box) = sum(background everywhere) + sum over the framed box (border - background)
    #            + sum over its interior (best colour - border); the first sum is the same for every box.
    cells = torch.arange(cell_logits.shape[1], device=cell_logits.device)[None, :]
    in_frame = ((cells >= starts[:, None]) & (cells < (starts + sizes + 2)[:, None])).double()  # [K, T]
    in_interior = ((cells > starts[:, None]) & (cells <= (starts + sizes)[:, None])).double()
    # sum over rows in range a and columns in range b of M = (R M C^T)[a, b], for both maps in one product.
    column_sums = torch.cat([(border - background) @ in_frame.T, (best - border) @ in_interior.T], dim=1)  # [N, 2T, K]
    scores = torch.cat([in_frame, in_interior], dim=1) @ column_sums  # [N, K (rows), K (columns)]
    # A known size keeps only its boxes; where none of that size fits the grid, the sample stays free.
    of_size = (sizes[None, :, None] == wanted[:, None, None, 0]) & (sizes[None, None, :] == wanted[:, None, None, 1])
    constrained = (wanted > 0).all(1) & of_size.flatten(1).any(1)
    scores = scores.masked_fill(constrained[:, None, None] & ~of_size, float("-inf"))
    # Not torch.unravel_index: it copies the shape to the device from a Python list, a GPU sync per call.
    best_box = scores.flatten(1).argmax(1)
    row_pair, col_pair = best_box // scores.shape[2], best_box % scores.shape[2]
    top, height, left, width = starts[row_pair], sizes[row_pair], starts[col_pair], sizes[col_pair]
    return _read_box(colours, top, left, height, width, pad_to), torch.stack([top, left, height, width], dim=1)


def _read_box(values: torch.Tensor, top, left, height, width, pad_to: int) -> torch.Tensor:
    """`values[n, top + 1 + i, left + 1 + j]` for i < height, j < width, top-left aligned in `[N, pad_to, pad_to]`,
    `IGNORE_INDEX` elsewhere."""
    side = values.shape[1]
    offsets = torch.arange(pad_to, device=values.device)
    rows = (top[:, None] + 1 + offsets).clamp(max=side - 1)  # [N, G]
    cols = (left[:, None] + 1 + offsets).clamp(max=side - 1)
    picked = values[torch.arange(values.shape[0], device=values.device)[:, None, None], rows[:, :, None], cols[:, None, :]]
    inside = (offsets[None, :, None] < height[:, None, None]) & (offsets[None, None, :] < width[:, None, None])
    return picked.masked_fill(~inside, IGNORE_INDEX)


# ------------------------------------------------------------------------------------------------ targets
@torch.no_grad()
def cell_labels_to_grids(cell_labels: torch.Tensor, max_grid_size: int,
                         check: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The target grids drawn in `cell_labels` `[B, T, T]`: `(grid_labels [B, G, G], has_grid [B])`.

    A sample is either all `IGNORE_INDEX` (no target) or one whole layout: a `BORDER_CLASS` frame one cell thick
    inside the token grid, colours 0..9 filling its interior, `BACKGROUND_CLASS` everywhere else. Anything else
    raises `ValueError` naming the samples; `check=False` skips that check (a GPU sync) for labels whose builder
    guarantees the layout.
    """
    labelled = cell_labels != IGNORE_INDEX
    has_grid = labelled.flatten(1).any(1)
    partly_labelled = has_grid & ~labelled.flatten(1).all(1)
    out_of_range = (labelled & ((cell_labels < 0) | (cell_labels >= NUM_CELL_CLASSES))).flatten(1).any(1)
    colour = (cell_labels >= 0) & (cell_labels < NUM_COLORS)
    colour_rows, colour_cols = colour.any(2), colour.any(1)
    height, width = colour_rows.sum(1), colour_cols.sum(1)
    top, left = colour_rows.long().argmax(1) - 1, colour_cols.long().argmax(1) - 1  # the frame's corner
    side = cell_labels.shape[1]
    fits = (top >= 0) & (left >= 0) & (top + height + 2 <= side) & (left + width + 2 <= side)
    fits &= (height >= 1) & (height <= max_grid_size) & (width <= max_grid_size)
    expected = _layout(cell_labels, top, left, height, width)
    malformed = has_grid & ~(fits & (expected == cell_labels).flatten(1).all(1))
    if check and (partly_labelled | out_of_range | malformed).any():  # one host sync; messages only on failure
        _raise_for("cell_labels", partly_labelled, f"are partly {IGNORE_INDEX}: a sample is all {IGNORE_INDEX} (no "
                   "target) or labelled on every token")
        _raise_for("cell_labels", out_of_range, f"hold values outside [0, {NUM_CELL_CLASSES}) and {IGNORE_INDEX}")
        _raise_for("cell_labels", malformed,
                   f"are not one grid layout: colours filling a box of at most {max_grid_size} x {max_grid_size} "
                   f"cells, a one-cell frame of class {BORDER_CLASS} around it inside the token grid, "
                   f"{BACKGROUND_CLASS} elsewhere")
    grids = _read_box(cell_labels, top.clamp(min=0), left.clamp(min=0), height, width, max_grid_size)
    return torch.where(has_grid[:, None, None], grids, torch.full_like(grids, IGNORE_INDEX)), has_grid


def _layout(colours: torch.Tensor, top, left, height, width) -> torch.Tensor:
    """The cell-label map of boxes (frame corner `top, left`, interior `height x width`) filled from `colours`."""
    cells = torch.arange(colours.shape[1], device=colours.device)[None, :]
    in_frame_rows = (cells >= top[:, None]) & (cells < (top + height + 2)[:, None])
    in_frame_cols = (cells >= left[:, None]) & (cells < (left + width + 2)[:, None])
    inner_rows = (cells > top[:, None]) & (cells <= (top + height)[:, None])
    inner_cols = (cells > left[:, None]) & (cells <= (left + width)[:, None])
    framed = in_frame_rows[:, :, None] & in_frame_cols[:, None, :]
    inner = inner_rows[:, :, None] & inner_cols[:, None, :]
    layout = torch.where(framed, BORDER_CLASS, BACKGROUND_CLASS).to(colours.dtype)
    return torch.where(inner, colours, layout)


def _raise_for(name: str, samples: torch.Tensor, problem: str) -> None:
    if samples.any():
        raise ValueError(f"{name} of samples {samples.nonzero().flatten().tolist()} {problem}")
