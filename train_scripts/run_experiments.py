#!/usr/bin/env python
"""Run one design-claim experiment: every arm with every seed, then a summary with mean ± 95% t-interval per arm,
the comparisons that decide the verdict, and a plot.

    python train_scripts/run_experiments.py --list
    python train_scripts/run_experiments.py --experiment planner --seeds 0,1,2              # CPU scale, minutes
    python train_scripts/run_experiments.py --experiment planner --seeds 0,1,2 --scale gpu  # the GPU version

Writes `<output_dir>/<scale>/<experiment>/`: `<arm>_seed<k>.json` per run (metrics, curves, parameter counts,
stability, wall time), `summary.json`, `summary.md` and `plot.png`. The folder is this tool's own: it refuses to
write into an existing folder it did not create (one holding nothing but this experiment's run records counts as its
own). `--reuse` keeps runs already written and runs only the missing ones (an interrupted experiment resumes); the
summary covers every arm that has a run for each seed in the folder. `--summarise` runs nothing: copy the records of
runs made elsewhere (`benchmarks/gpu_experiment_arms.sh` on a GPU machine) into the folder and summarise them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

from vision_trm.train_scripts.experiments import EXPERIMENTS, SCALES, RunResult
from vision_trm.train_scripts.experiments.core import (
    format_summary_markdown,
    plot_summary,
    run_metadata,
    summarise,
    write_json,
)

DEFAULT_OUTPUT_DIR = Path("benchmarks/results/experiments")
MARKER = ".run_experiments"  # marks a folder this tool created (and may therefore write into)
PENDING_EXIT_CODE = 3

logger = logging.getLogger(__name__)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be a comma-separated list of integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must name at least one seed, each once, got {text!r}")
    return seeds


def parse_arguments(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", help=f"one of: {', '.join(EXPERIMENTS)}")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (default 0,1,2)")
    parser.add_argument("--scale", default="cpu", choices=SCALES, help="test (seconds), cpu (minutes), gpu")
    parser.add_argument("--arms", default=None, help="comma-separated subset of the experiment's arms")
    parser.add_argument("--output_dir", default=str(DEFAULT_OUTPUT_DIR))
    parser.add_argument("--reuse", action="store_true", help="keep runs already written; run only missing ones")
    parser.add_argument("--summarise", action="store_true",
                        help="run nothing: summarise the records already in the folder (e.g. copied back from a GPU "
                             "machine); an arm counts when it has a record for every seed")
    parser.add_argument("--list", action="store_true", help="list the experiments and their arms")
    args = parser.parse_args(argv)
    if not args.list:
        if args.experiment is None:
            parser.error("--experiment is required (or --list)")
        if args.experiment not in EXPERIMENTS:
            parser.error(f"--experiment {args.experiment!r} is unknown; known: {', '.join(EXPERIMENTS)}")
        args.seed_list = parse_seeds(args.seeds)
    return args


def selected_arms(experiment, arms_text: str | None, scale_name: str):
    """The arms to run: all (or those named) that exist at this scale (`options["only_scales"]`)."""
    arms = experiment.arms
    if arms_text is not None:
        arms = [experiment.arm(name.strip()) for name in arms_text.split(",") if name.strip()]
    return [arm for arm in arms if scale_name in arm.options.get("only_scales", (scale_name,))]


def is_record_of(path: Path, experiment_name: str) -> bool:
    """Whether `path` is a per-run record this tool wrote for `experiment_name` (`<arm>_seed<k>.json`)."""
    if not (path.is_file() and path.suffix == ".json" and "_seed" in path.stem):
        return False
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(record, dict) and record.get("experiment") == experiment_name and "result" in record


def prepare_folder(folder: Path, experiment_name: str) -> None:
    """Creates the results folder, or checks that an existing one is this tool's (never writes into others): it
    carries the tool's marker, or holds nothing but this experiment's run records (copied back from another
    machine)."""
    if folder.exists() and any(folder.iterdir()) and not (folder / MARKER).exists():
        foreign = [path.name for path in folder.iterdir() if not is_record_of(path, experiment_name)]
        if foreign:
            raise ValueError(f"{folder} exists and was not written by run_experiments.py (no {MARKER}; not run "
                             f"records of {experiment_name}: {', '.join(sorted(foreign)[:5])}): choose another "
                             "--output_dir")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("written by train_scripts/run_experiments.py\n")


def load_run(path: Path) -> RunResult:
    payload = json.loads(path.read_text())
    return RunResult(**payload["result"])


def run_experiment(name: str, seeds: list[int], scale_name: str = "cpu", output_dir=DEFAULT_OUTPUT_DIR,
                   arms_text: str | None = None, reuse: bool = False, command: str | None = None,
                   summarise_only: bool = False) -> dict:
    """Runs (or reuses) every selected arm x seed and writes the per-run JSON, the summary and the plot;
    `summarise_only` runs nothing and summarises the arms that have a record for every seed."""
    experiment = EXPERIMENTS[name]
    if experiment.pending:
        raise PendingExperiment(f"{name} is pending: {experiment.pending}")
    scale = experiment.scales[scale_name]
    folder = Path(output_dir) / scale_name / name
    prepare_folder(folder, name)
    command = command or f"python train_scripts/run_experiments.py --experiment {name} --seeds " \
                         f"{','.join(map(str, seeds))} --scale {scale_name}"
    metadata = run_metadata(command, scale_name, seeds)
    results: dict[str, dict[int, RunResult]] = {}
    ran_on: dict[str, set[str]] = {}  # per arm, where its runs ran (reused ones may come from another machine)
    for arm in selected_arms(experiment, arms_text, scale_name):
        results[arm.name], ran_on[arm.name] = {}, set()
        for seed in seeds:
            path = folder / f"{arm.name}_seed{seed}.json"
            if (reuse or summarise_only) and path.exists():
                results[arm.name][seed] = load_run(path)
                ran_on[arm.name].add(recorded_hardware(path))
                continue
            if summarise_only:
                break
            logger.info("%s: arm %s, seed %d (%s scale)", name, arm.name, seed, scale_name)
            result = experiment.run(experiment, arm, seed, scale)
            results[arm.name][seed] = result
            ran_on[arm.name].add(metadata["hardware"])
            write_json(path, {"experiment": name, "arm": arm.name, "arm_description": arm.description,
                              "arm_overrides": arm.overrides, "arm_options": arm.options, "seed": seed,
                              **metadata, "result": asdict(result)})
            logger.info("  %s", {k: round(v, 4) for k, v in result.metrics.items() if isinstance(v, float)})
    # The summary covers every arm with a run of each seed in the folder, so arms added later join it.
    for arm in experiment.arms:
        paths = [folder / f"{arm.name}_seed{seed}.json" for seed in seeds]
        if arm.name not in results and all(path.exists() for path in paths):
            results[arm.name] = {seed: load_run(path) for seed, path in zip(seeds, paths)}
            ran_on[arm.name] = {recorded_hardware(path) for path in paths}
    results = {arm.name: results[arm.name] for arm in experiment.arms
               if arm.name in results and len(results[arm.name]) == len(seeds)}
    if not results:
        raise FileNotFoundError(f"{folder} has no arm with a record for every seed of {seeds}")
    ran_on = set().union(*(ran_on[arm] for arm in results))
    if ran_on and ran_on != {metadata["hardware"]}:
        # The summary names the machines the runs ran on, not the one that summarised them.
        metadata = {**metadata, "hardware": " and ".join(sorted(ran_on)), "summarised_on": metadata["hardware"]}
    summary = summarise(experiment, results)
    payload = {"experiment": name, "claim": experiment.claim, "source": experiment.source,
               "hypothesis": experiment.hypothesis, **metadata, **summary}
    write_json(folder / "summary.json", payload)
    (folder / "summary.md").write_text(format_summary_markdown(experiment, summary, metadata))
    plot_summary(experiment, summary, results, folder / "plot.png")
    return payload


def recorded_hardware(path: Path) -> str:
    """The hardware a saved run records (`"unknown"` for a record without the field)."""
    return json.loads(path.read_text()).get("hardware", "unknown")


class PendingExperiment(RuntimeError):
    """The experiment cannot run yet (it says what it waits for)."""


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_arguments(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.INFO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.list:
        for name, experiment in EXPERIMENTS.items():
            state = f"  [pending: {experiment.pending}]" if experiment.pending else ""
            print(f"{name}: {', '.join(a.name for a in experiment.arms)}{state}")
        return 0
    command = "python train_scripts/run_experiments.py " + " ".join(shlex.quote(a) for a in argv)
    try:
        payload = run_experiment(args.experiment, args.seed_list, args.scale, args.output_dir, args.arms, args.reuse,
                                 command, summarise_only=args.summarise)
    except PendingExperiment as pending:
        print(str(pending), file=sys.stderr)
        return PENDING_EXIT_CODE
    folder = Path(args.output_dir) / args.scale / args.experiment
    print((folder / "summary.md").read_text())
    return 0 if payload else 1


if __name__ == "__main__":
    sys.exit(main())
