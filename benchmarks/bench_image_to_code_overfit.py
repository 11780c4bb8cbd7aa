#!/usr/bin/env python
"""Can the text decoder read the image at all? Memorise a handful of (image, code) pairs.

A conditional decoder that works memorises 9 pairs (3 per kind) in a few hundred steps; one that ignores its
memory writes the same program for every image however low its teacher-forced loss gets (the first token has
nothing to go on). The figure to read is `exact` (greedy programs equal to their targets) and `memory_std` (how much
the decoder's memory differs between the 9 images; near 0 = the images are washed out before the decoder).

    python benchmarks/bench_image_to_code_overfit.py                          # the preset's halting loss (0.5)
    python benchmarks/bench_image_to_code_overfit.py --halting_loss_weight 0  # without it
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch

from vision_trm.configuration import TRMConfig
from vision_trm.modeling_trm import TRMForMultitaskReasoning
from vision_trm.processing import TRMProcessor
from vision_trm.train_scripts.collator import MultimodalCollator
from vision_trm.train_scripts.data_sources import CompositeSpec, build_composite
from vision_trm.train_scripts.image_to_code.evaluation import generate_programs
from vision_trm.train_scripts.image_to_code.generator import MAX_CODE_CHARS


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--halting_loss_weight", type=float, default=None, help="default: the preset's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="write the result as JSON here")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    spec = CompositeSpec(sources=("image_to_code",), weights=(1.0,), seed=args.seed,
                         extra={"image_to_code": {"train": 3, "validation": 1, "test": 1}})
    data, vocabulary = build_composite(spec, use_cache=False)
    overrides = dict(image_size=128, patch_size=16, max_text_length=MAX_CODE_CHARS + 2, deep_supervision_steps=1,
                     heads=["text"], num_task_ids=len(vocabulary) + 1)
    if args.halting_loss_weight is not None:
        overrides["halting_loss_weight"] = args.halting_loss_weight
    config = TRMConfig.from_preset("tiny", **overrides)
    model = TRMForMultitaskReasoning(config)
    collator = MultimodalCollator(TRMProcessor.from_config(config, task_vocabulary=vocabulary))
    rows = list(data["train"])
    batch = collator(rows)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        memory = model.trm.encode_memory(batch["pixel_values"], batch["modality_ids"], batch["task_ids"])
    programs = generate_programs(model, collator, rows, batch_size=len(rows))
    result = {
        "pairs": len(rows), "steps": args.steps, "learning_rate": args.learning_rate,
        "halting_loss_weight": config.halting_loss_weight, "final_loss": round(loss.item(), 4),
        "exact": sum(p == r["text_target"] for p, r in zip(programs, rows)),
        "distinct_programs": len(set(programs)), "memory_std": round(memory.std(0).mean().item(), 4),
        "train_seconds": round(seconds, 1), "seed": args.seed, "date": datetime.date.today().isoformat(),
        "hardware": f"{platform.machine()} CPU, torch {torch.__version__}",
        "command": "python benchmarks/bench_image_to_code_overfit.py " + " ".join(argv),
    }
    print(json.dumps(result, indent=1))
    if args.output:
        args.output.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
