"""How alike two renderings are: SSIM (Wang et al. 2004) per RGB channel on every 7 x 7 window that lies inside the
image (uniform weights and sample covariances: scikit-image's `structural_similarity` defaults, data range 255),
averaged — the render-back score's measure. Identical images score exactly 1.0; the score falls as structure,
colour or position differ. Also nearest-neighbour features (downsampled pixels) for the retrieval baseline."""

from __future__ import annotations

import numpy as np
from PIL import Image

WINDOW = 7
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _check_pair(first: np.ndarray, second: np.ndarray) -> None:
    for name, image in (("first", first), ("second", second)):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"the {name} image must be uint8 RGB [H, W, 3], got {image.dtype} {image.shape}")
    if first.shape != second.shape:
        raise ValueError(f"the images differ in shape: {first.shape} vs {second.shape}")


def window_means(values: np.ndarray) -> np.ndarray:
    """The mean of every WINDOW x WINDOW window inside `values` [H, W, C] (an integral image: no padding)."""
    integral = np.pad(values.cumsum(0).cumsum(1), ((1, 0), (1, 0), (0, 0)))
    w = WINDOW
    sums = integral[w:, w:] - integral[:-w, w:] - integral[w:, :-w] + integral[:-w, :-w]
    return sums / (w * w)


def ssim(first: np.ndarray, second: np.ndarray) -> float:
    """Mean SSIM over pixels and the three channels, in [-1, 1] (1.0 exactly for identical images)."""
    _check_pair(first, second)
    if np.array_equal(first, second):
        return 1.0
    x, y = first.astype(np.float64), second.astype(np.float64)
    mean_x, mean_y = window_means(x), window_means(y)
    sample = WINDOW * WINDOW / (WINDOW * WINDOW - 1)  # sample (co)variances, as scikit-image
    var_x = sample * (window_means(x * x) - mean_x ** 2)
    var_y = sample * (window_means(y * y) - mean_y ** 2)
    covariance = sample * (window_means(x * y) - mean_x * mean_y)
    numerator = (2 * mean_x * mean_y + _C1) * (2 * covariance + _C2)
    denominator = (mean_x ** 2 + mean_y ** 2 + _C1) * (var_x + var_y + _C2)
    return float(np.mean(numerator / denominator))


def retrieval_features(image: np.ndarray, side: int = 32) -> np.ndarray:
    """The image box-downsampled to side x side RGB, as a float32 vector in [0, 1] (nearest-neighbour search)."""
    small = Image.fromarray(image).resize((side, side), Image.BOX)
    return np.asarray(small, dtype=np.float32).reshape(-1) / 255.0
