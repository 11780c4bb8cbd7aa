"""Putting an ARC input where its answer will be: the input copied, upscaled or tiled to its output's size.

The cell head writes each output cell where the same input cell is drawn, so copying is its easiest function. For a
task whose answer is larger than its input (a 3x3 grid blown up to 9x9, or repeated 2x2 times) the cell under each
output cell is not its source, and the model has to move every cell before it can edit any. Aligning the input first
(`align_task`) removes that: each input is replaced by its copy at the size the task's demonstrations agree on
(`output_size_from_demonstrations`), upscaled (each cell a block) or tiled (the grid repeated), whichever of the
rules gets the most demonstration cells right (ties keep the plain copy). Nothing is learned; the rule is fixed per
task by its demonstrations, and the answers (outputs) are untouched.

The same choice, applied to a test input alone, is the trivial baseline `copy_scaled_or_tiled`
(`evaluate_arc.BASELINES`) every model is read against; a model trained with `arc_input_alignment` starts from it.
"""

from __future__ import annotations

import numpy as np

from .output_size import output_size_from_demonstrations

def resized_copies(grid, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """`grid` at `size`: each cell made a block (`upscaled`) or the whole grid repeated (`tiled`) where `size` is a
    whole multiple of the grid's own, other than 1x1; the plain `copy` always."""
    array = np.asarray(grid)
    copies = {"copy": array}
    rows, columns = size
    if (rows, columns) != array.shape and rows % array.shape[0] == 0 and columns % array.shape[1] == 0:
        factor = (rows // array.shape[0], columns // array.shape[1])
        copies["upscaled"] = np.kron(array, np.ones(factor, dtype=array.dtype))
        copies["tiled"] = np.tile(array, factor)
    return copies


def _cells_right(prediction: np.ndarray, target) -> float:
    """The share of the target's cells the prediction gets right (outside the prediction's shape: wrong)."""
    target = np.asarray(target)
    rows, columns = min(prediction.shape[0], target.shape[0]), min(prediction.shape[1], target.shape[1])
    return float((prediction[:rows, :columns] == target[:rows, :columns]).sum()) / target.size


def aligned_input(demonstrations, grid) -> np.ndarray:
    """`grid` copied, upscaled or tiled to the output size `demonstrations` agree on for it, by the rule that gets
    the most demonstration cells right among those `grid` allows (ties: the plain copy); the plain copy where they
    agree on no size or there are no demonstrations."""
    size = output_size_from_demonstrations(demonstrations, grid) if demonstrations else None
    if size is None:
        return np.asarray(grid)
    candidates = resized_copies(grid, size)
    if len(candidates) == 1:
        return candidates["copy"]
    scores = dict.fromkeys(candidates, 0.0)
    for pair in demonstrations:
        pair_size = output_size_from_demonstrations(demonstrations, pair["input"]) or np.shape(pair["output"])
        for rule, copy in resized_copies(pair["input"], pair_size).items():
            if rule in scores:
                scores[rule] += _cells_right(copy, pair["output"])
    best = max(scores, key=lambda rule: (scores[rule], rule == "copy"))
    return candidates[best]


def align_task(task: dict) -> dict:
    """A copy of `task` with every input (demonstrations and test inputs) replaced by `aligned_input` under the
    task's demonstrations, as nested lists; the outputs and every other key are kept. The original is not changed.
    A task without demonstrations is returned as a copy, unaligned."""
    demonstrations = task.get("train") or []

    def aligned(pairs):
        return [dict(pair, input=aligned_input(demonstrations, pair["input"]).tolist()) for pair in pairs]

    return dict(task, train=aligned(demonstrations), test=aligned(task.get("test") or []))
