"""ARC grids <-> canvases: a vectorised renderer and an exact decoder.

Layout (VARC-style): each cell is a `scale` x `scale` block in the standard ARC palette; a frame one cell
(`scale` px) thick, in `BORDER_COLOR`, surrounds the grid and marks its extent; everything else is
`BACKGROUND_COLOR`. Border and background are distinct from all ten ARC colours, so the decoder finds the
frame, reads its thickness (= scale) and the grid's shape from it, and samples one pixel per cell.

A grid of h x w cells at scale s takes (h + 2) * s by (w + 2) * s pixels. Default: the largest integer scale
that fits, centred. A 30 x 30 grid fits a 64 px canvas at scale 2 and a 224 px canvas at scale 7.

Cell-aligned layout (`grid_layout="cells"` of the image processor): the scale is the ViT's patch size and the
offset a whole number of cells, so every token sees exactly one cell (a colour, the frame or the background).
`cell_label_map` is the same picture one class per token: what the cell head is trained to output.
"""

from __future__ import annotations

import numpy as np

from ..configuration.conventions import (
    ARC_PALETTE,
    BACKGROUND_CLASS,
    BORDER_CLASS,
    IGNORE_INDEX,
    MAX_GRID_SIZE,
    NUM_COLORS,
)

BACKGROUND_COLOR = (255, 255, 255)  # white: not an ARC colour
BORDER_COLOR = (0, 128, 128)  # teal: not an ARC colour
BORDER_INDEX = NUM_COLORS  # index of the border colour in the extended palette


# The 10 ARC colours, then the border colour, then the background colour: uint8 [12, 3] (a constant).
EXTENDED_PALETTE = np.concatenate([ARC_PALETTE, np.array([BORDER_COLOR, BACKGROUND_COLOR], dtype=np.uint8)])
EXTENDED_PALETTE.setflags(write=False)
_PIXEL = np.dtype("V3")  # one RGB pixel as a single 3-byte element
_PALETTE_PIXELS = np.ascontiguousarray(EXTENDED_PALETTE).view(_PIXEL)[:, 0]
# Green channel -> ARC colour index (-1: not an ARC colour); the ten greens are distinct, and differ from the
# border's (128) and the background's (255).
_GREEN_TO_COLOR = np.full(256, -1, dtype=np.int64)
_GREEN_TO_COLOR[ARC_PALETTE[:, 1]] = np.arange(NUM_COLORS)
assert len(set(ARC_PALETTE[:, 1].tolist()) | {BORDER_COLOR[1], BACKGROUND_COLOR[1]}) == NUM_COLORS + 2
assert len(set(BACKGROUND_COLOR)) == 1  # render_grid fills the background with one byte value
# The cell head's classes index this palette: a cell-label map drawn through it is the canvas.
assert (BORDER_CLASS, BACKGROUND_CLASS) == (BORDER_INDEX, BORDER_INDEX + 1)


