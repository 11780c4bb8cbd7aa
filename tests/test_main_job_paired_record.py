"""`benchmarks/main_job_paired_record.py`: one change to the main job against the default, paired by seed, read from
the runs' `eval_results.json`."""

import json
from pathlib import Path

import pytest

from file_modules import REPO, load_file_module

SCRIPT = REPO / "benchmarks" / "main_job_paired_record.py"


def load_script():
    return load_file_module("main_job_paired_record", SCRIPT)


def fake_run(folder: Path, seed: int, arc_at_size: float, kjv: float, scaled_or_tiled: bool = True,
             over_union: bool = False) -> str:
    """The parts of a main job's `eval_results.json` the record reads (`over_union`: a run scored since the
    per-cell accuracy over the union of answer and target and the copy at the demonstrations' size exist)."""
    arc = {"model": {"per_cell_accuracy": arc_at_size - 0.05, "exact_match": 0.0},
           "model_size_from_demonstrations": {"per_cell_accuracy": arc_at_size, "exact_match": 0.0},
           "copy_input": {"per_cell_accuracy": 0.6}}
    if scaled_or_tiled:
        arc["copy_scaled_or_tiled"] = {"per_cell_accuracy": 0.64}
    if over_union:
        arc["model_size_from_demonstrations"]["per_cell_accuracy_over_union"] = arc_at_size - 0.01
        arc["copy_input"]["per_cell_accuracy_over_union"] = 0.55
        arc["copy_at_demonstrated_size"] = {"per_cell_accuracy": 0.64, "per_cell_accuracy_over_union": 0.62}
    folder.mkdir(parents=True)
    (folder / "eval_results.json").write_text(json.dumps({
        "seed": seed, "command": f"python train_scripts/run_multimodal.py --seed {seed}", "hardware": "test CPU",
        "date": "2026-12-07", "arc": arc, "fashion_mnist": {"accuracy": 0.85}, "kjv": {"perplexity": kjv},
        "train": {"all": {"train_runtime": 300.0}}}))
    return str(folder)


def test_the_record_pairs_the_arms_by_seed_and_never_overwrites(tmp_path):
    script = load_script()
    arm = [fake_run(tmp_path / f"arm{s}", s, 0.62 + 0.01 * s, 6.5) for s in (1, 2, 3)]
    default = [fake_run(tmp_path / f"default{s}", s, 0.60 + 0.01 * s, 6.6) for s in (3, 1, 2)]  # any order
    output = tmp_path / "record.json"
    record = script.main(["--arm", *arm, "--default", *default, "--name", "aligned", "--what", "a test",
                          "--output", str(output)])
    assert record["seeds"] == [1, 2, 3]
    assert record["arm_minus_default"]["arc_at_size"] == [0.02, 0.02, 0.02]  # the same gain in every seed
    assert record["arm_minus_default"]["kjv"] == [-0.1, -0.1, -0.1]
    difference, low, high = record["arm_at_size_minus_copy_input"]
    assert difference == pytest.approx(0.04) and low < difference < high
    assert record["default_at_size_minus_copy_scaled_or_tiled"][0] == pytest.approx(-0.02)
    assert json.loads(output.read_text())["aligned"]["2"]["arc_at_size"] == pytest.approx(0.64)
    assert not any("over_union" in key or "demonstrated_size" in key for key in record)  # runs that measured neither
    assert "arc_at_size_over_union" not in record["arm_minus_default"]
    with pytest.raises(SystemExit, match="never overwrites"):
        script.main(["--arm", *arm, "--default", *default, "--name", "aligned", "--what", "again",
                     "--output", str(output)])


def test_the_record_sets_each_arm_against_every_copy_baseline_also_over_the_union(tmp_path):
    script = load_script()
    arm = [fake_run(tmp_path / f"arm{s}", s, 0.62 + 0.01 * s, 6.5, over_union=True) for s in (1, 2)]
    default = [fake_run(tmp_path / f"default{s}", s, 0.60, 6.6, over_union=True) for s in (1, 2)]
    record = script.main(["--arm", *arm, "--default", *default, "--name", "x", "--what", "x",
                          "--output", str(tmp_path / "record.json")])
    assert record["default_at_size_over_union_minus_copy_input"][0] == pytest.approx(0.59 - 0.55)
    assert record["default_at_size_over_union_minus_copy_at_demonstrated_size"][0] == pytest.approx(0.59 - 0.62)
    assert record["arm_at_size_minus_copy_at_demonstrated_size"][0] == pytest.approx(0.635 - 0.64)
    assert "arm_at_size_over_union_minus_copy_scaled_or_tiled" not in record  # that baseline has no union figure here


def test_a_run_older_than_the_union_score_is_read_from_its_later_one_view_evaluation(tmp_path):
    script = load_script()
    baselines = {name: {"per_cell_accuracy": 0.6, "per_cell_accuracy_over_union": 0.5}
                 for name in ("copy_input", "copy_scaled_or_tiled", "copy_at_demonstrated_size")}
    runs = {}
    for label, at_size in (("arm", 0.62), ("default", 0.60)):
        runs[label] = [fake_run(tmp_path / f"{label}{s}", s, at_size, 6.5) for s in (1, 2)]
        for folder in runs[label]:
            summary = {"num_views": 1, "size_from_demonstrations": True, "per_cell_accuracy_over_union": at_size - 0.02,
                       "baselines": baselines}
            (Path(folder) / "arc_eval_attempts.json").write_text(json.dumps({"summary": summary, "tasks": {}}))
    record = script.main(["--arm", *runs["arm"], "--default", *runs["default"], "--name", "x", "--what", "x",
                          "--output", str(tmp_path / "record.json")])
    assert record["arm_at_size_over_union_minus_copy_at_demonstrated_size"][0] == pytest.approx(0.60 - 0.5)
    assert record["arm_minus_default"]["arc_at_size_over_union"][0] == pytest.approx(0.02)
    voted = Path(runs["arm"][0]) / "arc_eval_attempts.json"
    voted.write_text(json.dumps({"summary": {"num_views": 32, "size_from_demonstrations": False,
                                             "per_cell_accuracy_over_union": 0.7, "baselines": baselines}}))
    with pytest.raises(ValueError, match="not a one-view evaluation at the demonstrations' size"):
        script.run_figures(Path(runs["arm"][0]))


def test_the_record_refuses_too_few_shared_seeds_and_unfinished_runs(tmp_path):
    script = load_script()
    arm = [fake_run(tmp_path / "arm1", 1, 0.6, 6.5), fake_run(tmp_path / "arm2", 2, 0.6, 6.5)]
    default = [fake_run(tmp_path / "default1", 1, 0.6, 6.5), fake_run(tmp_path / "default5", 5, 0.6, 6.5)]
    with pytest.raises(ValueError, match="at least two seeds run by both arms, got \\[1\\]"):
        script.main(["--arm", *arm, "--default", *default, "--name", "x", "--what", "x",
                     "--output", str(tmp_path / "r.json")])
    (tmp_path / "unfinished").mkdir()
    with pytest.raises(FileNotFoundError, match="is the run finished"):
        script.main(["--arm", str(tmp_path / "unfinished"), "--default", *default, "--name", "x", "--what", "x",
                     "--output", str(tmp_path / "r2.json")])
