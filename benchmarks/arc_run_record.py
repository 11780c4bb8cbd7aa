#!/usr/bin/env python
"""One segment of an ARC recipe run as a record for `benchmarks/results/`, read from what the run wrote, so that no
figure of a record is copied by hand.

A segment is one `run_multimodal.py --recipe arc` call (`benchmarks/h200_arc_run.sh` on the GPU machine). Give it the
folder its files came back in (`run.tar.gz` beside the weight shards, as `$OUT` returns them) or the run folder itself
(with `eval_results.json`):

    python benchmarks/arc_run_record.py /work/runs/seg1 --segment 1 \
        --device_command "OVERRIDES='{...}' MINUTES=7.5 STEPS=6500 FIT=0.8 SEED=0 bash benchmarks/h200_arc_run.sh"

It prints the record as JSON (`--output FILE` writes it, refusing to overwrite): the training command, hardware,
date and seed; optimizer steps, samples and measured samples/s; the loss curve every `--loss_every` steps, the last
logged loss and learning rate; peak GPU memory; the identity-view evaluation the run made; and, where the segment's
voted evaluation is there (`arc_eval_attempts.json`), its summary and the tasks it solves (pass@2).
"""

from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path

RUN_ARCHIVE = "run.tar.gz"
EVAL_RESULTS = "eval_results.json"
LOG_HISTORY = "log_history.json"
VOTED_ATTEMPTS = "arc_eval_attempts.json"


def read_run_files(folder: Path) -> dict:
    """`{name: parsed JSON}` of the run's record files, from the run folder or from its `run.tar.gz`."""
    names = (EVAL_RESULTS, LOG_HISTORY, VOTED_ATTEMPTS)
    if (folder / EVAL_RESULTS).is_file():
        return {name: json.loads((folder / name).read_text()) for name in names if (folder / name).is_file()}
    archive = folder / RUN_ARCHIVE
    if not archive.is_file():
        raise FileNotFoundError(f"{folder} holds neither {EVAL_RESULTS} (a run folder) nor {RUN_ARCHIVE} (what a "
                                f"device call returns)")
    found = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            # Only the record files at the archive's top level are read, as data: nothing is extracted.
            if name in names and member.isfile() and len(Path(member.name).parts) <= 2:
                found[name] = json.load(tar.extractfile(member))
    if EVAL_RESULTS not in found:
        raise FileNotFoundError(f"{archive} has no {EVAL_RESULTS}: the run did not finish")
    return found


def loss_curve(logged: list[dict], every: int) -> list[list]:
    """`[step, loss]` at the logged steps that are multiples of `every` (and the first logged step)."""
    return [[entry["step"], round(entry["loss"], 4)] for i, entry in enumerate(logged)
            if i == 0 or entry["step"] % every == 0]


def segment_record(files: dict, segment: int | None, device_command: str | None, loss_every: int) -> dict:
    results = files[EVAL_RESULTS]
    train = results["train"]["arc"]
    # The training-loss entries of the Trainer's log (the others are evaluations and the run's summary).
    logged = [entry for entry in files.get(LOG_HISTORY, []) if "loss" in entry and "step" in entry]
    record = {
        "segment": segment, "device_command": device_command, "script_command": results["command"],
        "hardware": results["hardware"], "date": results["date"], "seed": results["seed"],
        "preset": results["preset"], "training_pairs": results["training_pairs"],
        "trainable_parameters": results["trainable_parameters"],
        "optimizer_steps": train["steps_this_call"], "train_seconds": round(train["train_runtime"], 1),
        "measured_train_samples_per_second": train["measured_train_samples_per_second"],
        "train_samples": train["train_samples"],
        "final_logged_loss": logged[-1]["loss"] if logged else None,
        "final_learning_rate": logged[-1].get("learning_rate") if logged else None,
        "loss_curve": loss_curve(logged, loss_every),
        "peak_gpu_memory_GiB": results.get("peak_gpu_memory_GiB"),
        "identity_view_eval": results.get("arc"),
    }
    voted = files.get(VOTED_ATTEMPTS)
    if voted is not None:
        record["voted_eval"] = voted["summary"]
        record["tasks_solved_pass@2"] = sorted(name for name, task in voted["tasks"].items() if task["pass@2"])
    return record


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the run folder, or the folder a device call's files came back in")
    parser.add_argument("--segment", type=int, default=None)
    parser.add_argument("--device_command", default=None, help="the command the device call ran")
    parser.add_argument("--loss_every", type=int, default=250, help="keep the logged loss every this many steps")
    parser.add_argument("--output", type=Path, default=None, help="write the record here (a new file)")
    args = parser.parse_args(argv)
    if args.loss_every < 1:
        parser.error(f"--loss_every must be >= 1, got {args.loss_every}")
    if args.output is not None and args.output.exists():
        parser.error(f"{args.output} exists; this tool does not overwrite files")
    record = segment_record(read_run_files(args.folder), args.segment, args.device_command, args.loss_every)
    text = json.dumps(record, indent=1)
    if args.output is not None:
        args.output.write_text(text + "\n")
    print(text)
    return record


if __name__ == "__main__":
    main()
