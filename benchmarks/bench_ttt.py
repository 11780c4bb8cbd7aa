"""Test-time training cost: seconds per TTT step and for the voting prediction, on a real ARC task.

    python benchmarks/bench_ttt.py --preset arc-tiny --steps 10                 # CPU
    python benchmarks/bench_ttt.py --preset arc --steps 3 --json ttt_arc.json
    python benchmarks/bench_ttt.py --preset arc --steps 20 --lora_r 8           # with LoRA adapters

A freshly initialised model of the preset (the cost does not depend on the weights) solves a bundled ARC-AGI-1
evaluation task (`spaces_app/examples/arc/`) with `solve_arc_task`: `--steps` AdamW steps on its demonstrations
(one row per pair per step unless `--batch_size`), then `--num_views` views of each test input in batches of
`--predict_batch_size`. Prints (and writes with `--json`) seconds per step, the prediction's seconds, the hardware,
the thread count and the machine's load average (other work on a shared CPU slows every timing).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import torch

from vision_trm.configuration import TRMConfig
from vision_trm.modeling_trm import TRMModel
from vision_trm.processing import TRMProcessor
from vision_trm.train_scripts.test_time_training import solve_arc_task

TASKS = Path(__file__).resolve().parents[1] / "spaces_app" / "examples" / "arc"


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="arc-tiny")
    parser.add_argument("--task", default="00576224", help="a bundled task: " + ", ".join(p.stem for p in
                                                                                            sorted(TASKS.glob("*.json"))))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--num_views", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=None)
    parser.add_argument("--predict_batch_size", type=int, default=32)
    parser.add_argument("--lora_r", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = TRMConfig.from_preset(args.preset, num_task_ids=2)
    torch.manual_seed(0)
    model = TRMModel(config).to(device).eval()
    processor = TRMProcessor.from_config(config)
    task = json.loads((TASKS / f"{args.task}.json").read_text())
    result = solve_arc_task(model, processor, task, steps=args.steps, num_views=args.num_views, lora_r=args.lora_r,
                            batch_size=args.batch_size, predict_batch_size=args.predict_batch_size)
    rows = args.batch_size or len(task["train"])
    record = {
        "benchmark": "test-time training",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(sys.argv) if argv is None else f"bench_ttt.main({argv!r})",
        "hardware": hardware(device),
        "torch": torch.__version__,
        "preset": args.preset,
        "trainable_parameters_of_the_model": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "task": args.task,
        "rows_per_step": rows,
        "lora_r": args.lora_r,
        "steps": result.steps,
        "fit_seconds": result.fit_seconds,
        "seconds_per_step": round(result.fit_seconds / max(result.steps, 1), 3),
        "num_views": args.num_views,
        "test_inputs": len(task["test"]),
        "predict_batch_size": args.predict_batch_size,
        "predict_seconds": result.predict_seconds,
        "load_average_1_5_15_min": [round(v, 2) for v in os.getloadavg()],
    }
    print(json.dumps(record, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    return record


if __name__ == "__main__":
    main()
