#!/usr/bin/env python
"""ARC-AGI evaluation with test-time augmentation and voting (the TRM / VARC protocol).

For every test input of every evaluation task: `--num_views` augmented views (the identity plus random dihedral x
colour-permutation views, colour 0 fixed), one forward each with the task's learned id, each predicted grid mapped
back through the inverse transform, then a majority vote; ties are broken by the halting head's EMIT confidence
(summed over the views that voted for a grid). Attempt 1 = the winner, attempt 2 = the runner-up. A task counts as
solved when every one of its test outputs is right. Writes a per-task JSON of attempts and votes.

    python train_scripts/evaluate_arc.py --model_name_or_path outputs/tiny-composite --max_tasks 20
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from vision_trm.modeling_trm import TRMModel
from vision_trm.processing import TRMProcessor
from vision_trm.train_scripts.data_arc import (
    build_task_vocabulary,
    colour_permutation,
    inverse_transform_grid,
    load_arc_tasks,
    transform_grid,
)
from vision_trm.train_scripts.evaluation import load_metric


def views_for(num_views: int, rng: np.random.Generator):
    """Identity first, then the 7 other dihedral transforms, each with a random colour permutation, cycling."""
    views = [(0, None)]
    for k in range(1, num_views):
        views.append((k % 8, colour_permutation(rng)))
    return views


def emit_confidence(outputs) -> torch.Tensor:
    """P(EMIT) of the halting head at the step where each sample halted."""
    logits = outputs.halting_logits  # [B, S, 2], column 0 = EMIT
    steps = (outputs.halting_steps - 1).clamp(0, logits.shape[1] - 1)
    chosen = logits[torch.arange(logits.shape[0]), steps]
    return chosen.float().softmax(-1)[:, 0]


@torch.no_grad()
def predict_test_input(model, processor, grid, task_id: int, views, batch_size: int = 32):
    """Votes over the views of one test input; returns [(grid, votes, confidence), ...] best first."""
    device = next(model.parameters()).device
    tally: dict[str, list] = {}
    for start in range(0, len(views), batch_size):
        chunk = views[start:start + batch_size]
        inputs = [transform_grid(grid, d, p).tolist() for d, p in chunk]
        batch = processor(inputs, task_ids=[task_id] * len(chunk), return_tensors="pt")
        outputs = model(**{name: batch[name].to(device) for name in processor.model_input_names if name in batch})
        confidence = emit_confidence(outputs).cpu().tolist()
        answers = processor.post_process_grid(outputs.grid_predictions)
        for index, (d, p) in enumerate(chunk):
            answer = inverse_transform_grid(answers[index], d, p).tolist()
            key = json.dumps(answer)
            entry = tally.setdefault(key, [answer, 0, 0.0])
            entry[1] += 1
            entry[2] += confidence[index]
    return sorted(((g, n, c) for g, n, c in tally.values()), key=lambda item: (-item[1], -item[2]))


def positive_int(text: str) -> int:
    """argparse type for counts: 0 or fewer views / tasks / rows is never a meaningful request, so refuse it."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def check_grid_head(model, name: str) -> None:
    """Voting needs the grid head's predictions; without it the forward returns no grid logits at all."""
    heads = list(getattr(model.config, "heads", []))
    if "grid" not in heads:
        raise ValueError(f"{name} has no grid head (config.heads = {heads}): ARC evaluation needs a model with the "
                         "'grid' head")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True)
    parser.add_argument("--arc_version", default="1")
    parser.add_argument("--num_views", type=positive_int, default=16, help="Augmented views voted over (>= 1).")
    parser.add_argument("--max_tasks", type=positive_int, default=None,
                        help="Evaluate only the first N tasks (quick runs); default: all of them.")
    parser.add_argument("--batch_size", type=positive_int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_json", default=None, help="Default: <model>/arc_eval_attempts.json")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    model = TRMModel.from_pretrained(args.model_name_or_path).to(args.device).eval()
    check_grid_head(model, args.model_name_or_path)
    model.freeze_pretrained_tower()
    processor = TRMProcessor.from_pretrained(args.model_name_or_path)
    training_tasks, evaluation_tasks = load_arc_tasks(args.arc_version)
    vocabulary = processor.task_vocabulary or build_task_vocabulary(training_tasks, evaluation_tasks)
    tasks = evaluation_tasks if args.max_tasks is None else evaluation_tasks[: args.max_tasks]
    rng = np.random.default_rng(args.seed)
    metric = load_metric("arc_exact_match")
    report, started = {}, time.time()
    for number, task in enumerate(tasks, 1):
        task_id = vocabulary.get(task["id"], 0)
        if task_id == 0 or task_id >= model.config.num_task_ids:
            task_id = 0  # unknown task: no task embedding
        report[task["id"]] = []
        for test_index, pair in enumerate(task["test"]):
            ranked = predict_test_input(model, processor, pair["input"], task_id, views_for(args.num_views, rng),
                                        args.batch_size)
            attempts = [g for g, _, _ in ranked[:2]]
            metric.add(predictions=json.dumps(attempts), references=json.dumps(pair["output"]))
            report[task["id"]].append({
                "test_index": test_index, "attempts": attempts, "votes": [n for _, n, _ in ranked[:2]],
                "emit_confidence": [round(c, 4) for _, _, c in ranked[:2]],
                "correct": [a == pair["output"] for a in attempts], "num_distinct_answers": len(ranked)})
        if number % 50 == 0:
            print(f"{number}/{len(tasks)} tasks, {time.time() - started:.0f} s", flush=True)
    task_ids = [name for name, items in report.items() for _ in items]
    scores = metric.compute(task_ids=task_ids)
    summary = {"model": args.model_name_or_path, "arc_version": args.arc_version, "num_views": args.num_views,
               **scores, "seconds": round(time.time() - started, 1)}
    output = Path(args.output_json or Path(args.model_name_or_path) / "arc_eval_attempts.json")
    output.write_text(json.dumps({"summary": summary, "tasks": report}, indent=1))
    print(f"ARC-AGI-{args.arc_version} evaluation, {scores['num_tasks']} tasks, {scores['num_test_inputs']} test "
          f"inputs, {args.num_views} views: pass@1 {scores['pass@1']:.2%}, pass@2 {scores['pass@2']:.2%}, "
          f"per-cell {scores['per_cell_accuracy']:.2%} (attempts in {output})")
    return summary


if __name__ == "__main__":
    main()
