"""Test-time training (TTT) for an ARC task: fit a task embedding on the task's demonstration pairs, then answer its
test inputs by voting over augmented views.

    from vision_trm.train_scripts.test_time_training import solve_arc_task
    result = solve_arc_task(model, processor, task, steps=64, num_views=32, max_seconds=60)
    result.attempts[0]        # up to two grids for test input 0, best first
    result.loss_curve         # the demonstrations' loss at every fitting step

What is fitted. A deep copy of the model's base (`model.base_model`, a `TRMModel`) is made; the caller's model is
never changed. In the copy, one row of the task embedding (`task_embeddings.weight[0]`, the "no task" row, which the
copy needs for nothing else) is the new task's embedding: it starts from a chosen point, is trained alone by AdamW
at its own high learning rate (as TRM trains its puzzle embeddings), and every demonstration and prediction of the
task uses id 0. With `lora_r > 0`, LoRA adapters (PEFT) on the ViT's and the recursion's linear layers are trained
too, at `lora_learning_rate`.

Where the new row starts (`initial_embedding`). `"mean"` (the default): the mean of the rows the model was trained
on (non-zero rows other than row 0), or zero when no row was trained. A trained model has only ever seen grids
together with a trained task row, so the mean row is a point of that distribution, an "average task", from which
the demonstrations pull the row towards their rule; a zero row is what images and text see, never an ARC task
after training. `"zero"` starts where TRM starts every puzzle embedding. `start_from_task_id=k` starts from row k:
an evaluation task whose demonstrations the model was trained on continues from its own row.

Augmentation. Each fitting step draws, for every demonstration row, a random view within the parts the model was
trained with (`config.arc_view_parts`): one of the 8 dihedral transforms and, with `colour_permutations`, a random
colour permutation, colour 0 fixed, passed as `augmentations=` so that the model is told the view
(`augmentation_ids`), and a random placement (`random_placement=True`: a random whole-cell offset in the cells
layout, random scale and offset in the scaled one). Voting stays within the same parts.

Time. `max_seconds` bounds the fitting: it stops before the first step that would start after the bound, so
fitting lasts at most `max_seconds` plus one step; the prediction (`num_views` views per test input) comes after.
`result.fit_seconds` and `result.stopped_at_time_bound` say what happened.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable

import numpy as np
import torch
from peft import LoraConfig, inject_adapter_in_model

from vision_trm.configuration.conventions import LABEL_NAMES, MODEL_INPUT_NAMES, NUM_DIHEDRAL_TRANSFORMS
from vision_trm.modeling_trm import TRMMultitaskLoss
from vision_trm.processing import transforms
from vision_trm.train_scripts.arc_voting import (
    attempts_report,
    check_grid_head,
    demonstrated_output_sizes,
    fixed_training_views,
    max_voting_views,
    model_voting_views,
    predict_test_inputs,
    task_as_the_model_reads_it,
    task_canvas,
    trained_view_parts,
    voting_views,
)

# The row of the copy's task embedding that holds the task being solved (row 0, "no task", is free in the copy).
FITTED_ROW = 0
INITIAL_EMBEDDINGS = ("mean", "zero")
# LoRA targets: the attention and MLP projections of the trainable ViT and of the recursion (PEFT matches the
# regular expression against the full module name).
LORA_TARGET_MODULES = r".*(trainable_vit|reasoning_core)\..*\.(q_proj|k_proj|v_proj|out_proj|fc1|fc2)"
PREDICTION_SHARE = 0.1  # of the progress bar, for the prediction after the fitting


@dataclasses.dataclass
class TTTResult:
    """What `solve_arc_task` found. Per test input (in the task's order): up to two attempts (best first), their
    votes and summed EMIT confidences, the number of distinct answers; `correct` when the task gives test outputs."""

    task_id: str | None
    attempts: list[list[list[list[int]]]]
    votes: list[list[int]]
    emit_confidence: list[list[float]]
    num_distinct_answers: list[int]
    correct: list[list[bool]] | None
    loss_curve: list[float]  # the demonstrations' loss at each fitting step, before that step's update
    steps: int  # fitting steps run
    requested_steps: int
    stopped_at_time_bound: bool
    start: str  # where the fitted embedding row started
    num_views: int
    fit_seconds: float
    predict_seconds: float
    seconds: float

    @property
    def solved(self) -> bool | None:
        """pass@2 of the task: every test input has a right attempt (None without test outputs)."""
        return None if self.correct is None else all(any(right) for right in self.correct)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "solved": self.solved}


def solve_arc_task(
    model,
    processor,
    task: dict,
    steps: int = 64,
    num_views: int = 32,
    max_seconds: float | None = None,
    lora_r: int = 0,
    progress: Callable[[float, str], None] | None = None,
    seed: int = 0,
    *,
    learning_rate: float = 1e-2,
    lora_learning_rate: float = 1e-3,
    batch_size: int | None = None,
    colour_permutations: bool | None = None,
    start_from_task_id: int | None = None,
    initial_embedding: str = "mean",
    predict_batch_size: int = 64,
    size_from_demonstrations: bool = False,
) -> TTTResult:
    """Solves one ARC task by test-time training on its demonstrations, then voting over views of its test inputs.

    Args:
        model: a `TRMModel` or `TRMForMultitaskReasoning` with the grid head (either grid head type); not changed.
        processor: the model's `TRMProcessor`.
        task: an ARC task dict (`{"train": [{"input", "output"}, ...], "test": [{"input"[, "output"]}, ...]}`).
        steps: AdamW steps on the demonstrations (0: predict with the starting embedding only).
        num_views: views voted over per test input (`arc_voting.voting_views`: 8 dihedral x colour permutations).
        max_seconds: stop fitting once this much time has passed (None: no bound); see the module docstring.
        lora_r: rank of LoRA adapters trained with the embedding (0: the embedding alone).
        progress: `progress(fraction, message)`, called as fitting and prediction go on (a progress bar).
        seed: seeds the views, placements and the model's own randomness (the caller's RNG state is restored).
        learning_rate: the task embedding's learning rate (TRM: 1e-2).
        lora_learning_rate: the LoRA adapters' learning rate.
        batch_size: demonstration rows per step, each pair in its own random view (default: the number of pairs).
        colour_permutations: permute colours in the fitting views and in the voting views; without, both are the 8
            dihedral transforms only (so `num_views` <= 8). A model that cannot read the colour permutation from
            its augmentation tokens (one never trained with them) fits a colour rule only without. Default: as the
            model was trained (`"colours" in config.arc_view_parts`); the dihedral transforms are drawn only if
            `config.arc_view_parts` has `"dihedral"`.
        start_from_task_id: start the embedding from this trained row (an evaluation task the model has seen).
        initial_embedding: without `start_from_task_id`, `"mean"` of the trained rows or `"zero"`.
        predict_batch_size: rows per forward when predicting the views.
        size_from_demonstrations: decode each answer at the output size the demonstrations agree on
            (`processing.output_size_from_demonstrations`), free where they agree on none.
    Returns:
        [`TTTResult`].
    """
    _check_arguments(model, steps, num_views, max_seconds, lora_r, learning_rate, lora_learning_rate, batch_size,
                     start_from_task_id, initial_embedding, predict_batch_size)
    view_parts = fitting_view_parts(trained_view_parts(model), colour_permutations)
    views = model_voting_views(model, num_views, seed, view_parts)  # checked before any fitting
    processor.validate_task(task)  # the task as given, so that an error names what the user wrote
    task = task_as_the_model_reads_it(model, task)  # from here on, the inputs the model reads (answers untouched)
    checked = processor.validate_task(task)
    report = progress if progress is not None else (lambda fraction, message: None)
    started = time.perf_counter()
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        fitted = copy.deepcopy(model.base_model)
        start = reset_fitted_row(fitted.task_embeddings, start_from_task_id, initial_embedding)
        optimizer = ttt_optimizer(fitted, lora_r, learning_rate, lora_learning_rate)
        canvas_cells = task_canvas(model, processor, task)
        loss_curve, stopped = fit_demonstrations(
            fitted, processor, optimizer, checked["train"], steps, batch_size or len(checked["train"]),
            view_parts, max_seconds, np.random.default_rng(seed), report, started, canvas_cells)
    fit_seconds = time.perf_counter() - started
    fitted.eval()
    total_rows = len(checked["test"]) * len(views)

    def on_batch(done: int, total: int) -> None:
        report(1 - PREDICTION_SHARE + PREDICTION_SHARE * done / total, f"voting over {num_views} views: {done}/{total}")

    report(1 - PREDICTION_SHARE, f"voting over {num_views} views: 0/{total_rows}")
    candidates = predict_test_inputs(fitted, processor, [grid for grid, _ in checked["test"]], FITTED_ROW, views,
                                     predict_batch_size, on_batch, canvas_cells,
                                     demonstrated_output_sizes(task, size_from_demonstrations))
    reports = [attempts_report(c, expected) for c, (_, expected) in zip(candidates, checked["test"])]
    has_outputs = all(expected is not None for _, expected in checked["test"])
    seconds = time.perf_counter() - started
    return TTTResult(
        task_id=checked["task_id"], attempts=[r["attempts"] for r in reports], votes=[r["votes"] for r in reports],
        emit_confidence=[r["emit_confidence"] for r in reports],
        num_distinct_answers=[r["num_distinct_answers"] for r in reports],
        correct=[r["correct"] for r in reports] if has_outputs else None, loss_curve=loss_curve,
        steps=len(loss_curve), requested_steps=steps, stopped_at_time_bound=stopped, start=start, num_views=num_views,
        fit_seconds=round(fit_seconds, 3), predict_seconds=round(seconds - fit_seconds, 3), seconds=round(seconds, 3))


# ------------------------------------------------------------------------------------------------------ the parts
@torch.no_grad()
def reset_fitted_row(task_embeddings, start_from_task_id: int | None, initial_embedding: str) -> str:
    """Sets row `FITTED_ROW` to its starting point (see the module docstring); returns a description of it."""
    rows = task_embeddings.rows_per_task()  # [task ids, views per task, width]: one row per view or one in all
    if start_from_task_id is not None:
        rows[FITTED_ROW] = rows[start_from_task_id]
        return f"task row {start_from_task_id}"
    trained = rows[1:][rows[1:].abs().sum((-2, -1)) > 0]
    if initial_embedding == "mean" and len(trained):
        rows[FITTED_ROW] = trained.mean(0)
        return f"mean of {len(trained)} trained rows"
    rows[FITTED_ROW] = 0
    return "zero"


def ttt_optimizer(fitted, lora_r: int, learning_rate: float, lora_learning_rate: float) -> torch.optim.Optimizer:
    """Freezes the copy, then makes the task embedding (and LoRA adapters, with `lora_r > 0`) trainable.

    Only row `FITTED_ROW` is ever looked up, so only it receives gradients; with no weight decay, AdamW leaves the
    other rows exactly as they are.
    """
    fitted.requires_grad_(False)
    groups = [{"params": [fitted.task_embeddings.weight], "lr": learning_rate, "weight_decay": 0.0}]
    if lora_r > 0:
        lora = LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0, target_modules=LORA_TARGET_MODULES)
        inject_adapter_in_model(lora, fitted)
        adapters = [p for name, p in fitted.named_parameters() if "lora_" in name]
        groups.append({"params": adapters, "lr": lora_learning_rate, "weight_decay": 0.0})
    for group in groups:
        for parameter in group["params"]:
            parameter.requires_grad_(True)
    return torch.optim.AdamW(groups, betas=(0.9, 0.95))


def fitting_view_parts(trained_parts, colour_permutations: bool | None) -> list[str]:
    """The parts of a view drawn at random in fitting and voting: those the model was trained with
    (`config.arc_view_parts`), less the colours with `colour_permutations=False`. Asking for colour permutations of a
    model trained without them is an error."""
    parts = list(trained_parts)
    if colour_permutations is True and "colours" not in parts:
        raise ValueError(f"colour_permutations=True, but the model was trained without colour permutations "
                         f"(config.arc_view_parts={parts})")
    return [part for part in parts if part != "colours" or colour_permutations is not False]


def training_views(model, view_parts) -> list | None:
    """The views fitting draws from for a model trained on a fixed table of views (`config.num_task_views`, or
    `config.arc_training_views`): every view of the table within `view_parts`; None for a model trained on views
    drawn at random (fitting then draws them freely too)."""
    rows = fixed_training_views(model)
    if not rows:
        return None
    return voting_views(min(rows, max_voting_views(view_parts) or rows), 0, view_parts)


def demonstration_batch(processor, pairs, rows: int, rng: np.random.Generator, view_parts, device,
                        canvas_cells: int | None = None, fixed_views: list | None = None) -> tuple[dict, dict]:
    """`(inputs, labels)` of one fitting step: `rows` demonstration pairs (every pair once per `len(pairs)` rows, in
    a random order), each in a random view (the parts of it `view_parts` names; one of `fixed_views` when given, for
    a model with a task row per view) at a random placement, all with task id `FITTED_ROW` (on the task's cropped
    canvas with `canvas_cells`)."""
    order = np.concatenate([rng.permutation(len(pairs)) for _ in range(-(-rows // len(pairs)))])[:rows]
    chosen = [pairs[i] for i in order]
    dihedrals = NUM_DIHEDRAL_TRANSFORMS if "dihedral" in view_parts else 1
    if fixed_views is not None:
        views = [fixed_views[int(rng.integers(len(fixed_views)))] for _ in chosen]
    else:
        views = [(int(rng.integers(dihedrals)),
                  transforms.random_color_permutation(rng) if "colours" in view_parts else None) for _ in chosen]
    batch = processor([grid_in for grid_in, _ in chosen], grid_targets=[grid_out for _, grid_out in chosen],
                      task_ids=[FITTED_ROW] * rows, augmentations=views, random_placement="translation" in view_parts,
                      seed=int(rng.integers(2**31)), canvas_cells=canvas_cells, return_tensors="pt")
    inputs = {name: batch[name].to(device) for name in MODEL_INPUT_NAMES if name in batch}
    labels = {name: batch[name].to(device) for name in LABEL_NAMES if name in batch}
    return inputs, labels


def fit_demonstrations(fitted, processor, optimizer, pairs, steps: int, rows: int, view_parts,
                       max_seconds: float | None, rng: np.random.Generator, report, started: float,
                       canvas_cells: int | None = None):
    """Up to `steps` AdamW steps of the training objective on the demonstrations; returns `(loss_curve, stopped)`,
    `stopped` telling whether the time bound ended the fitting early."""
    loss_head = TRMMultitaskLoss(fitted.config)
    fixed_views = training_views(fitted, view_parts)
    device = next(fitted.parameters()).device
    fitted.train()
    curve = []
    for step in range(steps):
        if max_seconds is not None and time.perf_counter() - started >= max_seconds:
            return curve, True
        inputs, labels = demonstration_batch(processor, pairs, rows, rng, view_parts, device, canvas_cells,
                                             fixed_views)
        loss = loss_head(fitted(**inputs), **labels)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        curve.append(round(loss.item(), 5))
        report((1 - PREDICTION_SHARE) * (step + 1) / steps, f"test-time training: step {step + 1}/{steps}, "
                                                             f"loss {curve[-1]:.4f}")
    return curve, False


def _check_arguments(model, steps, num_views, max_seconds, lora_r, learning_rate, lora_learning_rate, batch_size,
                     start_from_task_id, initial_embedding, predict_batch_size) -> None:
    """Raises `ValueError` naming the first argument that is not usable."""
    check_grid_head(model)
    for name, value, lowest in (("steps", steps, 0), ("num_views", num_views, 1), ("lora_r", lora_r, 0),
                                ("predict_batch_size", predict_batch_size, 1)):
        if not _is_int(value) or value < lowest:
            raise ValueError(f"{name} must be an int >= {lowest}, got {value!r}")
    if batch_size is not None and (not _is_int(batch_size) or batch_size < 1):
        raise ValueError(f"batch_size must be None or an int >= 1, got {batch_size!r}")
    if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and max_seconds >= 0):
        raise ValueError(f"max_seconds must be None or a number >= 0, got {max_seconds!r}")
    for name, value in (("learning_rate", learning_rate), ("lora_learning_rate", lora_learning_rate)):
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if initial_embedding not in INITIAL_EMBEDDINGS:
        raise ValueError(f"initial_embedding must be one of {INITIAL_EMBEDDINGS}, got {initial_embedding!r}")
    rows = model.config.num_task_ids
    if start_from_task_id is not None and (not _is_int(start_from_task_id) or not 1 <= start_from_task_id < rows):
        raise ValueError(f"start_from_task_id must be None or a trained task id in [1, {rows}), got "
                         f"{start_from_task_id!r}")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
