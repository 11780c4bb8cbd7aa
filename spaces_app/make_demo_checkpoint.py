#!/usr/bin/env python
"""Writes the Space's offline demo checkpoint from a trained run: weights, config, processor and tokenizer files,
the run's evaluation and plots — and no code (the app loads it with the installed package; a Hub export written by
`save_pretrained` / `push_to_hub.py` carries the code).

    python train_scripts/run_multimodal.py                                   # the main job -> outputs/tiny-composite
    python spaces_app/make_demo_checkpoint.py outputs/tiny-composite         # -> spaces_app/demo_checkpoint/

It only ever writes the files it lists below, and refuses a target folder that holds anything else.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

DEMO_CHECKPOINT = Path(__file__).resolve().parent / "demo_checkpoint"
# What a demo checkpoint holds; the weights and config are required, the rest is copied when the run wrote it.
REQUIRED_FILES = ("model.safetensors", "config.json", "processor_config.json", "tokenizer.json", "tokenizer_config.json")
OPTIONAL_FILES = ("README.md", "eval_results.json", "eval_table.md", "training_curves.png", "evaluation.png")
# Their `auto_map` names code files that a folder without code does not have: the installed package's registered
# Auto classes load it instead.
CONFIG_FILES = ("config.json", "processor_config.json")


def make_demo_checkpoint(run_dir: Path, target: Path = DEMO_CHECKPOINT) -> list[Path]:
    """Copies the demo files of `run_dir` into `target`; raises `ValueError` naming what is wrong."""
    run_dir, target = Path(run_dir), Path(target)
    missing = [name for name in REQUIRED_FILES if not (run_dir / name).is_file()]
    if missing:
        raise ValueError(f"{run_dir} is not a finished run folder: it lacks {missing}")
    if target.exists():
        foreign = sorted(p.name for p in target.iterdir() if p.name not in REQUIRED_FILES + OPTIONAL_FILES)
        if foreign:
            raise ValueError(f"refusing to write into {target}: it holds files this tool did not write: {foreign}")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in REQUIRED_FILES + OPTIONAL_FILES:
        if name in CONFIG_FILES:
            written.append(_write_without_auto_map(run_dir / name, target / name))
        elif (run_dir / name).is_file():
            written.append(Path(shutil.copyfile(run_dir / name, target / name)))
        elif (target / name).exists():
            (target / name).unlink()  # a file of an earlier demo that this run does not have: it would be stale
    return written


def _write_without_auto_map(source: Path, target: Path) -> Path:
    content = json.loads(source.read_text(encoding="utf-8"))
    content.pop("auto_map", None)
    target.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a folder written by train_scripts/run_multimodal.py")
    parser.add_argument("--target", type=Path, default=DEMO_CHECKPOINT)
    args = parser.parse_args(argv)
    try:
        written = make_demo_checkpoint(args.run_dir, args.target)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files to {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
