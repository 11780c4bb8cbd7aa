"""`benchmarks/arc_run_record.py`: a segment's record is read from what the run wrote, from the run folder or from the
`run.tar.gz` a device call returns, and agrees with the run's own results."""

import json
import tarfile

import pytest

from file_modules import REPO, load_file_module
from vision_trm.train_scripts import run_multimodal

SCRIPT = REPO / "benchmarks" / "arc_run_record.py"


def load_script():
    return load_file_module("arc_run_record", SCRIPT)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A two-step ARC recipe run on a few tasks, evaluated, with a voted-evaluation file beside it."""
    root = tmp_path_factory.mktemp("arc_record")
    training = [{"id": f"train{i}", "train": [{"input": [[i % 10, 1]], "output": [[1, i % 10]]}] * 2,
                 "test": [{"input": [[2, 3]], "output": [[3, 2]]}]} for i in range(3)]
    evaluation = [{"id": "eval0", "train": [{"input": [[4, 5]], "output": [[5, 4]]}],
                   "test": [{"input": [[6, 7]], "output": [[7, 6]]}]}]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_multimodal, "load_arc_tasks", lambda version: (training, evaluation))
        results = run_multimodal.main([
            "--recipe", "arc", "--output_dir", str(root / "run"), "--per_device_train_batch_size", "2",
            "--logging_steps", "1", "--max_train_minutes", "0", "--use_cpu", "True", "--max_steps", "2",
            "--config_overrides", json.dumps({"hidden_size": 16, "num_attention_heads": 2})])
    voted = {"summary": {"pass@2": 0.5, "num_views": 32},
             "tasks": {"b": {"pass@2": True}, "a": {"pass@2": True}, "c": {"pass@2": False}}}
    (root / "run" / "arc_eval_attempts.json").write_text(json.dumps(voted))
    return root / "run", results


def test_record_agrees_with_the_run(finished_run):
    run, results = finished_run
    record = load_script().main([str(run), "--segment", "2", "--device_command", "MINUTES=1 bash x.sh",
                                 "--loss_every", "2"])
    assert record["segment"] == 2 and record["device_command"] == "MINUTES=1 bash x.sh"
    assert record["script_command"] == results["command"] and record["seed"] == results["seed"]
    assert record["optimizer_steps"] == 2 and record["train_samples"] == 4  # 2 steps of batch 2
    assert record["identity_view_eval"] == results["arc"]
    assert [step for step, _ in record["loss_curve"]] == [1, 2]  # the first logged step, then every 2nd
    assert record["final_logged_loss"] == pytest.approx(record["loss_curve"][-1][1], abs=1e-4)
    assert record["voted_eval"] == {"pass@2": 0.5, "num_views": 32}
    assert record["tasks_solved_pass@2"] == ["a", "b"]


def test_record_reads_the_archive_a_device_call_returns(finished_run, tmp_path):
    """`h200_arc_run.sh` returns the run folder packed (no checkpoints, no shards) as run.tar.gz."""
    run, _ = finished_run
    returned = tmp_path / "returned"
    returned.mkdir()
    with tarfile.open(returned / "run.tar.gz", "w:gz") as tar:
        tar.add(run, arcname=".", filter=lambda info: None if info.name.endswith(".safetensors") else info)
    script = load_script()
    from_archive = script.main([str(returned)])
    assert from_archive == script.main([str(run)])
    assert not (returned / "eval_results.json").exists()  # read, never extracted


def test_record_refuses_what_is_not_a_run_and_never_overwrites(finished_run, tmp_path):
    run, _ = finished_run
    script = load_script()
    with pytest.raises(FileNotFoundError, match="run.tar.gz"):
        script.main([str(tmp_path)])
    existing = tmp_path / "record.json"
    existing.write_text("mine")
    with pytest.raises(SystemExit):
        script.main([str(run), "--output", str(existing)])
    assert existing.read_text() == "mine"
