"""Test-time augmentation and voting over ARC predictions (the TRM / VARC protocol), shared by `evaluate_arc.py` and
`test_time_training.py`.

A *view* is `(dihedral, colour_permutation)`: the processor draws the grid in that view (`augmentations=`) and tells
the model which view it shows (`augmentation_ids`); the view's prediction is mapped back through
`transforms.inverse_transform_grid`. Each distinct answer collects the votes of the views that produced it; ties are
broken by the halting head's EMIT confidence summed over those views. Attempt 1 is the winner, attempt 2 the
runner-up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from vision_trm.configuration.conventions import (
    ARC_VIEW_PARTS,
    NUM_COLORS,
    NUM_DIHEDRAL_TRANSFORMS,
    standard_arc_views,
)
from vision_trm.modeling_trm.cell_head import decode_cell_logits
from vision_trm.processing import align_task, output_size_from_demonstrations, task_canvas_cells, transforms


@dataclass
class Candidate:
    """One distinct answer to a test input: the grid (in the task's own frame), its votes and summed confidence."""

    grid: list[list[int]]
    votes: int
    confidence: float


def voting_views(num_views: int = 32, seed: int = 0,
                 view_parts=ARC_VIEW_PARTS) -> list[tuple[int, np.ndarray | None]]:
    """`num_views` deterministic views: every dihedral transform under the identity colours first (the identity view
    first of all), then every dihedral transform under each of `ceil(num_views / 8) - 1` seeded random colour
    permutations (colour 0 fixed); 32 views = 8 dihedral transforms x 4 colour permutations.

    `view_parts` (a model's `config.arc_view_parts`) keeps the views among those the model was trained on: without
    "colours" there are only the 8 dihedral transforms, without "dihedral" only the identity transform; asking for
    more views than that is an error that says so."""
    if isinstance(num_views, bool) or not isinstance(num_views, (int, np.integer)) or num_views < 1:
        raise ValueError(f"num_views must be an int >= 1, got {num_views!r}")
    most = max_voting_views(view_parts)
    if most is not None and num_views > most:
        raise ValueError(f"num_views={num_views}: views that draw only {list(view_parts)} at random give {most} "
                         f"distinct view(s); a model trained so (config.arc_view_parts) is voted over at most that "
                         f"many")
    identity = np.arange(NUM_COLORS)
    return [(int(row[0]), None if np.array_equal(row[1:], identity) else row[1:].copy())
            for row in standard_arc_views(num_views, view_parts, seed)]


def max_voting_views(view_parts) -> int | None:
    """How many distinct views `voting_views` can draw within `view_parts`: None (no limit) with colour
    permutations, else the dihedral transforms (8) or the identity alone (1)."""
    if "colours" in view_parts:
        return None
    return NUM_DIHEDRAL_TRANSFORMS if "dihedral" in view_parts else 1


def trained_view_parts(model) -> tuple[str, ...]:
    """The parts of an ARC view `model` was trained to see at random (`config.arc_view_parts`; all of them for a
    config without the field)."""
    return tuple(getattr(model.config, "arc_view_parts", ARC_VIEW_PARTS))


def fixed_training_views(model) -> int:
    """How many of the voting views `model` was trained on, drawn from a fixed table: `config.num_task_views` (it
    keeps a task row for each) or `config.arc_training_views`; 0 when its views were drawn at random."""
    config = model.config
    return getattr(config, "num_task_views", 0) or getattr(config, "arc_training_views", 0)


def task_view_table(model) -> torch.Tensor | None:
    """The `[V, 11]` views the ARC recipe draws `model`'s training views from (`fixed_training_views`); None when
    they are drawn at random within `config.arc_view_parts`."""
    views = fixed_training_views(model)
    return torch.from_numpy(standard_arc_views(views, trained_view_parts(model))) if views else None


def model_voting_views(model, num_views: int, seed: int = 0, view_parts=None) -> list[tuple[int, np.ndarray | None]]:
    """`voting_views` for `model`: within `view_parts` (default: the parts it was trained with). A model with a task
    row per view (`config.num_task_views = V`) is voted over the first views of its table only: at most V, seed 0
    whatever `seed` says (the seed still drives everything else); more is an error naming the field."""
    parts = trained_view_parts(model) if view_parts is None else view_parts
    rows = getattr(model.config, "num_task_views", 0)
    if not rows:
        return voting_views(num_views, seed, parts)
    if num_views > rows:
        raise ValueError(f"num_views={num_views}: this model keeps task rows for {rows} views "
                         f"(config.num_task_views), so it is voted over at most {rows}")
    return voting_views(num_views, 0, parts)


def emit_confidence(outputs) -> torch.Tensor:
    """P(EMIT) `[batch]` of the halting head at the step where each sample halted."""
    logits = outputs.halting_logits  # [B, S, 2], column 0 = EMIT
    steps = (outputs.halting_steps - 1).clamp(0, logits.shape[1] - 1)
    chosen = logits[torch.arange(logits.shape[0], device=logits.device), steps]
    return chosen.float().softmax(-1)[:, 0]


def check_grid_head(model, name: str = "the model") -> None:
    """Voting needs the grid head's predictions; without it the forward returns no grid predictions at all."""
    heads = list(getattr(model.config, "heads", []))
    if "grid" not in heads:
        raise ValueError(f"{name} has no grid head (config.heads = {heads}): ARC evaluation needs a model with the "
                         "'grid' head")


def task_as_the_model_reads_it(model, task: dict) -> dict:
    """`task` with its inputs aligned to its demonstrations' output size (`processing.align_task`) for a model
    trained with `arc_input_alignment`, else `task` itself. Call it once, on the task as the user gave it, before
    anything is drawn or sized from it; the outputs (the answers it is scored against) are untouched."""
    return align_task(task) if getattr(model.config, "arc_input_alignment", False) else task


def task_canvas(model, processor, task: dict) -> int | None:
    """The cropped canvas a task's views are drawn on (`canvas_cells=`) for a model trained with
    `crop_cell_canvas`, else None (the full canvas). Dihedral views keep the largest side, so one size serves all."""
    if not getattr(model.config, "crop_cell_canvas", False):
        return None
    return task_canvas_cells(task, processor.image_processor.tokens_per_side)


def demonstrated_output_sizes(task: dict, use: bool = True) -> list[tuple[int, int] | None]:
    """Per test input of `task`, the output size its demonstrations agree on (`output_size_from_demonstrations`), or
    None; all None when `use` is False or the task shows no demonstrations."""
    if not use or not task.get("train"):
        return [None] * len(task["test"])
    return [output_size_from_demonstrations(task["train"], pair["input"]) for pair in task["test"]]


def size_in_view(size: tuple[int, int] | None, dihedral: int) -> tuple[int, int] | None:
    """An output size in the task's frame -> the same output's size in a dihedral view (transposing views swap it)."""
    if size is None:
        return None
    return tuple(transforms.dihedral_transform(np.zeros(size, dtype=np.int64), dihedral).shape)


def decode_at_known_sizes(model, outputs, sizes: list) -> torch.Tensor:
    """The batch's `grid_predictions`, decoded again at the known sizes where there are some (`sizes`: per row
    `(h, w)` or None; `decode_cell_logits(sizes=)`)."""
    if all(size is None for size in sizes):
        return outputs.grid_predictions
    if outputs.cell_logits is None:
        raise ValueError("decoding at a known output size needs the cell head (grid_head_type='cells')")
    known = torch.tensor([size or (0, 0) for size in sizes], device=outputs.cell_logits.device)
    grids, _ = decode_cell_logits(outputs.cell_logits, model.config.max_grid_size, known)
    return grids


@torch.no_grad()
def predict_views(model, processor, items, batch_size: int = 64, on_batch=None) -> list[tuple[np.ndarray, float]]:
    """Predictions for `items` = `[(grid, task_id, (dihedral, permutation)[, canvas_cells[, output_size]]), ...]`,
    several per forward (items of one canvas size share a forward; `canvas_cells` None or absent is the full canvas;
    `output_size` `(h, w)` in the grid's own frame, e.g. `demonstrated_output_sizes`, holds the decoding to that size,
    None or absent leaves it free).

    Returns, per item, the predicted grid mapped back to the grid's own frame and the halting head's EMIT confidence.
    `on_batch(done, total)` is called after each forward (a progress bar). The model's train / eval mode is left as
    it is: the caller decides (evaluation wants `model.eval()`).
    """
    device = next(model.parameters()).device
    canvases = [item[3] if len(item) > 3 else None for item in items]
    by_canvas: dict = {}
    for index, canvas in enumerate(canvases):
        by_canvas.setdefault(canvas, []).append(index)
    chunks = [group[start:start + batch_size] for group in by_canvas.values()
              for start in range(0, len(group), batch_size)]
    results, done = [None] * len(items), 0
    for chunk in chunks:
        batch = processor([items[i][0] for i in chunk], task_ids=[items[i][1] for i in chunk],
                          augmentations=[items[i][2] for i in chunk], canvas_cells=canvases[chunk[0]],
                          return_tensors="pt")
        inputs = {name: batch[name].to(device) for name in processor.model_input_names if name in batch}
        outputs = model(**inputs)
        confidence = emit_confidence(outputs).cpu().tolist()
        sizes = [size_in_view(items[i][4] if len(items[i]) > 4 else None, items[i][2][0]) for i in chunk]
        answers = processor.post_process_grid(decode_at_known_sizes(model, outputs, sizes))
        for i, answer, score in zip(chunk, answers, confidence):
            dihedral, permutation = items[i][2]
            results[i] = (transforms.inverse_transform_grid(answer, dihedral, permutation), score)
        done += len(chunk)
        if on_batch is not None:
            on_batch(done, len(items))
    return results


def vote(predictions) -> list[Candidate]:
    """Distinct answers of `[(grid, confidence), ...]`, most votes first, ties by summed confidence."""
    tally: dict[str, Candidate] = {}
    for grid, confidence in predictions:
        grid = np.asarray(grid).tolist()
        candidate = tally.setdefault(json.dumps(grid), Candidate(grid, 0, 0.0))
        candidate.votes += 1
        candidate.confidence += float(confidence)
    return sorted(tally.values(), key=lambda c: (-c.votes, -c.confidence))


def predict_test_inputs(model, processor, grids, task_id: int, views, batch_size: int = 64,
                        on_batch=None, canvas_cells: int | None = None,
                        output_sizes: list | None = None) -> list[list[Candidate]]:
    """Voted candidates (best first) for each test input grid of one task, all views of all inputs batched
    (`canvas_cells`: the task's cropped canvas, `task_canvas`; `output_sizes`: per grid, a known output size or None,
    `demonstrated_output_sizes`)."""
    output_sizes = output_sizes or [None] * len(grids)
    if len(output_sizes) != len(grids):
        raise ValueError(f"output_sizes has {len(output_sizes)} entries for {len(grids)} test inputs")
    items = [(grid, task_id, view, canvas_cells, size) for grid, size in zip(grids, output_sizes) for view in views]
    predictions = predict_views(model, processor, items, batch_size, on_batch)
    return [vote(predictions[i * len(views):(i + 1) * len(views)]) for i in range(len(grids))]


def attempts_report(candidates: list[Candidate], expected=None) -> dict:
    """What the per-task JSON records for one test input: two attempts, their votes and confidences, and (when the
    expected output is known) whether each attempt is right."""
    best = candidates[:2]
    report = {"attempts": [c.grid for c in best], "votes": [c.votes for c in best],
              "emit_confidence": [round(c.confidence, 4) for c in best], "num_distinct_answers": len(candidates)}
    if expected is not None:
        expected = np.asarray(expected).tolist()
        report["correct"] = [c.grid == expected for c in best]
    return report
