#!/usr/bin/env python
"""ARC-AGI evaluation with test-time augmentation and voting (the TRM / VARC protocol), optionally after test-time
training on each task's demonstrations.

For every test input of every evaluation task: `--num_views` views (default 32: the 8 dihedral transforms x 4 colour
permutations, colour 0 fixed, the identity first; seeded, the same for every input), each drawn by the processor in
its view and told to the model (`augmentations=` -> `augmentation_ids`), with the task's learned id. Each predicted
grid is mapped back through the inverse transform; the views vote, ties broken by the halting head's EMIT confidence
(summed over the views that voted for a grid). Attempt 1 = the winner, attempt 2 = the runner-up. A task counts at
pass@k when every one of its test outputs is among its first k attempts. Writes a per-task JSON of attempts, votes
and correctness.

With `--ttt_steps K`, each task is first solved by `test_time_training.solve_arc_task` (K AdamW steps on a task
embedding fitted to its demonstrations, `--ttt_max_seconds` per task); a task the model has a trained id for starts
from its own row (`--no-ttt_start_from_trained_row` starts every task afresh). With `--size_from_demonstrations`
each answer is decoded at the output size the task's demonstrations agree on, where they agree on one
(`processing.output_size_from_demonstrations`).

    python train_scripts/evaluate_arc.py --model_name_or_path outputs/arc --max_tasks 20
    python train_scripts/evaluate_arc.py --model_name_or_path outputs/arc --split training --num_views 1  # the fit
    python train_scripts/evaluate_arc.py --model_name_or_path outputs/arc --split evaluation_demonstrations
    python train_scripts/evaluate_arc.py --model_name_or_path outputs/arc --size_from_demonstrations
    python train_scripts/evaluate_arc.py --model_name_or_path outputs/arc --ttt_steps 64 --ttt_max_seconds 30

In a training script, on the GPU, in process:

    from vision_trm.train_scripts.evaluate_arc import evaluate_arc_tasks
    summary, per_task = evaluate_arc_tasks(model, processor, evaluation_tasks, num_views=32, batch_size=256)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from vision_trm.modeling_trm import TRMModel
from vision_trm.processing import TRMProcessor, aligned_input, output_size_from_demonstrations
from vision_trm.train_scripts.arc_voting import (
    attempts_report,
    check_grid_head,
    demonstrated_output_sizes,
    model_voting_views,
    predict_views,
    task_as_the_model_reads_it,
    task_canvas,
    vote,
)
from vision_trm.train_scripts.data_arc import build_task_vocabulary, load_arc_tasks
from vision_trm.train_scripts.evaluation import (
    copy_at_demonstrated_size_grid,
    copy_scaled_or_tiled_grid,
    load_metric,
    majority_colour_grid,
)
from vision_trm.train_scripts.test_time_training import solve_arc_task


def task_id_for(task: dict, task_vocabulary: dict, num_task_ids: int) -> int:
    """The task's trained id, or 0 ("no task") when the vocabulary does not know it or the model has no such row."""
    task_id = task_vocabulary.get(task["id"], 0)
    return task_id if 0 < task_id < num_task_ids else 0


def check_tasks(tasks) -> None:
    """Each task needs a name (`"id"`) to be reported under, and scoring needs every test output: say which is
    missing rather than scoring it as wrong."""
    for number, task in enumerate(tasks):
        if not isinstance(task, dict) or "id" not in task or "test" not in task:
            raise ValueError(f"tasks[{number}] must be a dict with 'id', 'train' and 'test' (load_arc_tasks' form)")
        for index, pair in enumerate(task["test"]):
            if pair.get("output") is None:
                raise ValueError(f"task {task.get('id', '?')} test input {index} has no 'output' to score against "
                                 "(use test_time_training.solve_arc_task to predict without scoring)")


