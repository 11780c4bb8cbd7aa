"""Forward and forward+backward throughput of TRMForMultitaskReasoning (the model Trainer trains), with model-FLOPs utilisation on a GPU.

    python benchmarks/bench_model.py                      # tiny preset on the CPU
    python benchmarks/bench_model.py --preset base --batch_size 64 --compile   # on a GPU: bf16, MFU

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` on one real step (so the no-gradient H-1 cycles,
the heads and the backward pass are all counted as executed), and MFU divides the achieved FLOP/s by a bf16
matrix-product ceiling measured in the same process (an 8192^3 product), not by a datasheet figure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from vision_trm.configuration import IGNORE_INDEX, MODALITY_GRID, MODALITY_IMAGE, MODALITY_TEXT, TRMConfig
from vision_trm.configuration.configuration_trm import parse_field_override
from vision_trm.modeling_trm import TRMForMultitaskReasoning
from vision_trm.processing import TRMProcessor


def synthetic_batch(config: TRMConfig, batch_size: int, text_length: int, device) -> dict:
    """A mixed batch (a third grids, a third images, a third text, with every label a real step would carry), or for
    a one-token-per-cell ARC preset a batch of random grids to copy, drawn by the processor."""
    if config.grid_head_type == "cells":
        return cell_batch(config, batch_size, device)
    generator = torch.Generator().manual_seed(0)
    side = config.max_grid_size
    modality = torch.tensor([MODALITY_TEXT, MODALITY_IMAGE, MODALITY_GRID]).repeat(batch_size // 3 + 1)[:batch_size]
    grid_labels = torch.full((batch_size, side, side), IGNORE_INDEX, dtype=torch.long)
    grid_rows = modality == MODALITY_GRID
    grid_labels[grid_rows, :12, :12] = torch.randint(0, 10, (int(grid_rows.sum()), 12, 12), generator=generator)
    labels = torch.where(modality == MODALITY_IMAGE,
                         torch.randint(0, config.num_labels, (batch_size,), generator=generator), IGNORE_INDEX)
    text = torch.randint(3, config.text_vocab_size, (batch_size, text_length), generator=generator)
    text_labels = torch.where((modality == MODALITY_TEXT)[:, None], text, torch.full_like(text, IGNORE_INDEX))
    batch = {
        "pixel_values": torch.randn(batch_size, 3, config.image_size, config.image_size, generator=generator),
        "modality_ids": modality,
        "labels": labels,
        "grid_labels": grid_labels,
        "decoder_input_ids": text,
        "decoder_attention_mask": torch.ones_like(text),
        "text_labels": text_labels,
    }
    return {key: value.to(device) for key, value in batch.items()}


def cell_batch(config: TRMConfig, batch_size: int, device) -> dict:
    """Random grids (sides 1..max_grid_size) at random whole-cell offsets, each its own target; with augmentation
    tokens, random views and task ids too (what an ARC recipe batch holds)."""
    rng = np.random.default_rng(0)
    grids = [rng.integers(0, 10, rng.integers(1, config.max_grid_size + 1, 2)).tolist() for _ in range(batch_size)]
    views = None
    if config.use_augmentation_tokens:
        views = [(int(rng.integers(0, 8)), [0, *rng.permutation(np.arange(1, 10)).tolist()]) for _ in grids]
    task_ids = rng.integers(0, config.num_task_ids, batch_size).tolist()
    batch = TRMProcessor.from_config(config)(grids, grid_targets=grids, task_ids=task_ids, augmentations=views,
                                             random_placement=True, seed=0)
    return {key: value.to(device) for key, value in batch.items()}


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_ceiling_tflops(device, dtype=torch.bfloat16, size=8192, repeats=10) -> float:
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12


def time_steps(step, device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / repeats


def count_flops(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default=None, help="default: tiny on CPU, base on GPU")
    parser.add_argument("--batch_size", type=int, default=None)
    parser.add_argument("--text_length", type=int, default=32)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (GPU)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field (JSON value), e.g. --set H_cycles=1 --set L_cycles=1")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    preset = args.preset or ("base" if device.type == "cuda" else "tiny")
    batch_size = args.batch_size or (64 if device.type == "cuda" else 16)
    overrides = dict(parse_field_override(item) for item in args.set)
    if preset.startswith("arc"):
        overrides.setdefault("num_task_ids", 801)  # ARC-AGI-1: 400 training + 400 evaluation tasks + "no task"
    config = TRMConfig.from_preset(preset, **{"max_text_length": max(args.text_length, 64), **overrides})
    torch.manual_seed(0)
    model = TRMForMultitaskReasoning(config).to(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    runnable = torch.compile(model) if args.compile else model
    batch = synthetic_batch(config, batch_size, args.text_length, device)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=device.type == "cuda")

    def forward_step():
        with torch.no_grad(), autocast:
            runnable(**batch)

    def train_step():
        with autocast:
            loss = runnable(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    model.eval()
    forward_seconds = time_steps(forward_step, device, args.warmup, args.repeats)
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    train_seconds = time_steps(train_step, device, args.warmup, args.repeats)
    peak_memory_gib = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    # Count on the eager model: the FLOPs are the model's, whatever the compiler fuses.
    def eager_train_step():
        with autocast:
            model(**batch).loss.backward()
        model.zero_grad(set_to_none=True)

    train_flops = count_flops(eager_train_step)

    figures = {
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "preset": preset,
        "config_overrides": args.set,
        "parameters_total_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "parameters_trainable_M": round(sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6, 2),
        "batch_size": batch_size,
        "precision": "bf16 autocast" if device.type == "cuda" else "fp32",
        "compiled": args.compile,
        "forward_samples_per_s": round(batch_size / forward_seconds, 1),
        "train_samples_per_s": round(batch_size / train_seconds, 1),
        "train_gflops_per_sample": round(train_flops / batch_size / 1e9, 2),
    }
    if device.type == "cuda":
        ceiling = matmul_ceiling_tflops(device)
        achieved = train_flops / train_seconds / 1e12
        figures.update(
            peak_memory_GiB=round(peak_memory_gib, 2),
            achieved_train_TFLOPs=round(achieved, 1),
            bf16_matmul_ceiling_TFLOPs=round(ceiling, 1),
            mfu_vs_measured_matmul=round(achieved / ceiling, 3),
        )
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
