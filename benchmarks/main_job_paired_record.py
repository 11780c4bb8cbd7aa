"""One change to the CPU main job against the default, paired by seed: a record from the runs' `eval_results.json`.

Each run is a folder written by `python train_scripts/run_multimodal.py ... --seed S --output_dir <folder>`. The
record holds, per seed and arm, the held-out figures (Fashion-MNIST accuracy, KJV perplexity, ARC per cell in the
model's own frame and at the size the demonstrations agree on, exact matches, the copy baselines) and, over seeds, the
paired difference arm - default with a 95% t-interval, and each arm's ARC at the demonstrations' size minus each copy
baseline the runs scored (copy-the-input, the copied, upscaled or tiled input, that copy cut or padded to the
demonstrations' size), also over the union of answer and target (`_over_union`) where the runs measured it (the
interval covers the seeds).

    python benchmarks/main_job_paired_record.py --arm /work/runs/aligned_seed42 /work/runs/aligned_seed1 ... \
        --default /work/runs/default_seed42 ... --name input_alignment --what "..." \
        --output benchmarks/results/cpu_main_job_input_alignment.json

A run whose table predates the union score is read from `evaluate_arc.py --model_name_or_path <run> --num_views 1
--size_from_demonstrations` where that evaluation's `arc_eval_attempts.json` lies in the run folder.

It never overwrites a record: a second run with the same `--output` stops and names the file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vision_trm.train_scripts.experiments.core import difference_ci

FIGURES = ("arc", "arc_at_size", "fashion", "kjv")
COPY_BASELINES = ("copy_input", "copy_scaled_or_tiled", "copy_at_demonstrated_size")


def run_figures(folder: Path) -> dict:
    """The figures of one finished run (its seed from the record)."""
    results_file = folder / "eval_results.json"
    if not results_file.is_file():
        raise FileNotFoundError(f"{results_file} not found: is the run finished?")
    results = json.loads(results_file.read_text())
    arc = results["arc"]
    if "model_size_from_demonstrations" not in arc:
        raise ValueError(f"{folder}: the ARC rows carry no demonstrated sizes (a composite built before they did)")
    figures = {
        "seed": results["seed"], "command": results["command"], "hardware": results["hardware"],
        "date": results["date"], "arc": arc["model"]["per_cell_accuracy"],
        "arc_at_size": arc["model_size_from_demonstrations"]["per_cell_accuracy"],
        "arc_exact": arc["model"]["exact_match"], "arc_exact_at_size": arc["model_size_from_demonstrations"]["exact_match"],
        "fashion": results["fashion_mnist"]["accuracy"], "kjv": results["kjv"]["perplexity"],
        "train_seconds": round(results["train"]["all"]["train_runtime"], 1),
    }
    over_union = "per_cell_accuracy_over_union"
    if over_union in arc["model_size_from_demonstrations"]:
        figures["arc_at_size_over_union"] = arc["model_size_from_demonstrations"][over_union]
    for name in COPY_BASELINES:
        if name in arc:
            figures[name] = arc[name]["per_cell_accuracy"]
            if over_union in arc[name]:
                figures[f"{name}_over_union"] = arc[name][over_union]
    if "arc_at_size_over_union" not in figures:
        figures.update(figures_scored_later(folder))
    return figures


def figures_scored_later(folder: Path) -> dict:
    """The figures a run's table predates, from `evaluate_arc.py --model_name_or_path <run> --num_views 1
    --size_from_demonstrations` (its `arc_eval_attempts.json` in the run folder): the same forwards, decoded at the
    same sizes, as the table's row at the demonstrations' size. Nothing without that file."""
    attempts = folder / "arc_eval_attempts.json"
    if not attempts.is_file():
        return {}
    summary = json.loads(attempts.read_text())["summary"]
    one_view_at_size = summary.get("num_views") == 1 and summary.get("size_from_demonstrations")
    if not one_view_at_size or "per_cell_accuracy_over_union" not in summary:
        raise ValueError(f"{attempts} is not a one-view evaluation at the demonstrations' size with the union score; "
                         "rerun evaluate_arc.py --num_views 1 --size_from_demonstrations on the run")
    figures = {"arc_at_size_over_union": summary["per_cell_accuracy_over_union"]}
    for name in COPY_BASELINES:
        figures[name] = summary["baselines"][name]["per_cell_accuracy"]
        figures[f"{name}_over_union"] = summary["baselines"][name]["per_cell_accuracy_over_union"]
    return figures


def by_seed(folders) -> dict[int, dict]:
    runs = [run_figures(Path(folder)) for folder in folders]
    seeds = [run["seed"] for run in runs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"two runs of one arm share a seed: {seeds}")
    return {run["seed"]: run for run in runs}


def rounded(interval: dict) -> list[float]:
    return [round(interval[key], 4) for key in ("difference", "low", "high")]


def paired_record(arm: dict[int, dict], default: dict[int, dict]) -> dict:
    """The paired differences over the seeds both arms ran, and each arm against the copy baselines."""
    seeds = sorted(set(arm) & set(default))
    if len(seeds) < 2:
        raise ValueError(f"a paired interval needs at least two seeds run by both arms, got {seeds}")
    measured_by_all = [name for name in ("arc_at_size_over_union",) if all(name in runs[s] for runs in (arm, default)
                                                                           for s in seeds)]
    record = {"seeds": seeds, "arm_minus_default": {
        name: rounded(difference_ci([arm[s][name] for s in seeds], [default[s][name] for s in seeds], paired=True))
        for name in (*FIGURES, *measured_by_all)}}
    for label, runs in (("arm", arm), ("default", default)):
        for suffix in ("", "_over_union"):
            for name in COPY_BASELINES:
                if all(f"arc_at_size{suffix}" in runs[s] and f"{name}{suffix}" in runs[s] for s in seeds):
                    record[f"{label}_at_size{suffix}_minus_{name}"] = rounded(difference_ci(
                        [runs[s][f"arc_at_size{suffix}"] for s in seeds], [runs[s][f"{name}{suffix}"] for s in seeds],
                        paired=True))
    return record


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arm", nargs="+", required=True, help="Run folders of the changed command, one per seed.")
    parser.add_argument("--default", nargs="+", required=True, help="Run folders of the default command.")
    parser.add_argument("--name", required=True, help="The arm's name in the record.")
    parser.add_argument("--what", required=True, help="What the change is, in a sentence or two.")
    parser.add_argument("--output", required=True)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_arguments(argv)
    output = Path(args.output)
    if output.exists():
        raise SystemExit(f"{output} exists; this script never overwrites a record (choose another --output)")
    arm, default = by_seed(args.arm), by_seed(args.default)
    record = {"what": args.what, "name": args.name, "default": default, args.name: arm, **paired_record(arm, default)}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({key: record[key] for key in record if key not in ("default", args.name, "what")}, indent=1))
    return record


if __name__ == "__main__":
    main()