def vote_all_tasks(model, processor, tasks, task_ids, views, batch_size: int, show_progress: bool,
                   size_from_demonstrations: bool = False) -> list[list]:
    """Voted candidates per task per test input; the views of several test inputs share each forward."""
    tasks = [task_as_the_model_reads_it(model, task) for task in tasks]
    items = [(pair["input"], task_id, view, task_canvas(model, processor, task), size)
             for task, task_id in zip(tasks, task_ids)
             for pair, size in zip(task["test"], demonstrated_output_sizes(task, size_from_demonstrations))
             for view in views]
    with tqdm(total=len(items), desc="ARC views", unit="view", disable=not show_progress) as bar:
        predictions = predict_views(model, processor, items, batch_size,
                                    on_batch=lambda done, total: bar.update(done - bar.n))
    candidates, start = [], 0
    for task in tasks:
        per_input = []
        for _ in task["test"]:
            per_input.append(vote(predictions[start:start + len(views)]))
            start += len(views)
        candidates.append(per_input)
    return candidates


def solve_all_tasks(model, processor, tasks, task_ids, num_views: int, ttt_steps: int, show_progress: bool,
                    seed: int, ttt_kwargs: dict) -> tuple[list[list], dict]:
    """`solve_arc_task` on each task in turn: its attempts per test input, and the fitting record per task."""
    reports, fitting = [], {}
    for task, task_id in tqdm(list(zip(tasks, task_ids)), desc="ARC test-time training", unit="task",
                              disable=not show_progress):
        result = solve_arc_task(model, processor, task, steps=ttt_steps, num_views=num_views, seed=seed,
                                start_from_task_id=task_id or None, **ttt_kwargs)
        reports.append([{"attempts": result.attempts[i], "votes": result.votes[i],
                         "emit_confidence": result.emit_confidence[i],
                         "num_distinct_answers": result.num_distinct_answers[i], "correct": result.correct[i]}
                        for i in range(len(task["test"]))])
        fitting[task["id"]] = {"steps": result.steps, "stopped_at_time_bound": result.stopped_at_time_bound,
                               "start": result.start, "first_loss": result.loss_curve[0] if result.loss_curve else None,
                               "last_loss": result.loss_curve[-1] if result.loss_curve else None,
                               "fit_seconds": result.fit_seconds, "seconds": result.seconds}
    return reports, fitting


