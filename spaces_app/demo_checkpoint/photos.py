"""Photos -> float RGB in [0, 1], resized (shortest side, bicubic, antialiased) and centre-cropped to the canvas.

Conversions (nothing clipped silently):
- PIL "RGB", "L", "1", "CMYK", "YCbCr", ...: converted to RGB (8-bit, / 255).
- PIL "RGBA", "LA", "P"/"PA" with transparency, "La"/"RGBa": composited on white.
- PIL 16-bit ("I;16", "I;16B", "I;16L", "I;16N") and "I": read as uint16 range, / 65535 (values outside
  0..65535 in an "I" image raise ValueError). PIL "F": float, must lie in [0, 1].
- numpy / torch arrays: [H, W, C] or [C, H, W] with C in {1, 3, 4} (torch tensors are read channel-first
  when their first axis is 1, 3 or 4); 2-D float arrays are grayscale. uint8 / 255, uint16 / 65535, float must
  lie in [0, 1], bool -> 0/1. Other integer dtypes in 3-D raise ValueError (ambiguous range).
  (2-D integer arrays are ARC grids, not photos — see the processor.)
- Zero-size images and NaN / inf values raise ValueError.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

_16BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def _composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return rgb * alpha[..., None] + (1.0 - alpha[..., None])


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def pil_to_float_rgb(image: Image.Image) -> np.ndarray:
    """A PIL image as float32 [H, W, 3] in [0, 1] (see the module docstring for each mode)."""
    if image.width == 0 or image.height == 0:
        raise ValueError(f"zero-size image ({image.width}x{image.height})")
    mode = image.mode
    if mode in ("P", "PA"):
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "RGBa", "LA", "La"):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        return _composite_on_white(rgba[..., :3], rgba[..., 3]).astype(np.float32)
    if mode in _16BIT_MODES or mode == "I":
        arr = np.asarray(image).astype(np.float64)
        if arr.min() < 0 or arr.max() > 65535:
            raise ValueError(f"'{mode}' image values outside the 16-bit range 0..65535")
        return _gray_to_rgb((arr / 65535.0).astype(np.float32))
    if mode == "F":
        return array_to_float_rgb(np.asarray(image, dtype=np.float32))
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def array_to_float_rgb(array, channels_first: bool | None = None) -> np.ndarray:
    """A numpy / torch image as float32 [H, W, 3] in [0, 1]."""
    if isinstance(array, torch.Tensor):
        if channels_first is None:
            channels_first = array.ndim == 3 and array.shape[0] in (1, 3, 4)
        array = array.detach().cpu().numpy()
    arr = np.asarray(array)
    if arr.size == 0:
        raise ValueError(f"zero-size image (shape {arr.shape})")
    if arr.ndim == 3:
        if channels_first is None:
            channels_first = arr.shape[-1] not in (1, 3, 4) and arr.shape[0] in (1, 3, 4)
        if channels_first:
            arr = arr.transpose(1, 2, 0)
        if arr.shape[-1] not in (1, 3, 4):
            raise ValueError(f"image array must have 1, 3 or 4 channels, got shape {arr.shape}")
    elif arr.ndim != 2:
        raise ValueError(f"image array must be 2-D or 3-D, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        out = arr.astype(np.float32) / 65535.0
    elif arr.dtype == np.bool_:
        out = arr.astype(np.float32)
    elif arr.dtype.kind == "f":
        out = arr.astype(np.float32)
        if not np.isfinite(out).all():
            raise ValueError("image contains NaN or infinite values")
        if out.min() < 0.0 or out.max() > 1.0:
            raise ValueError(
                f"float image values must lie in [0, 1], got [{out.min():.3g}, {out.max():.3g}] "
                "(pass uint8 for 0..255 images)"
            )
    else:
        raise ValueError(f"image array dtype {arr.dtype} is ambiguous: use uint8, uint16, bool or float in [0, 1]")
    if out.ndim == 2:
        return _gray_to_rgb(out)
    if out.shape[-1] == 1:
        return _gray_to_rgb(out[..., 0])
    if out.shape[-1] == 4:
        return _composite_on_white(out[..., :3], out[..., 3]).astype(np.float32)
    return out


def resize_and_crop(image: np.ndarray, size: int) -> np.ndarray:
    """float32 [H, W, 3] -> float32 [3, size, size]: shortest side to `size` (bicubic, antialiased, clamped to
    [0, 1]), then centre crop."""
    h, w = image.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    if (nh, nw) != (h, w):
        tensor = torch.nn.functional.interpolate(tensor, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
        tensor = tensor.clamp_(0.0, 1.0)
    top, left = (nh - size) // 2, (nw - size) // 2
    return tensor[0, :, top : top + size, left : left + size].numpy()


def _pil_rgb8(image: Image.Image) -> Image.Image | None:
    """8-bit PIL modes as an RGB PIL image (alpha composited on white); None for 16-bit / int / float modes."""
    mode = image.mode
    if mode in _16BIT_MODES or mode in ("I", "F"):
        return None
    if mode in ("P", "PA", "RGBA", "RGBa", "LA", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB") if mode != "RGB" else image


def _resize_crop_pil(image: Image.Image, size: int) -> np.ndarray:
    """RGB PIL -> uint8 [size, size, 3]: the centred square of the shortest-side resize, resized in one step
    from just that source box (bicubic; Pillow's resize is antialiased)."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    if (w, h) != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))
    return np.asarray(image)


def photo_to_uint8(image, size: int) -> np.ndarray | None:
    """8-bit photos (PIL 8-bit modes, uint8 [H, W, 3] arrays) -> uint8 [size, size, 3]; None for inputs that
    need the float path (16-bit, float, other layouts)."""
    if isinstance(image, Image.Image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"zero-size image ({image.width}x{image.height})")
        rgb8 = _pil_rgb8(image)
        return _resize_crop_pil(rgb8, size) if rgb8 is not None else None
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3:
        if image.size == 0:
            raise ValueError(f"zero-size image (shape {image.shape})")
        return _resize_crop_pil(Image.fromarray(image), size)
    return None


def photo_to_chw(image, size: int) -> np.ndarray:
    """Any supported photo -> float32 [3, size, size] in [0, 1]. 8-bit images are resized in Pillow (uint8,
    fast); 16-bit and float images in float32 with torch (no precision lost)."""
    u8 = photo_to_uint8(image, size)
    if u8 is not None:
        return u8.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
    rgb = pil_to_float_rgb(image) if isinstance(image, Image.Image) else array_to_float_rgb(image)
    return resize_and_crop(rgb, size)
