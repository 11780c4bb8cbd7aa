"""ARC scoring: per-cell accuracy, exact match, and pass@1 / pass@2 per task.

A task counts as solved at pass@k when, for every one of its test inputs, one of the first k attempts equals the
target grid exactly (shape and every cell). Per-cell accuracy counts the target's cells that an attempt got right
(a cell outside the predicted shape is wrong), averaged over test inputs, using the first attempt. Answer and target are
laid top-left on each other, so an answer larger than its target loses nothing for its extra cells: a 30 x 30 answer
gets the credit of every target cell whose colour it guesses. Per-cell accuracy over the union counts those extra
cells as wrong too: cells right over the cells of the union of both frames.
"""

import json

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "ARC-AGI exact match with pass@1 / pass@2 per task, plus per-cell accuracy of the first attempt."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): per test input, a JSON list of attempts, each attempt a grid (list of rows); a bare
        grid counts as one attempt.
    references (`list[str]`): per test input, the target grid as JSON.
    task_ids (`list[str]`, optional): the task of each test input; defaults to one task per input.
    per_input (`bool`, optional): also return `per_input_cell_accuracy` and `per_input_cell_accuracy_over_union`,
        the per-cell accuracies of each test input
        (for paired comparisons, e.g. against copying the input).
Returns:
    pass@1, pass@2 (fractions of tasks solved), exact_match (first attempt, per test input), per_cell_accuracy,
    per_cell_accuracy_over_union, num_tasks, num_test_inputs.
Examples:
    >>> metric = evaluate.load("train_scripts/metrics/arc_exact_match")
    >>> metric.compute(predictions=['[[[1]], [[2]]]'], references=['[[2]]'])["pass@2"]
    1.0
"""


def _attempts(prediction):
    value = json.loads(prediction) if isinstance(prediction, str) else prediction
    if not value:
        return []
    # one grid = list of rows of ints; attempts = list of grids
    if isinstance(value[0], list) and value[0] and isinstance(value[0][0], list):
        return value
    if isinstance(value[0], list) and not value[0]:
        return value
    return [value]


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool((a == b).all())


def _cells(prediction, target, over_union: bool = False):
    """The target's cells the prediction gets right (top-left aligned), over the target's cells or, `over_union`, over
    the cells of the union of both frames."""
    target = np.asarray(target)
    prediction = np.asarray(prediction)
    if prediction.ndim != 2 or target.size == 0:
        return 0.0
    h, w = min(prediction.shape[0], target.shape[0]), min(prediction.shape[1], target.shape[1])
    right = float((prediction[:h, :w] == target[:h, :w]).sum())
    return right / (target.size + prediction.size - h * w if over_union else target.size)


class ArcExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, task_ids=None, per_input=False):
        task_ids = list(task_ids) if task_ids is not None else [str(i) for i in range(len(references))]
        solved = {1: {}, 2: {}}
        exact, cells, cells_over_union = [], [], []
        for prediction, reference, task in zip(predictions, references, task_ids):
            attempts = _attempts(prediction)
            target = json.loads(reference) if isinstance(reference, str) else reference
            exact.append(bool(attempts) and _same(attempts[0], target))
            cells.append(_cells(attempts[0], target) if attempts else 0.0)
            cells_over_union.append(_cells(attempts[0], target, over_union=True) if attempts else 0.0)
            for k in (1, 2):
                hit = any(_same(a, target) for a in attempts[:k])
                solved[k][task] = solved[k].get(task, True) and hit
        num_tasks = len(solved[1])
        result = {
            "pass@1": sum(solved[1].values()) / max(num_tasks, 1),
            "pass@2": sum(solved[2].values()) / max(num_tasks, 1),
            "exact_match": float(np.mean(exact)) if exact else 0.0,
            "per_cell_accuracy": float(np.mean(cells)) if cells else 0.0,
            "per_cell_accuracy_over_union": float(np.mean(cells_over_union)) if cells_over_union else 0.0,
            "num_tasks": num_tasks,
            "num_test_inputs": len(references),
        }
        if per_input:
            result["per_input_cell_accuracy"] = cells
            result["per_input_cell_accuracy_over_union"] = cells_over_union
        return result