def evaluate_arc_tasks(model, processor, tasks, num_views: int = 32, ttt_steps: int = 0,
                       ttt_max_seconds: float | None = None, batch_size: int = 64, seed: int = 0,
                       task_vocabulary: dict | None = None, show_progress: bool = True,
                       ttt_kwargs: dict | None = None, size_from_demonstrations: bool = False) -> tuple[dict, dict]:
    """Scores `tasks` (dicts `{"id", "train", "test"}` with test outputs) by voting over `num_views` views.

    Args:
        model: a `TRMModel` or `TRMForMultitaskReasoning` with the grid head, on its device (put in eval mode here
            for the voting, and back in its previous mode after).
        processor: its `TRMProcessor`.
        num_views: views per test input (`arc_voting.voting_views`).
        ttt_steps: 0 = predict with the trained task rows; K > 0 = `solve_arc_task` with K steps per task.
        ttt_max_seconds: with `ttt_steps`, the fitting time bound per task.
        batch_size: rows per forward (views of several test inputs together).
        task_vocabulary: task name -> id (default: the processor's); unknown tasks get id 0.
        ttt_kwargs: further keyword arguments of `solve_arc_task` (`lora_r`, `learning_rate`, ...).
        size_from_demonstrations: decode each test input's answer at the size its task's demonstrations agree on
            (`processing.output_size_from_demonstrations`; free where they agree on none), instead of the size the
            model's own frame gives.
    Returns:
        `(summary, per_task)`: the summary holds pass@1, pass@2, exact_match, per_cell_accuracy and
        per_cell_accuracy_over_union (attempt 1) over the tasks, the same for each trivial baseline (`baselines`, see
        `BASELINES`), their counts, `num_views`, `ttt_steps`, `ttt_max_seconds`, each of `ttt_kwargs` as
        `ttt_<name>` and the seconds taken; `per_task` maps
        each task name to `{"task_id", "pass@1", "pass@2", "test_inputs", "ttt"}`: the id used, whether it is solved,
        per test input `{"test_index", "attempts", "votes", "emit_confidence", "num_distinct_answers", "correct"}`,
        and after TTT its fitting record (steps, time bound hit, start, first and last loss, seconds; else None).
    """
    check_grid_head(model)
    check_tasks(tasks)
    vocabulary = processor.task_vocabulary if task_vocabulary is None else task_vocabulary
    task_ids = [task_id_for(task, vocabulary, model.config.num_task_ids) for task in tasks]
    started, was_training = time.perf_counter(), model.training
    fitting = {}
    model.eval()
    try:
        if ttt_steps:
            kwargs = {"max_seconds": ttt_max_seconds, "predict_batch_size": batch_size,
                      "size_from_demonstrations": size_from_demonstrations, **(ttt_kwargs or {})}
            reports, fitting = solve_all_tasks(model, processor, tasks, task_ids, num_views, ttt_steps, show_progress,
                                               seed, kwargs)
        else:
            views = model_voting_views(model, num_views, seed)
            candidates = vote_all_tasks(model, processor, tasks, task_ids, views, batch_size, show_progress,
                                        size_from_demonstrations)
            reports = [[attempts_report(c, pair["output"]) for c, pair in zip(per_input, task["test"])]
                       for per_input, task in zip(candidates, tasks)]
    finally:
        model.train(was_training)
    per_task = {}
    for task, task_id, task_reports in zip(tasks, task_ids, reports):
        test_inputs = [{"test_index": index, **report} for index, report in enumerate(task_reports)]
        per_task[task["id"]] = {"task_id": task_id, "pass@1": all(t["correct"][:1] == [True] for t in test_inputs),
                                "pass@2": all(any(t["correct"]) for t in test_inputs), "test_inputs": test_inputs,
                                "ttt": fitting.get(task["id"])}
    summary = {**score(tasks, per_task), "baselines": trivial_baselines(tasks),
               "by_output_size": size_breakdown(tasks, per_task), "by_size_rule": size_rule_breakdown(tasks, per_task),
               "near_misses": near_misses(tasks, per_task), "num_views": num_views, "size_from_demonstrations": size_from_demonstrations, "ttt_steps": ttt_steps,
               "ttt_max_seconds": ttt_max_seconds, **{f"ttt_{k}": v for k, v in (ttt_kwargs or {}).items()},
               "seconds": round(time.perf_counter() - started, 1)}
    return summary, per_task


def score(tasks, per_task, per_input: bool = False) -> dict:
    """pass@1 / pass@2 per task, exact match and per-cell accuracy per test input, through `arc_exact_match`
    (`per_input`: also each test input's per-cell accuracy, in task order)."""
    metric = load_metric("arc_exact_match")
    names = []
    for task in tasks:
        for report, pair in zip(per_task[task["id"]]["test_inputs"], task["test"]):
            metric.add(predictions=json.dumps(report["attempts"]),
                       references=json.dumps(np.asarray(pair["output"]).tolist()))
            names.append(task["id"])
    return metric.compute(task_ids=names, per_input=per_input)


BASELINES = {
    "copy_input": lambda task, grid: np.asarray(grid).tolist(),
    "majority_colour": lambda task, grid: majority_colour_grid(grid),
    "copy_scaled_or_tiled": lambda task, grid: copy_scaled_or_tiled_grid(task["train"], grid),
    "copy_at_demonstrated_size": lambda task, grid: copy_at_demonstrated_size_grid(task["train"], grid),
}


def baseline_answers(tasks, name: str) -> dict:
    """The baseline `name` of `BASELINES` as a `per_task` of one attempt per test input, scored like a model's."""
    answer = BASELINES[name]
    return {task["id"]: {"test_inputs": [{"attempts": [answer(task, pair["input"])]} for pair in task["test"]]}
            for task in tasks}


