"""`TRMImageProcessor`: every visual input (ARC grid, text, photo) onto one normalised square canvas."""

from __future__ import annotations

import copy

import numpy as np
import torch
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor

from ..configuration.conventions import CLIP_MEAN, CLIP_STD, MAX_GRID_SIZE
from .grids import decode_canvas, render_grid
from .photos import photo_to_chw, photo_to_uint8
from .text_rendering import TextRenderer



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
        **kwargs,
    ):
        super().__init__(**kwargs)
        if text_overflow not in ("truncate", "continue"):
            raise ValueError(f"text_overflow must be 'truncate' or 'continue', got {text_overflow!r}")
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

    # canvases (uint8 [S, S, 3]) -------------------------------------------------------------------------------
    def render_grid(self, grid, scale: int | None = None, offset=None) -> np.ndarray:
        return render_grid(grid, self.canvas_size, scale=scale, offset=offset)

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
