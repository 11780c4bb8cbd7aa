"""The 8 dihedral transforms and colour permutations (colour 0 fixed) of ARC grids and tasks, with inverses.

Dihedral index d in 0..7: `d % 4` quarter turns counter-clockwise (np.rot90) applied after a left-right flip
when `d >= 4`. Inverse of d < 4 is (4 - d) % 4; each d >= 4 is its own inverse.
A colour permutation is a length-10 sequence `perm` with perm[0] == 0: colour c becomes perm[c].
Augmentation order: colours first, then dihedral (they commute: colour maps are pointwise).
"""

from __future__ import annotations

import numpy as np

from ..configuration.conventions import NUM_DIHEDRAL_TRANSFORMS as NUM_DIHEDRAL
from .grids import NUM_COLORS, validate_grid


def check_dihedral(d) -> int:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 0 <= int(d) < NUM_DIHEDRAL:
        raise ValueError(f"dihedral index must be an int in 0..7, got {d!r}")
    return int(d)


def dihedral_inverse(d: int) -> int:
    """Index of the inverse dihedral transform."""
    d = check_dihedral(d)
    return (4 - d) % 4 if d < 4 else d


def dihedral_transform(grid, d: int) -> np.ndarray:
    """Applies dihedral transform `d` to a grid (returns a new int64 array)."""
    d = check_dihedral(d)
    arr = validate_grid(grid)
    if d >= 4:
        arr = arr[:, ::-1]
    return np.ascontiguousarray(np.rot90(arr, d % 4))


def inverse_dihedral_transform(grid, d: int) -> np.ndarray:
    """Undoes `dihedral_transform(., d)`."""
    return dihedral_transform(grid, dihedral_inverse(d))


def validate_color_permutation(perm) -> np.ndarray:
    arr = np.asarray(perm)
    if arr.shape != (NUM_COLORS,) or arr.dtype.kind not in "iu":
        raise ValueError(f"a colour permutation must be {NUM_COLORS} ints, got {perm!r}")
    if sorted(arr.tolist()) != list(range(NUM_COLORS)):
        raise ValueError(f"colour permutation is not a permutation of 0..9: {arr.tolist()}")
    if arr[0] != 0:
        raise ValueError(f"colour permutation must keep colour 0 (background) fixed, got perm[0]={arr[0]}")
    return arr.astype(np.int64)


def random_color_permutation(rng: np.random.Generator) -> np.ndarray:
    """A random permutation of colours 1..9 (0 fixed)."""
    return np.concatenate([[0], rng.permutation(np.arange(1, NUM_COLORS))]).astype(np.int64)


def color_permutation_inverse(perm) -> np.ndarray:
    return np.argsort(validate_color_permutation(perm)).astype(np.int64)


def permute_colors(grid, perm) -> np.ndarray:
    """Colour c becomes perm[c]."""
    return validate_color_permutation(perm)[validate_grid(grid)]


def inverse_permute_colors(grid, perm) -> np.ndarray:
    return color_permutation_inverse(perm)[validate_grid(grid)]


def transform_grid(grid, dihedral: int = 0, color_perm=None) -> np.ndarray:
    """Colour permutation (if any) then dihedral transform."""
    arr = permute_colors(grid, color_perm) if color_perm is not None else validate_grid(grid)
    return dihedral_transform(arr, dihedral)


def inverse_transform_grid(grid, dihedral: int = 0, color_perm=None) -> np.ndarray:
    """Undoes `transform_grid(., dihedral, color_perm)` (e.g. to vote over augmented predictions)."""
    arr = inverse_dihedral_transform(grid, dihedral)
    return inverse_permute_colors(arr, color_perm) if color_perm is not None else arr


def _map_task(task: dict, fn) -> dict:
    if not isinstance(task, dict):
        raise ValueError(f"an ARC task must be a dict with 'train' and 'test', got {type(task).__name__}")
    out = {k: v for k, v in task.items() if k not in ("train", "test")}
    for split in ("train", "test"):
        if split in task:
            out[split] = [{k: (fn(v) if k in ("input", "output") else v) for k, v in pair.items()} for pair in task[split]]
    return out


def transform_task(task: dict, dihedral: int = 0, color_perm=None) -> dict:
    """Applies the same transform to every input and output grid of an ARC task (grids become lists)."""
    return _map_task(task, lambda g: transform_grid(g, dihedral, color_perm).tolist())


def inverse_transform_task(task: dict, dihedral: int = 0, color_perm=None) -> dict:
    return _map_task(task, lambda g: inverse_transform_grid(g, dihedral, color_perm).tolist())