def trivial_baselines(tasks) -> dict:
    """pass@1, exact match and per-cell accuracy (also over the union) of each baseline of `BASELINES` (one attempt per
    test input), scored as the model is: the figures a model's must be read against."""
    results = {}
    for name in BASELINES:
        scored = score(tasks, baseline_answers(tasks, name))
        results[name] = {key: scored[key] for key in ("pass@1", "exact_match", "per_cell_accuracy",
                                                      "per_cell_accuracy_over_union")}
    return results


def size_breakdown(tasks, per_task) -> dict:
    """Where attempt 1 stands against copying the input, split by whether the answer keeps the input's size.

    `kept` / `changed`: the test inputs whose output has / does not have the input's size, and on how many attempt 1
    has the right size. On the kept-size inputs answered at that size, the share of cells attempt 1 gets right beside
    the share the input itself gets right (copy-the-input's): a model at copy's level there has learned the frame
    but no edit. There too, the cells attempt 1 changes from the input, right and wrong, beside the cells the
    answers change (a model that only copies edits none).
    """
    counts = {"kept": [0, 0], "changed": [0, 0]}
    cells = model_right = copy_right = edited_right = edited_wrong = answer_changes = 0
    for task in tasks:
        for report, pair in zip(per_task[task["id"]]["test_inputs"], task["test"]):
            given, expected = np.asarray(pair["input"]), np.asarray(pair["output"])
            attempt = np.asarray(report["attempts"][0]) if report["attempts"] else np.zeros((0, 0))
            group = counts["kept" if given.shape == expected.shape else "changed"]
            group[0] += 1
            group[1] += attempt.shape == expected.shape
            if given.shape == expected.shape == attempt.shape:
                cells += expected.size
                model_right += int((attempt == expected).sum())
                copy_right += int((given == expected).sum())
                edited = attempt != given
                edited_right += int((edited & (attempt == expected)).sum())
                edited_wrong += int((edited & (attempt != expected)).sum())
                answer_changes += int((given != expected).sum())
    return {
        **{f"{name}_size_inputs": total for name, (total, _) in counts.items()},
        **{f"{name}_size_right": right for name, (_, right) in counts.items()},
        "kept_size_cells_right": model_right / cells if cells else None,
        "kept_size_cells_right_by_copying": copy_right / cells if cells else None,
        "kept_size_cells_edited_right": edited_right, "kept_size_cells_edited_wrong": edited_wrong,
        "kept_size_cells_the_answers_change": answer_changes,
    }


SIZE_RULES = ("keeps_size", "scaled_or_tiled", "other_known_size", "no_known_size")


def size_rule_of(task: dict, test_input) -> str:
    """Which of `SIZE_RULES` the demonstrations of `task` give `test_input` (no hindsight: the answer is not read):
    the input's own size; a size the input is upscaled or tiled to (`processing.aligned_input`); another size they
    agree on (a fixed size or a scale neither copy fits); or none."""
    size = output_size_from_demonstrations(task["train"], test_input) if task["train"] else None
    if size is None:
        return "no_known_size"
    if size == np.shape(test_input):
        return "keeps_size"
    return "scaled_or_tiled" if aligned_input(task["train"], test_input).shape == size else "other_known_size"


def size_rule_breakdown(tasks, per_task) -> dict:
    """Attempt 1 beside copy-the-input, the copied, scaled or tiled input and that copy at the demonstrations' size
    (`BASELINES`), per size rule the demonstrations give (`size_rule_of`): test inputs, per-cell accuracy of each (the
    mean over the group's inputs; `<name>_over_union`: over the union of answer and target, where an answer larger
    than its target loses its extra cells), and how many answers are a single cell (the frame a model unsure of the
    size falls back to)."""
    answers = {"model": per_task}
    for name in ("copy_input", "copy_scaled_or_tiled", "copy_at_demonstrated_size"):
        answers[name] = baseline_answers(tasks, name)
    per_input = {}
    for name, answered in answers.items():
        scored = score(tasks, answered, per_input=True)
        per_input[name] = scored["per_input_cell_accuracy"]
        per_input[f"{name}_over_union"] = scored["per_input_cell_accuracy_over_union"]
    groups = {rule: {"test_inputs": 0, **dict.fromkeys(per_input, 0.0), "single_cell_answers": 0} for rule in SIZE_RULES}
    index = 0
    for task in tasks:
        for report, pair in zip(per_task[task["id"]]["test_inputs"], task["test"]):
            group = groups[size_rule_of(task, pair["input"])]
            group["test_inputs"] += 1
            for name, values in per_input.items():
                group[name] += values[index]
            group["single_cell_answers"] += bool(report["attempts"]) and np.shape(report["attempts"][0]) == (1, 1)
            index += 1
    for group in groups.values():
        for name in per_input:
            group[name] = group[name] / group["test_inputs"] if group["test_inputs"] else None
    return groups


