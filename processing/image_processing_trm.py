"""`TRMImageProcessor`: every visual input (ARC grid, text, photo) onto one normalised square canvas."""

from __future__ import annotations

import copy

import numpy as np
import torch
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor

from ..configuration.conventions import CLIP_MEAN, CLIP_STD, MAX_GRID_SIZE, NUM_CELL_CLASSES
from .grids import EXTENDED_PALETTE, decode_canvas, render_grid
from .photos import photo_to_chw, photo_to_uint8
from .text_rendering import TextRenderer

GRID_LAYOUTS = ("scaled", "cells")


class TRMImageProcessor(BaseImageProcessor):
    r"""
    Renders ARC grids (`render_grid`), text (`render_text`) and photos (`preprocess_photo`) onto a
    `canvas_size` square and normalises with `image_mean` / `image_std` into float32 [3, S, S].

    Args:
        canvas_size (`int`, defaults to 224): side of every canvas (= `TRMConfig.image_size`).
        image_mean, image_std (`list[float]`): normalisation (defaults: CLIP's).
        max_grid_size (`int`, defaults to 30): largest ARC grid side accepted.
        font_size (`int`, *optional*): text size in px (default `max(8, round(canvas_size / 16))`).
        text_overflow (`str`, defaults to `"truncate"`): `"truncate"` (first canvas, flagged `text_truncated`)
            or `"continue"` (one canvas per page, flagged `text_continues`).
        grid_layout (`str`, defaults to `"scaled"`): how ARC grids are drawn. `"scaled"`: the largest scale that
            fits, centred (random scale and offset in training). `"cells"`: one cell per ViT token, each cell
            `cell_px` px (= the model's `patch_size`), the frame's corner on a whole cell, at the top-left by default
            and at a random whole-cell offset in training; the processor then also returns `cell_labels`.
        cell_px (`int`, defaults to 2): pixels per cell in the `"cells"` layout (unused in `"scaled"`);
            `canvas_size // cell_px` tokens per side must hold `max_grid_size` + 2 (the frame).
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        canvas_size: int = 224,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        max_grid_size: int = MAX_GRID_SIZE,
        font_size: int | None = None,
        text_overflow: str = "truncate",
        grid_layout: str = "scaled",
        cell_px: int = 2,
        **kwargs,
    ):
        kwargs.pop("auto_map", None)  # where a saved folder keeps its code (hub_export), not a setting
        super().__init__(**kwargs)
        if text_overflow not in ("truncate", "continue"):
            raise ValueError(f"text_overflow must be 'truncate' or 'continue', got {text_overflow!r}")
        _check_grid_layout(grid_layout, cell_px, int(canvas_size), int(max_grid_size))
        self.grid_layout = grid_layout
        self.cell_px = int(cell_px)
        self.canvas_size = int(canvas_size)
        self.image_mean = list(image_mean) if image_mean is not None else list(CLIP_MEAN)
        self.image_std = list(image_std) if image_std is not None else list(CLIP_STD)
        self.max_grid_size = int(max_grid_size)
        self.font_size = font_size
        self.text_overflow = text_overflow
        self._init_caches()

    def _init_caches(self):
        self._text_renderer = None
        mean = np.asarray(self.image_mean, dtype=np.float32)
        std = np.asarray(self.image_std, dtype=np.float32)
        # uint8 canvas -> normalised float via one 256-entry table per channel.
        self._lut = ((np.arange(256, dtype=np.float32)[:, None] / 255.0 - mean) / std).astype(np.float32)  # [256, 3]
        self._mean, self._std = mean[:, None, None], std[:, None, None]
        self._cell_palettes: dict[torch.device, torch.Tensor] = {}  # render_cell_labels' palette, per device

    def to_dict(self):
        # The cached font and tables (underscore attributes) are neither copied nor saved.
        output = {k: copy.deepcopy(v) for k, v in self.__dict__.items() if not k.startswith("_")}
        output["image_processor_type"] = self.__class__.__name__
        return output

    def __deepcopy__(self, memo):
        return self.__class__(**self.to_dict())

    @property
    def text_renderer(self) -> TextRenderer:
        if getattr(self, "_text_renderer", None) is None:
            self._text_renderer = TextRenderer(self.canvas_size, self.font_size)
        return self._text_renderer

    @property
    def tokens_per_side(self) -> int:
        """Cells (= ViT tokens) per canvas side in the `"cells"` layout."""
        return self.canvas_size // self.cell_px

    # canvases (uint8 [S, S, 3]) -------------------------------------------------------------------------------
    def render_grid(self, grid, scale: int | None = None, offset=None) -> np.ndarray:
        """The grid's canvas. In the `"cells"` layout the scale is `cell_px` and `offset` (pixels, default the
        top-left corner) must be a whole number of cells."""
        if self.grid_layout == "cells":
            if scale is not None and scale != self.cell_px:
                raise ValueError(f"the 'cells' layout draws every cell {self.cell_px} px wide, got scale={scale}")
            offset = (0, 0) if offset is None else tuple(int(v) for v in offset)
            if any(v % self.cell_px for v in offset):
                raise ValueError(f"in the 'cells' layout the offset must be a multiple of {self.cell_px} px, got {offset}")
            scale = self.cell_px
        return render_grid(grid, self.canvas_size, scale=scale, offset=offset)

    def render_cell_labels(self, cell_labels: torch.Tensor, check_values: bool = True) -> torch.Tensor:
        """Normalised `pixel_values` [B, 3, T * cell_px, ...] of cell-label maps [B, T, T] (colours, `BORDER_CLASS`,
        `BACKGROUND_CLASS`): the same pixels as `normalize_canvas(render_grid(...))`, built with tensor ops on the
        maps' device, so training batches can be drawn on the GPU. `check_values=False` skips the range check, a GPU
        sync, for maps whose builder guarantees it (`arc_batches.cell_maps`)."""
        if cell_labels.dim() != 3 or cell_labels.shape[1] != cell_labels.shape[2] \
                or not 0 < cell_labels.shape[1] <= self.tokens_per_side:
            raise ValueError(
                f"cell_labels must have shape (batch, T, T) with T <= {self.tokens_per_side} (a cropped cell canvas "
                f"is smaller), got {tuple(cell_labels.shape)}"
            )
        if check_values and cell_labels.numel() and ((cell_labels < 0) | (cell_labels >= NUM_CELL_CLASSES)).any():
            raise ValueError(f"cell_labels must lie in [0, {NUM_CELL_CLASSES}) to be drawn")
        pixels = self._cell_palette(cell_labels.device)[cell_labels.long()].permute(0, 3, 1, 2)  # [B, 3, T, T]
        return pixels.repeat_interleave(self.cell_px, dim=2).repeat_interleave(self.cell_px, dim=3)

    def _cell_palette(self, device: torch.device) -> torch.Tensor:
        """`[12, 3]` normalised colours of the cell classes on `device`, copied there once (each copy is a sync)."""
        if device not in self._cell_palettes:
            palette = torch.from_numpy(self.normalize_canvas(EXTENDED_PALETTE[None]))[:, 0].T
            self._cell_palettes[device] = palette.to(device)
        return self._cell_palettes[device]

    def render_text(self, text: str) -> dict:
        """First canvas of `text` with flags `truncated`, `continues`, `empty`, and `undrawable`: the "U+XXXX" of
        each character on the canvas that no bundled font has (drawn as U+FFFD). A control character other than
        "\\n", "\\r\\n" and "\\t" is a ValueError naming its code point and position (see text_rendering)."""
        if text is None:
            raise ValueError("text is None (use '' for a blank canvas)")
        return self.text_renderer.render(text)

    def render_text_pages(self, text: str) -> list[dict]:
        """One dict like `render_text`'s per page of `text`; `continues` on every page but the last."""
        if text is None:
            raise ValueError("text is None (use '' for a blank canvas)")
        return self.text_renderer.render_pages(text)

    # normalisation -------------------------------------------------------------------------------------------
    def normalize_canvas(self, canvas: np.ndarray) -> np.ndarray:
        """uint8 [S, S, 3] -> float32 [3, S, S], normalised."""
        lut = self._lut
        return np.stack([lut[canvas[:, :, c], c] for c in range(3)])

    def normalize_float(self, chw: np.ndarray) -> np.ndarray:
        """float [3, S, S] in [0, 1] -> normalised float32."""
        return ((chw - self._mean) / self._std).astype(np.float32)

    def denormalize_to_canvas(self, pixel_values) -> np.ndarray:
        """Normalised [3, S, S] (numpy or torch) -> uint8 [S, S, 3] (exact for rendered canvases)."""
        if isinstance(pixel_values, torch.Tensor):
            pixel_values = pixel_values.detach().cpu().float().numpy()
        values = np.asarray(pixel_values, dtype=np.float32) * self._std + self._mean
        return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)

    def decode_pixel_values(self, pixel_values) -> np.ndarray:
        """The ARC grid drawn on normalised pixel values [3, S, S]."""
        return decode_canvas(self.denormalize_to_canvas(pixel_values))

    def preprocess_photo(self, image) -> np.ndarray:
        """PIL / numpy / torch photo -> normalised float32 [3, S, S] (8-bit photos through the uint8 lookup table,
        16-bit / float photos in float32)."""
        u8 = photo_to_uint8(image, self.canvas_size)
        if u8 is not None:
            return self.normalize_canvas(u8)
        return self.normalize_float(photo_to_chw(image, self.canvas_size))

    # transformers-style entry point -----------------------------------------------------------------------------
    def preprocess(self, images, return_tensors="pt", **kwargs) -> BatchFeature:
        """Photos only (a single image or a list) -> BatchFeature(pixel_values [B, 3, S, S])."""
        if not isinstance(images, (list, tuple)):
            images = [images]
        pixel_values = np.stack([self.preprocess_photo(image) for image in images])
        return BatchFeature({"pixel_values": pixel_values}, tensor_type=return_tensors)


def _check_grid_layout(grid_layout, cell_px, canvas_size: int, max_grid_size: int) -> None:
    if grid_layout not in GRID_LAYOUTS:
        raise ValueError(f"grid_layout must be one of {GRID_LAYOUTS}, got {grid_layout!r}")
    if not isinstance(cell_px, (int, np.integer)) or isinstance(cell_px, bool) or cell_px < 1:
        raise ValueError(f"cell_px must be an int >= 1, got {cell_px!r}")
    if grid_layout != "cells":
        return
    if canvas_size % cell_px:
        raise ValueError(f"grid_layout='cells': canvas_size={canvas_size} is not a multiple of cell_px={cell_px}")
    if canvas_size // cell_px < max_grid_size + 2:
        raise ValueError(
            f"grid_layout='cells': {canvas_size // cell_px} cells per side (canvas_size {canvas_size} / cell_px "
            f"{cell_px}) cannot hold a {max_grid_size}-cell grid and its frame ({max_grid_size + 2} cells)"
        )
