"""Re-scores a saved ARC attempts file (`evaluate_arc.py --output_json`, plain or gzipped) against the ARC-AGI tasks:
pass@1 / pass@2, the size breakdown and the near misses, without the model. `--against_copy` adds attempt 1's
per-cell accuracy minus copy-the-input's, paired per test input, with a 95% t-interval over the test inputs (the
interval covers the choice of inputs, not the training seed). `--against_baselines` does the same against each
trivial baseline of `evaluate_arc.BASELINES` (copy, majority colour, and copy / upscale / tile chosen on the
demonstrations), and again over the union of answer and target (`against_baselines_over_union`: an answer larger
than its target, a copied input where the answer is a crop of it, loses its extra cells). The size breakdown counts
the cells attempt 1 edits.

    python benchmarks/arc_attempts_summary.py benchmarks/results/h200_arc_main_run_rope_attempts.json.gz
    python benchmarks/arc_attempts_summary.py <attempts.json> --against_copy
    python benchmarks/arc_attempts_summary.py <attempts.json> --against_baselines
    python benchmarks/arc_attempts_summary.py <seed 1 attempts> <seed 2 attempts> ...   # + the mean over the files

Given several files (runs of one arm, e.g. one per seed) it prints each file's summary under `runs` and, under
`mean_by_size_rule`, each size rule's figures averaged over the files; with `--against_baselines`, also
`against_baselines_over_runs`: attempt 1 minus each baseline with an interval over the files (over the seeds).
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

from vision_trm.train_scripts.data_arc import load_arc_tasks
from vision_trm.train_scripts.evaluate_arc import (
    BASELINES,
    baseline_answers,
    near_misses,
    score,
    size_breakdown,
    size_rule_breakdown,
    tasks_of_split,
)
from vision_trm.train_scripts.experiments.core import mean_ci


def load_attempts(path: Path) -> dict:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        return json.load(handle)


def summarise_attempts(saved: dict, training_tasks, evaluation_tasks, with_copy: bool = False,
                       with_baselines: bool = False) -> dict:
    """The summary of `saved` (`{"summary", "tasks"}`) over the tasks it holds, scored afresh (`with_copy`: and
    against copy-the-input, `against_copy`; `with_baselines`: against each baseline, `against_baselines`)."""
    split = saved["summary"].get("split", "evaluation")
    tasks = [task for task in tasks_of_split(training_tasks, evaluation_tasks, split) if task["id"] in saved["tasks"]]
    if len(tasks) != len(saved["tasks"]):
        unknown = sorted(set(saved["tasks"]) - {task["id"] for task in tasks})
        raise ValueError(f"the attempts name tasks that are not in the {split} split: {unknown[:5]}")
    per_task = saved["tasks"]
    summary = {**score(tasks, per_task), "by_output_size": size_breakdown(tasks, per_task),
               "by_size_rule": size_rule_breakdown(tasks, per_task), "near_misses": near_misses(tasks, per_task), "num_tasks": len(tasks)}
    if with_copy:
        summary["against_copy"] = against_copy(tasks, per_task)
    if with_baselines:
        model = score(tasks, per_task, per_input=True)
        baselines = {name: score(tasks, baseline_answers(tasks, name), per_input=True) for name in BASELINES}
        for suffix, figure in (("", "per_input_cell_accuracy"), ("_over_union", "per_input_cell_accuracy_over_union")):
            summary[f"against_baselines{suffix}"] = {name: paired_difference(model[figure], baselines[name][figure])
                                                     for name in BASELINES}
    return summary


def against_baseline(tasks, per_task, name: str, model: list[float] | None = None, over_union: bool = False) -> dict:
    """Attempt 1's per-cell accuracy minus the baseline `name`'s, per test input: mean, 95% interval, n (`model`:
    attempt 1's per-input accuracies, when already scored; `over_union`: both over the union of answer and target,
    where an answer larger than its target loses its extra cells)."""
    figure = "per_input_cell_accuracy_over_union" if over_union else "per_input_cell_accuracy"
    if model is None:
        model = score(tasks, per_task, per_input=True)[figure]
    return paired_difference(model, score(tasks, baseline_answers(tasks, name), per_input=True)[figure])


def paired_difference(model: list[float], baseline: list[float]) -> dict:
    """`model - baseline` per test input: mean, 95% interval, n, and both means."""
    difference = mean_ci([m - b for m, b in zip(model, baseline)])
    return {"model_minus_baseline": difference["mean"], "low": difference["mean"] - difference["ci95"],
            "high": difference["mean"] + difference["ci95"], "test_inputs": difference["n"],
            "model_per_cell": sum(model) / len(model), "baseline_per_cell": sum(baseline) / len(baseline)}


def against_copy(tasks, per_task) -> dict:
    """Attempt 1's per-cell accuracy minus that of the test input itself, per test input: mean, 95% interval, n."""
    paired = against_baseline(tasks, per_task, "copy_input")
    difference, copy = paired.pop("model_minus_baseline"), paired.pop("baseline_per_cell")
    return {"model_minus_copy": difference, **paired, "copy_per_cell": copy}


def against_baselines_over_runs(summaries: list[dict]) -> dict:
    """Attempt 1 minus each baseline, one difference per run (its mean over the test inputs), with a 95% t-interval over
    the runs: the interval covers the training seed. Plain and over the union of answer and target."""
    figures = {}
    for key in ("against_baselines", "against_baselines_over_union"):
        figures[key] = {}
        for name in summaries[0][key]:
            difference = mean_ci([s[key][name]["model_minus_baseline"] for s in summaries])
            figures[key][name] = {"model_minus_baseline": difference["mean"], "low": difference["mean"] - difference["ci95"],
                                  "high": difference["mean"] + difference["ci95"], "runs": difference["n"],
                                  "baseline_per_cell": summaries[0][key][name]["baseline_per_cell"]}
    return figures


def mean_by_size_rule(summaries: list[dict]) -> dict:
    """Each size rule's figures (`by_size_rule`) averaged over several runs' summaries of the same tasks."""
    rules = summaries[0]["by_size_rule"]
    return {rule: {name: (sum(s["by_size_rule"][rule][name] for s in summaries) / len(summaries)
                          if rules[rule][name] is not None else None) for name in rules[rule]}
            for rule in rules}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("attempts", type=Path, nargs="+")
    parser.add_argument("--arc_version", default=None, help="default: the file's own")
    parser.add_argument("--against_copy", action="store_true", help="add attempt 1 - copy-the-input, paired")
    parser.add_argument("--against_baselines", action="store_true",
                        help="add attempt 1 - each trivial baseline (evaluate_arc.BASELINES), paired")
    args = parser.parse_args(argv)
    summaries = {}
    for path in args.attempts:
        saved = load_attempts(path)
        training, evaluation = load_arc_tasks(args.arc_version or saved["summary"].get("arc_version", "1"))
        summaries[str(path)] = summarise_attempts(saved, training, evaluation, args.against_copy, args.against_baselines)
    if len(summaries) == 1:
        summary = next(iter(summaries.values()))
    else:
        tasks = {s["num_tasks"] for s in summaries.values()}
        if len(tasks) != 1:
            raise ValueError(f"the files score different numbers of tasks ({sorted(tasks)}): no mean over them")
        summary = {"runs": summaries, "mean_by_size_rule": mean_by_size_rule(list(summaries.values()))}
        if args.against_baselines:
            summary["against_baselines_over_runs"] = against_baselines_over_runs(list(summaries.values()))
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
