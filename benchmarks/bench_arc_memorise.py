#!/usr/bin/env python
"""Can the ARC model memorise a few tasks' demonstrations, and which part of the training view makes it hard?

The trivial version of the ARC recipe: train from scratch on the demonstration pairs of the first `--tasks`
evaluation tasks whose grids are all at most `--max_side` cells (their test inputs are never trained on), with the
recipe's batches (`ArcPairBank`, cropped cell canvases), loss and optimizer groups (task embeddings at their own
learning rate), and report every `--eval_every` steps how well the model reproduces those pairs:

* `identity`: the pairs themselves (identity view, top-left corner); `augmented`: one random view of each;
* `test`: the tasks' held-out test inputs (identity view), for a glimpse of generalisation;
* each as `[token accuracy over the canvas, exact share of pairs]`.

`--views` names the parts of the view drawn at random (`conventions.ARC_VIEW_PARTS`: dihedral, colours, translation; or
none). The GPU model reproduced only 1.4% of the pairs it trained on for ~500 epochs; this asks where the fit goes.

    python benchmarks/bench_arc_memorise.py --views none                 # the pairs as they are
    python benchmarks/bench_arc_memorise.py --views dihedral,colours,translation
    python benchmarks/bench_arc_memorise.py --set position_encoding=learned --output r.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from vision_trm.configuration import TRMConfig
from vision_trm.configuration.configuration_trm import parse_field_override
from vision_trm.configuration.conventions import ARC_VIEW_PARTS
from vision_trm.modeling_trm import TRMForMultitaskReasoning
from vision_trm.processing import TRMProcessor, task_canvas_cells
from vision_trm.train_scripts.arc_batches import ArcPairBank, parse_view_parts
from vision_trm.train_scripts.arc_voting import task_view_table
from vision_trm.train_scripts.data_arc import build_task_vocabulary, load_arc_tasks
from vision_trm.train_scripts.training import task_embedding_parameter_groups


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="arc-tiny")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="TRMConfig field override")
    parser.add_argument("--views", default=",".join(ARC_VIEW_PARTS), help=f"comma list of {ARC_VIEW_PARTS}, or none")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--max_side", type=int, default=10)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--task_embedding_learning_rate", type=float, default=1e-2)
    parser.add_argument("--weight_decay", type=float, default=0.01)
    parser.add_argument("--warmup_steps", type=int, default=50)
    parser.add_argument("--canvas_slack", type=int, default=2, help="extra cells per side for translation")
    parser.add_argument("--eval_every", type=int, default=250)
    parser.add_argument("--fixed_views", type=int, default=0,
                        help="draw each sample's dihedral transform and colours from the first V voting views "
                             "(conventions.standard_arc_views) instead of at random, every view sharing its task "
                             "row: short for --set arc_training_views=V (a model with --set num_task_views=V "
                             "draws from its own table anyway)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="write the result as JSON here (a new file)")
    args = parser.parse_args(argv)
    try:
        args.view_parts = parse_view_parts(args.views)
    except ValueError as error:
        parser.error(f"--views: {error}")
    if args.output is not None and args.output.exists():
        parser.error(f"--output {args.output} exists; this tool does not overwrite it")
    return args


def small_tasks(evaluation_tasks: list[dict], count: int, max_side: int) -> list[dict]:
    def side(task):
        return max(max(len(grid), len(grid[0])) for pair in task["train"] for grid in (pair["input"], pair["output"]))

    tasks = [task for task in evaluation_tasks if side(task) <= max_side][:count]
    if len(tasks) < count:
        raise ValueError(f"only {len(tasks)} evaluation tasks have every demonstration within {max_side} cells")
    return tasks


def task_pairs(tasks: list[dict], split: str) -> list[dict]:
    return [dict(input=pair["input"], output=pair["output"], task_name=task["id"])
            for task in tasks for pair in task[split]]


def optimizer_for(model, args) -> torch.optim.Optimizer:
    """AdamW with the task embeddings in their own group (`training.task_embedding_parameter_groups`, the recipe's);
    weight decay on every other parameter."""
    every_name = [name for name, _ in model.named_parameters()]
    groups = task_embedding_parameter_groups(model, every_name, args.weight_decay, args.task_embedding_learning_rate)
    return torch.optim.AdamW(groups, lr=args.learning_rate)


@torch.no_grad()
def fit(model, bank: ArcPairBank, image_processor, augment: bool, views=None) -> list[float]:
    """`[token accuracy, exact share]` of every pair in `bank` under one view each (fixed seed; one of `views` when
    given)."""
    model.eval()
    batch = bank.batch(torch.arange(len(bank)), image_processor, torch.Generator().manual_seed(123), augment=augment,
                       views=views)
    predicted = model(**batch).cell_logits.argmax(-1)
    labels = batch["cell_labels"]
    scored = labels != -100
    tokens = ((predicted == labels) & scored).sum().item() / scored.sum().item()
    exact = ((predicted == labels) | ~scored).flatten(1).all(1).float().mean().item()
    model.train()
    return [round(tokens, 4), round(exact, 4)]


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    training, evaluation = load_arc_tasks("1")
    vocabulary = build_task_vocabulary(training, evaluation)
    tasks = small_tasks(evaluation, args.tasks, args.max_side)
    overrides = dict(parse_field_override(item) for item in args.set)
    if args.fixed_views:
        overrides["arc_training_views"] = args.fixed_views
    config = TRMConfig.from_preset(args.preset, **{"crop_cell_canvas": True, **overrides,
                                                   "num_task_ids": len(vocabulary) + 1})
    model = TRMForMultitaskReasoning(config).train()
    processor = TRMProcessor.from_config(config, task_vocabulary=vocabulary)
    canvases = {task["id"]: task_canvas_cells(task, processor.image_processor.tokens_per_side) for task in tasks}
    demonstrations = ArcPairBank(task_pairs(tasks, "train"), vocabulary, config.max_grid_size, canvases)
    tests = ArcPairBank(task_pairs(tasks, "test"), vocabulary, config.max_grid_size, canvases)
    optimizer = optimizer_for(model, args)
    views = task_view_table(model)
    peaks = [group["lr"] for group in optimizer.param_groups]
    generator = torch.Generator().manual_seed(args.seed)
    curve, start = [], time.time()
    for step in tqdm(range(1, args.steps + 1), desc="memorising", unit="step"):
        # Linear warm-up, cosine decay to 0, as the recipe's schedule.
        scale = min(1.0, step / args.warmup_steps) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group, peak in zip(optimizer.param_groups, peaks):
            group["lr"] = peak * scale
        indices = torch.randint(0, len(demonstrations), (args.batch_size,), generator=generator)
        batch = demonstrations.batch(indices, processor.image_processor, generator, canvas_slack=args.canvas_slack,
                                     view_parts=args.view_parts, views=views)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % args.eval_every == 0 or step == args.steps:
            curve.append({"step": step, "loss": round(loss.item(), 4), "seconds": round(time.time() - start, 1),
                          "identity": fit(model, demonstrations, processor.image_processor, augment=False),
                          "augmented": fit(model, demonstrations, processor.image_processor, augment=True,
                                           views=views),
                          "test": fit(model, tests, processor.image_processor, augment=False)})
            tqdm.write(json.dumps(curve[-1]))
    result = {
        "what": "memorise the demonstrations of a few ARC-AGI-1 evaluation tasks from scratch",
        "command": "python benchmarks/bench_arc_memorise.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.date.today().isoformat(),
        "hardware": f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "seed": args.seed, "preset": args.preset, "overrides": overrides, "view_parts": list(args.view_parts),
        "fixed_views": args.fixed_views,
        "tasks": [task["id"] for task in tasks], "pairs": len(demonstrations), "test_inputs": len(tests),
        "trainable_parameters": model.num_parameters(only_trainable=True), "curve": curve,
    }
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        with open(args.output, "x") as handle:
            json.dump(result, handle, indent=1)
    return result


if __name__ == "__main__":
    main()