def near_misses(tasks, per_task) -> dict:
    """How close attempt 1 comes where it is not exact: of the test inputs answered at the right size, how many are
    1-3 cells from exact and how many have at least 95% of their cells right (exact answers included); and how many
    solved tasks (pass@2) keep their input's size in every test input."""
    right_size = close = mostly_right = 0
    solved_keeping_size = solved_changing_size = 0
    for task in tasks:
        report = per_task[task["id"]]
        for test, pair in zip(report["test_inputs"], task["test"]):
            expected = np.asarray(pair["output"])
            attempt = np.asarray(test["attempts"][0]) if test["attempts"] else np.zeros((0, 0))
            if attempt.shape != expected.shape:
                continue
            wrong = int((attempt != expected).sum())
            right_size += 1
            close += 1 <= wrong <= 3
            mostly_right += wrong <= 0.05 * expected.size
        if report["pass@2"]:
            keeps = all(np.shape(pair["input"]) == np.shape(pair["output"]) for pair in task["test"])
            solved_keeping_size += keeps
            solved_changing_size += not keeps
    return {"attempt_1_right_size": right_size, "one_to_three_cells_wrong": close,
            "at_least_95_percent_cells_right": mostly_right, "solved_tasks_keeping_size": solved_keeping_size,
            "solved_tasks_changing_size": solved_changing_size}


SPLITS = ("evaluation", "training", "evaluation_demonstrations")


