"""How alike two renderings are: SSIM (Wang et al. 2004) per RGB channel on 7 x 7 uniform windows, averaged — the
render-back score's measure. Identical images score exactly 1.0; the score falls as structure, colour or position
differ. Also nearest-neighbour features (downsampled pixels) for the retrieval baseline."""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.ndimage import uniform_filter

WINDOW = 7
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _check_pair(first: np.ndarray, second: np.ndarray) -> None:
    for name, image in (("first", first), ("second", second)):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"the {name} image must be uint8 RGB [H, W, 3], got {image.dtype} {image.shape}")
    if first.shape != second.shape:
        raise ValueError(f"the images differ in shape: {first.shape} vs {second.shape}")


def ssim(first: np.ndarray, second: np.ndarray) -> float:
    """Mean SSIM over pixels and the three channels, in [-1, 1] (1.0 exactly for identical images)."""
    _check_pair(first, second)
    if np.array_equal(first, second):
        return 1.0
    x, y = first.astype(np.float64), second.astype(np.float64)
    size = (WINDOW, WINDOW, 1)
    mean_x, mean_y = uniform_filter(x, size), uniform_filter(y, size)
    var_x = uniform_filter(x * x, size) - mean_x ** 2
    var_y = uniform_filter(y * y, size) - mean_y ** 2
    covariance = uniform_filter(x * y, size) - mean_x * mean_y
    numerator = (2 * mean_x * mean_y + _C1) * (2 * covariance + _C2)
    denominator = (mean_x ** 2 + mean_y ** 2 + _C1) * (var_x + var_y + _C2)
    return float(np.mean(numerator / denominator))


def retrieval_features(image: np.ndarray, side: int = 32) -> np.ndarray:
    """The image box-downsampled to side x side RGB, as a float32 vector in [0, 1] (nearest-neighbour search)."""
    small = Image.fromarray(image).resize((side, side), Image.BOX)
    return np.asarray(small, dtype=np.float32).reshape(-1) / 255.0
