"""Copy benchmark: can the grid head reproduce its input? Random ARC grids in, the same grids out.

    python benchmarks/bench_copy.py --preset arc-cells-tiny --max_minutes 3            # CPU smoke run
    python benchmarks/bench_copy.py --preset arc-cells-tiny --head queries --max_minutes 3
    python benchmarks/bench_copy.py --preset arc-cells --batch_size 128 --max_minutes 5 --json copy.json   # GPU

Each training sample is a random grid (height and width drawn independently from `--min_side`..`--max_side`,
uniform colours) drawn cell-aligned (one cell per ViT token, the processor's `grid_layout="cells"`) at a random
whole-cell offset; the target is the same grid. Batches are built on the training device with tensor ops
(`TRMImageProcessor.render_cell_labels`, the same pixels the processor draws). `--head cells` trains the per-token
cell head on `cell_labels` (output where the input is); `--head queries` trains the cell-query head on the same
canvases with top-left-padded `grid_labels` (the head that measured 0.0-0.2% exact copies).

Plain AdamW, linear warm-up then cosine decay over the run (by step with `--max_steps`, by time with
`--max_minutes`), bf16 autocast and `torch.compile` of the ViT and the recursion on a GPU. At the end, 1,000 fresh
held-out grids (their own seed) are decoded through the model's `grid_predictions`: exact-copy rate, per-cell
accuracy (over the target's cells; a wrong size counts the missing cells wrong), size accuracy, plus samples/s,
the parameter count, date, hardware and seed, to stdout and `--json`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time

import torch

from vision_trm.configuration import BACKGROUND_CLASS, BORDER_CLASS, MODALITY_GRID, TRMConfig
from vision_trm.configuration.configuration_trm import parse_field_override
from vision_trm.modeling_trm import TRMForMultitaskReasoning
from vision_trm.modeling_trm.cell_head import cell_labels_to_grids
from vision_trm.processing import TRMProcessor


# ---------------------------------------------------------------------------------------------------- data
def random_cell_maps(batch_size: int, tokens: int, min_side: int, max_side: int, generator) -> torch.Tensor:
    """`[B, T, T]` cell-label maps of random grids at random whole-cell offsets (colours, frame, background)."""
    device = generator.device
    sides = torch.randint(min_side, max_side + 1, (2, batch_size), generator=generator, device=device)
    room = tokens - sides - 2  # the largest top (left) at which the framed grid still fits
    corner = (torch.rand((2, batch_size), generator=generator, device=device) * (room + 1)).floor().long()
    cells = torch.arange(tokens, device=device)

    def span(first, length):  # [B, T]: cells in [first, first + length)
        return (cells >= first[:, None]) & (cells < (first + length)[:, None])

    framed = span(corner[0], sides[0] + 2)[:, :, None] & span(corner[1], sides[1] + 2)[:, None, :]
    inside = span(corner[0] + 1, sides[0])[:, :, None] & span(corner[1] + 1, sides[1])[:, None, :]
    colours = torch.randint(0, 10, (batch_size, tokens, tokens), generator=generator, device=device)
    layout = torch.where(framed, BORDER_CLASS, BACKGROUND_CLASS)
    return torch.where(inside, colours, layout)


def copy_batch(image_processor, config: TRMConfig, head: str, batch_size: int, args, generator) -> dict:
    """Model inputs and targets of one copy batch; `grid_labels` always (the metrics read them)."""
    cell_maps = random_cell_maps(batch_size, config.cells_per_side, args.min_side, args.max_side, generator)
    grid_labels, _ = cell_labels_to_grids(cell_maps, config.max_grid_size)
    batch = {
        "pixel_values": image_processor.render_cell_labels(cell_maps),
        "modality_ids": torch.full((batch_size,), MODALITY_GRID, dtype=torch.long, device=cell_maps.device),
        "grid_labels": grid_labels,
    }
    if head == "cells":
        batch["cell_labels"] = cell_maps
    return batch


# -------------------------------------------------------------------------------------------------- metrics
def copy_metrics(grid_predictions: torch.Tensor, grid_labels: torch.Tensor) -> dict:
    """Sums over a batch: exact copies, right cells / target cells, right sizes."""
    target_cells = grid_labels != -100
    predicted_cells = grid_predictions != -100
    same_size = (target_cells == predicted_cells).flatten(1).all(1)
    return {
        "exact": int((grid_predictions == grid_labels).flatten(1).all(1).sum()),
        "right_cells": int(((grid_predictions == grid_labels) & target_cells).sum()),
        "target_cells": int(target_cells.sum()),
        "right_sizes": int(same_size.sum()),
    }


@torch.no_grad()
def evaluate(model, image_processor, config, args, autocast, device) -> dict:
    """Exact-copy rate, per-cell and size accuracy on `args.eval_samples` fresh grids (seed `args.seed + 1`)."""
    model.eval()
    generator = torch.Generator(device=device).manual_seed(args.seed + 1)
    totals = {"exact": 0, "right_cells": 0, "target_cells": 0, "right_sizes": 0}
    remaining = args.eval_samples
    while remaining > 0:
        size = min(args.batch_size, remaining)
        batch = copy_batch(image_processor, config, args.head, size, args, generator)
        with autocast:
            outputs = model.trm(batch["pixel_values"], modality_ids=batch["modality_ids"])
        for key, value in copy_metrics(outputs.grid_predictions, batch["grid_labels"]).items():
            totals[key] += value
        remaining -= size
    model.train()
    return {
        "exact_copy_rate": totals["exact"] / args.eval_samples,
        "per_cell_accuracy": totals["right_cells"] / max(totals["target_cells"], 1),
        "size_accuracy": totals["right_sizes"] / args.eval_samples,
        "eval_samples": args.eval_samples,
    }


# ------------------------------------------------------------------------------------------------- training
def build_config(args) -> TRMConfig:
    overrides = dict(parse_field_override(item) for item in args.set)
    overrides["grid_head_type"] = args.head
    if args.background_weight is not None:
        overrides["cell_background_loss_weight"] = args.background_weight
    return TRMConfig.from_preset(args.preset, **overrides)



def learning_rate_factor(progress: float, step: int, warmup_steps: int) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay to 10% as `progress` goes 0 -> 1."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def train(model, image_processor, config, args, autocast, device) -> dict:
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=args.weight_decay,
        betas=(0.9, 0.95), fused=device.type == "cuda",
    )
    generator = torch.Generator(device=device).manual_seed(args.seed)
    deadline = args.max_minutes * 60 if args.max_minutes else None
    losses, step, start, steady_start = [], 0, time.perf_counter(), None
    while True:
        elapsed = time.perf_counter() - start
        if (args.max_steps and step >= args.max_steps) or (deadline and elapsed >= deadline):
            break
        if step == args.warmup_steps_for_timing:
            synchronize(device)
            steady_start, steady_step = time.perf_counter(), step
        progress = step / args.max_steps if args.max_steps else elapsed / deadline
        for group in optimizer.param_groups:
            group["lr"] = args.lr * learning_rate_factor(progress, step, args.warmup_steps)
        batch = copy_batch(image_processor, config, args.head, args.batch_size, args, generator)
        if args.head == "queries":
            batch.pop("cell_labels", None)
        else:
            batch.pop("grid_labels")  # the cell head's targets are cell_labels (its loss checks any grid_labels)
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if step % args.log_every == 0 or step == 1:
            losses.append((step, round(loss.item(), 5)))
            print(f"step {step:6d}  loss {loss.item():.4f}  {time.perf_counter() - start:7.1f} s", flush=True)
    synchronize(device)
    total = time.perf_counter() - start
    steady = None
    if steady_start is not None and step > steady_step:
        steady = (step - steady_step) * args.batch_size / (time.perf_counter() - steady_start)
    return {
        "steps": step,
        "train_seconds": round(total, 2),
        "train_samples": step * args.batch_size,
        "samples_per_second": round(step * args.batch_size / total, 2),
        "steady_samples_per_second": round(steady, 2) if steady else None,
        "loss_curve": losses,
    }


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def hardware(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default=None, help="default: arc-cells on a GPU, arc-cells-tiny on the CPU")
    parser.add_argument("--head", choices=("cells", "queries"), default="cells")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field (JSON value), e.g. --set image_size=16 --set max_grid_size=6")
    parser.add_argument("--min_side", type=int, default=1)
    parser.add_argument("--max_side", type=int, default=30)
    parser.add_argument("--batch_size", type=int, default=None, help="default: 128 on a GPU, 16 on the CPU")
    parser.add_argument("--max_steps", type=int, default=0)
    parser.add_argument("--max_minutes", type=float, default=0.0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight_decay", type=float, default=0.01)
    parser.add_argument("--warmup_steps", type=int, default=100)
    parser.add_argument("--background_weight", type=float, default=None, help="config.cell_background_loss_weight")
    parser.add_argument("--eval_samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the ViT and the recursion (default: on a GPU)")
    parser.add_argument("--log_every", type=int, default=50)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if not args.max_steps and not args.max_minutes:
        parser.error("give --max_steps or --max_minutes")
    if not 1 <= args.min_side <= args.max_side:
        parser.error(f"need 1 <= --min_side <= --max_side, got {args.min_side}, {args.max_side}")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args.preset = args.preset or ("arc-cells" if device.type == "cuda" else "arc-cells-tiny")
    args.batch_size = args.batch_size or (128 if device.type == "cuda" else 16)
    args.compile = device.type == "cuda" if args.compile is None else args.compile
    # Steady throughput leaves out the first steps (compilation, allocator warm-up).
    args.warmup_steps_for_timing = min(5, max(1, args.max_steps // 2)) if args.max_steps else 5
    torch.manual_seed(args.seed)
    config = build_config(args)
    if args.max_side > config.max_grid_size:
        parser.error(f"--max_side {args.max_side} exceeds the config's max_grid_size {config.max_grid_size}")
    cell_px = config.patch_size // config.cells_per_token  # the queries head reads the same cell layout
    image_processor = TRMProcessor.from_config(config, grid_layout="cells", cell_px=cell_px).image_processor
    model = TRMForMultitaskReasoning(config).to(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if args.compile:
        # The ViT and the recursion hold nearly all the FLOPs and have no data-dependent control flow.
        for block in (model.trm.trainable_vit, model.trm.reasoning_core):
            block.compile()
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{args.preset} / {args.head} head: {parameters / 1e6:.2f}M trainable parameters on {hardware(device)}",
          flush=True)

    training = train(model, image_processor, config, args, autocast, device)
    metrics = evaluate(model, image_processor, config, args, autocast, device)
    result = {
        "benchmark": "copy",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(sys.argv) if argv is None else "bench_copy.main(" + repr(argv) + ")",
        "hardware": hardware(device),
        "torch": torch.__version__,
        "preset": args.preset,
        "head": args.head,
        "config_overrides": args.set,
        "trainable_parameters": parameters,
        "batch_size": args.batch_size,
        "sides": [args.min_side, args.max_side],
        "lr": args.lr,
        "compile": args.compile,
        "bf16": device.type == "cuda",
        "seed": args.seed,
        # Other work on a shared CPU slows the timings (not the accuracies, which count steps): say how busy it was.
        "load_average_1_5_15_min": [round(v, 2) for v in os.getloadavg()],
        **{key: value for key, value in training.items() if key != "loss_curve"},
        **metrics,
        "loss_curve": training["loss_curve"],
    }
    print(json.dumps({key: value for key, value in result.items() if key != "loss_curve"}, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
            handle.write("\n")
    return result


if __name__ == "__main__":
    main()