def validate_grid(grid, max_size: int = MAX_GRID_SIZE) -> np.ndarray:
    """Returns `grid` as a 2-D int64 array, or raises `ValueError` naming the problem.

    Checks: rectangular (no ragged rows), 2-D, non-empty, integer cells (no floats, strings, bools-only arrays),
    colours in 0..9, at most `max_size` per side. Nothing is coerced or clipped.
    """
    if grid is None:
        raise ValueError("grid is None")
    if isinstance(grid, np.ndarray):
        arr = grid
    else:
        if hasattr(grid, "detach") and hasattr(grid, "cpu"):  # torch tensor
            arr = grid.detach().cpu().numpy()
        else:
            try:
                arr = np.asarray(grid)
            except ValueError as err:
                raise ValueError(f"ragged grid: rows have different lengths ({err})") from None
    if arr.dtype == object:
        raise ValueError("ragged grid or non-integer cell: rows have different lengths or cells are not ints")
    if arr.size == 0:
        raise ValueError(f"empty grid (shape {arr.shape})")
    if arr.ndim != 2:
        raise ValueError(f"a grid must be 2-D (rows of cells), got {arr.ndim}-D with shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"non-integer cell: grid cells must be ints 0..9, got dtype {arr.dtype}")
    h, w = arr.shape
    if h > max_size or w > max_size:
        raise ValueError(f"grid over {max_size}x{max_size}: got {h}x{w}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= NUM_COLORS:
        bad = lo if lo < 0 else hi
        raise ValueError(f"colour outside 0-9 in grid: found {bad}")
    return arr.astype(np.int64, copy=False)


def max_scale(height: int, width: int, canvas_size: int) -> int:
    """Largest integer cell size at which an h x w grid plus its one-cell frame fits the canvas."""
    return canvas_size // (max(height, width) + 2)


def render_grid(grid, canvas_size: int = 224, scale: int | None = None, offset=None, validate: bool = True):
    """Renders an ARC grid onto a square canvas: uint8 [canvas_size, canvas_size, 3].

    Args:
        grid: list of lists of ints 0..9 or a 2-D integer array (at most 30 x 30).
        canvas_size: side of the canvas in pixels.
        scale: pixels per cell (integer >= 1). Default: the largest that fits (`max_scale`).
        offset: (top, left) pixel of the frame's top-left corner. Default: centred.
    Raises ValueError if the grid is invalid or the scale/offset would not fit.
    """
    arr = validate_grid(grid) if validate else np.asarray(grid)
    h, w = arr.shape
    if scale is None:
        scale = max_scale(h, w, canvas_size)
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"grid {h}x{w} with its frame does not fit a {canvas_size} px canvas")
    fh, fw = (h + 2) * scale, (w + 2) * scale
    if fh > canvas_size or fw > canvas_size:
        raise ValueError(f"grid {h}x{w} at scale {scale} needs {fh}x{fw} px, canvas is {canvas_size} px")
    if offset is None:
        top, left = (canvas_size - fh) // 2, (canvas_size - fw) // 2
    else:
        top, left = (int(v) for v in offset)
        if top < 0 or left < 0 or top + fh > canvas_size or left + fw > canvas_size:
            raise ValueError(
                f"offset {(top, left)} puts the {fh}x{fw} px grid outside the {canvas_size} px canvas"
            )
    framed = np.full((h + 2, w + 2), BORDER_INDEX, dtype=np.intp)
    framed[1:-1, 1:-1] = arr
    canvas = np.full((canvas_size, canvas_size, 3), BACKGROUND_COLOR[0], dtype=np.uint8)  # grey-level background
    # Each pixel as one 3-byte element: palette lookup on the grid widened to `scale` columns, then a single
    # broadcast assignment copies each pixel row `scale` times ([h+2, 1, fw] -> [h+2, scale, fw]).
    pixels = canvas.view(_PIXEL)[..., 0]
    rows = _PALETTE_PIXELS.take(framed.repeat(scale, axis=1))
    pixels[top : top + fh, left : left + fw].reshape(h + 2, scale, fw)[...] = rows[:, None]
    return canvas


def random_placement(height: int, width: int, canvas_size: int, rng: np.random.Generator, min_scale: int = 1):
    """A random (scale, (top, left)) that fits: the scale/translation augmentation of training."""
    top_scale = max_scale(height, width, canvas_size)
    if top_scale < 1:
        raise ValueError(f"grid {height}x{width} does not fit a {canvas_size} px canvas")
    scale = int(rng.integers(min(min_scale, top_scale), top_scale + 1))
    fh, fw = (height + 2) * scale, (width + 2) * scale
    return scale, (int(rng.integers(0, canvas_size - fh + 1)), int(rng.integers(0, canvas_size - fw + 1)))


def random_cell_offset(sizes, tokens_per_side: int, rng: np.random.Generator) -> tuple[int, int]:
    """A random whole-cell (top, left) at which every framed (h, w) in `sizes` fits a `tokens_per_side` square.

    Input and output share it, so the output is drawn (and predicted) where the input is."""
    height = max(int(h) for h, _ in sizes) + 2
    width = max(int(w) for _, w in sizes) + 2
    if height > tokens_per_side or width > tokens_per_side:
        raise ValueError(
            f"grids of sizes {[tuple(int(v) for v in size) for size in sizes]} with their frame do not fit "
            f"{tokens_per_side} x {tokens_per_side} cells"
        )
    return int(rng.integers(0, tokens_per_side - height + 1)), int(rng.integers(0, tokens_per_side - width + 1))


def task_canvas_cells(task: dict, tokens_per_side: int) -> int:
    """Cells per side of a task's cropped cell canvas (`TRMConfig.crop_cell_canvas`): its largest grid plus the
    one-cell frame, at most `tokens_per_side`.

    The grids are the ones known before answering: every demonstration input and output and every test input (a test
    output is never looked at, so a training task and an unseen one are measured alike). An answer larger than all
    of them does not fit the crop; in ARC-AGI-1 that is 7 of the 419 evaluation test outputs.
    """
    known = [pair[key] for pair in task.get("train", []) for key in ("input", "output")]
    known += [pair["input"] for pair in task.get("test", [])]
    if not known:
        raise ValueError("a task needs at least one grid (its 'train' pairs or 'test' inputs) to size its canvas")
    side = max(max(len(grid), max(len(row) for row in grid)) for grid in known) + 2
    return min(side, tokens_per_side)


def cell_label_map(grid, tokens_per_side: int, cell_offset=(0, 0)) -> np.ndarray:
    """One class per token, int64 [tokens_per_side, tokens_per_side]: the grid's colours 0..9, `BORDER_CLASS` on the
    one-cell frame around it, `BACKGROUND_CLASS` elsewhere; the frame's top-left corner at `cell_offset` (cells)."""
    arr = validate_grid(grid)
    h, w = arr.shape
    top, left = (int(v) for v in cell_offset)
    if top < 0 or left < 0 or top + h + 2 > tokens_per_side or left + w + 2 > tokens_per_side:
        raise ValueError(
            f"cell offset {(top, left)} puts the framed {h}x{w} grid outside {tokens_per_side} x {tokens_per_side} cells"
        )
    labels = np.full((tokens_per_side, tokens_per_side), BACKGROUND_CLASS, dtype=np.int64)
    labels[top : top + h + 2, left : left + w + 2] = BORDER_CLASS
    labels[top + 1 : top + 1 + h, left + 1 : left + 1 + w] = arr
    return labels


def _to_hwc_uint8(canvas) -> np.ndarray:
    if hasattr(canvas, "detach"):
        canvas = canvas.detach().cpu().numpy()
    arr = np.asarray(canvas)
    if arr.ndim == 3 and arr.shape[-1] != 3 and arr.shape[0] == 3:
        arr = arr.transpose(1, 2, 0)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"a canvas must be [S, S, 3] or [3, S, S], got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"a canvas must be uint8 (use decode_pixel_values for normalised floats), got {arr.dtype}")
    return arr


def _find_frame(arr: np.ndarray) -> tuple[int, int, int, int, int]:
    """(top, left, frame height px, frame width px, scale) of the grid frame; ValueError when there is none.

    The green channel alone identifies the border (128 is no ARC colour's green), so one comparison finds it:
    the first border pixel in raster order is the frame's top-left corner, the runs along its row and column
    give the frame's extent, and the run along its diagonal gives the border thickness (= the scale)."""
    mask = arr[:, :, 1] == BORDER_COLOR[1]
    first = int(mask.argmax())
    top, left = divmod(first, mask.shape[1])
    if not mask[top, left]:
        raise ValueError("no grid frame (border colour) found on the canvas")

    def run(line):
        stop = int(line.argmin())
        return stop if not line[stop] else line.shape[0]

    fw, fh = run(mask[top, left:]), run(mask[top:, left])
    scale = run(np.diagonal(mask[top : top + fh, left : left + fw]))
    if scale < 1 or scale >= min(fh, fw) or fh % scale or fw % scale:
        raise ValueError("malformed grid frame: extent is not a whole number of cells")
    return top, left, fh, fw, scale


def decode_canvas(canvas, strict: bool = False) -> np.ndarray:
    """Reads the exact grid back from a canvas drawn by `render_grid`: int64 [h, w].

    Accepts uint8 [S, S, 3] or [3, S, S] (numpy or torch). Samples one pixel per cell (the block's top-left) and
    checks its full RGB against the palette. With `strict=True` the whole canvas must also equal the re-rendered
    grid at the found scale/offset (catches any corruption). Raises ValueError when no frame is found or a cell's
    colour is not an ARC colour.
    """
    arr = _to_hwc_uint8(canvas)
    top, left, fh, fw, scale = _find_frame(arr)
    h, w = fh // scale - 2, fw // scale - 2
    if h < 1 or w < 1:
        raise ValueError("malformed grid frame: empty interior")
    cells = arr[top + scale : top + fh - scale : scale, left + scale : left + fw - scale : scale]
    grid = _GREEN_TO_COLOR[cells[:, :, 1]]
    if (grid < 0).any() or not np.array_equal(ARC_PALETTE[grid], cells):
        raise ValueError("a cell's colour is not an ARC palette colour")
    if strict:
        expected = render_grid(grid, arr.shape[0], scale=scale, offset=(top, left), validate=False)
        if arr.shape[0] != arr.shape[1] or not np.array_equal(expected, arr):
            raise ValueError("canvas does not match the grid re-rendered at its found scale and offset")
    return grid


def grid_placement(canvas) -> tuple[int, tuple[int, int]]:
    """(scale, (top, left)) of the grid frame on a canvas."""
    top, left, _, _, scale = _find_frame(_to_hwc_uint8(canvas))
    return scale, (top, left)


def pad_grid(grid, size: int = MAX_GRID_SIZE, fill: int = IGNORE_INDEX) -> np.ndarray:
    """Pads a grid into a [size, size] int64 array filled with `fill` outside it (the `grid_labels` format)."""
    arr = validate_grid(grid, max_size=size)
    out = np.full((size, size), fill, dtype=np.int64)
    out[: arr.shape[0], : arr.shape[1]] = arr
    return out


def unpad_grid(padded, fill: int = IGNORE_INDEX) -> np.ndarray:
    """Inverse of `pad_grid`: the top-left block of cells that are not `fill`."""
    arr = np.asarray(padded)
    valid = arr != fill
    rows = np.flatnonzero(valid.any(axis=1))
    cols = np.flatnonzero(valid.any(axis=0))
    if rows.size == 0:
        raise ValueError("padded grid holds no cells")
    return arr[: rows[-1] + 1, : cols[-1] + 1].astype(np.int64)