def tasks_of_split(training_tasks, evaluation_tasks, split: str) -> list[dict]:
    """The tasks `--split` scores; `evaluation_demonstrations` asks each evaluation task's demonstrations back as its
    test inputs (with the task's own id, as the recipe trained them)."""
    if split == "evaluation":
        return evaluation_tasks
    if split == "training":
        return training_tasks
    if split == "evaluation_demonstrations":
        return [{"id": task["id"], "train": task["train"], "test": task["train"]} for task in evaluation_tasks]
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def positive_int(text: str) -> int:
    """argparse type for counts: 0 or fewer views / tasks / rows is never a meaningful request, so refuse it."""
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True)
    parser.add_argument("--arc_version", default="1")
    parser.add_argument("--num_views", type=positive_int, default=32,
                        help="Views voted over (>= 1): the 8 dihedral transforms x colour permutations, within the "
                             "model's config.arc_view_parts (without colours: at most 8).")
    parser.add_argument("--split", choices=SPLITS, default="evaluation",
                        help="evaluation: the held-out test inputs. training: the training tasks' test pairs, which "
                             "the ARC recipe trains on, so this measures how well the model fits what it saw. "
                             "evaluation_demonstrations: each evaluation task's demonstrations scored as its test "
                             "inputs (trained on too: the fit where the held-out answers are asked).")
    parser.add_argument("--max_tasks", type=positive_int, default=None,
                        help="Evaluate only the first N tasks (quick runs); default: all of them.")
    parser.add_argument("--batch_size", type=positive_int, default=64, help="Rows per forward.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ttt_steps", type=non_negative_int, default=0,
                        help="Test-time training steps per task (0: none).")
    parser.add_argument("--ttt_max_seconds", type=positive_float, default=None,
                        help="Time bound on each task's test-time training.")
    parser.add_argument("--ttt_learning_rate", type=positive_float, default=1e-2,
                        help="Learning rate of the fitted task embedding.")
    parser.add_argument("--ttt_lora_r", type=non_negative_int, default=0,
                        help="Rank of LoRA adapters trained with the embedding at test time (0: the embedding alone).")
    parser.add_argument("--ttt_lora_learning_rate", type=positive_float, default=1e-3,
                        help="Learning rate of the LoRA adapters (with --ttt_lora_r).")
    parser.add_argument("--ttt_start_from_trained_row", action=argparse.BooleanOptionalAction, default=True,
                        help="A task with a trained id starts test-time training from its row.")
    parser.add_argument("--size_from_demonstrations", action=argparse.BooleanOptionalAction, default=False,
                        help="Decode each answer at the output size its task's demonstrations agree on (kept, "
                             "fixed or scaled; free where they agree on none) instead of the model's own frame.")
    parser.add_argument("--output_json", default=None, help="Default: <model>/arc_eval_attempts.json")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_arguments(argv)
    model = TRMModel.from_pretrained(args.model_name_or_path).to(args.device).eval()
    check_grid_head(model, args.model_name_or_path)
    processor = TRMProcessor.from_pretrained(args.model_name_or_path)
    training_tasks, evaluation_tasks = load_arc_tasks(args.arc_version)
    vocabulary = processor.task_vocabulary or build_task_vocabulary(training_tasks, evaluation_tasks)
    if not args.ttt_start_from_trained_row:
        vocabulary = {}
    tasks = tasks_of_split(training_tasks, evaluation_tasks, args.split)
    tasks = tasks if args.max_tasks is None else tasks[: args.max_tasks]
    ttt_kwargs = {"learning_rate": args.ttt_learning_rate, "lora_r": args.ttt_lora_r,
                  "lora_learning_rate": args.ttt_lora_learning_rate}
    summary, per_task = evaluate_arc_tasks(model, processor, tasks, args.num_views, args.ttt_steps,
                                           args.ttt_max_seconds, args.batch_size, args.seed, vocabulary,
                                           ttt_kwargs=ttt_kwargs, size_from_demonstrations=args.size_from_demonstrations)
    summary = {"model": args.model_name_or_path, "arc_version": args.arc_version, "split": args.split, **summary}
    output = Path(args.output_json or Path(args.model_name_or_path) / "arc_eval_attempts.json")
    output.write_text(json.dumps({"summary": summary, "tasks": per_task}, indent=1))
    ttt = f", test-time training {args.ttt_steps} steps" if args.ttt_steps else ""
    ttt += ", sizes from the demonstrations" if args.size_from_demonstrations else ""
    print(f"ARC-AGI-{args.arc_version} {args.split} tasks' test inputs, {summary['num_tasks']} tasks, {summary['num_test_inputs']} test "
          f"inputs, {args.num_views} views{ttt}: pass@1 {summary['pass@1']:.2%}, pass@2 {summary['pass@2']:.2%}, "
          f"per-cell {summary['per_cell_accuracy']:.2%} ({summary['per_cell_accuracy_over_union']:.2%} over the union of "
          f"answer and target; attempts in {output})")
    sizes = summary["by_output_size"]
    kept = (f"; there, {sizes['kept_size_cells_right']:.1%} of cells at the right size against copy's "
            f"{sizes['kept_size_cells_right_by_copying']:.1%}" if sizes["kept_size_cells_right"] is not None else "")
    print("baselines, one attempt: " + "; ".join(
        f"{name.replace('_', ' ')} {b['per_cell_accuracy']:.2%} per cell ({b['per_cell_accuracy_over_union']:.2%} over "
        f"the union), pass@1 {b['pass@1']:.2%}"
        for name, b in summary["baselines"].items()))
    print(f"attempt 1 has the right size on {sizes['kept_size_right']} of {sizes['kept_size_inputs']} inputs whose "
          f"answer keeps the input's size{kept}; on {sizes['changed_size_right']} of {sizes['changed_size_inputs']} "
          "whose size changes")
    return summary


if __name__ == "__main__":
    main()
