"""Command-line argument handling of train_scripts/evaluate_arc.py and train_scripts/run_multimodal.py: bad values
are refused with a message naming the flag, and every accepted spelling of a flag means the same thing."""

import json
from pathlib import Path

import pytest

import vision_trm.train_scripts.evaluate_arc as evaluate_arc
from tiny_models import small_model_config
from vision_trm.train_scripts.run_multimodal import parse_arguments, with_defaults
from vision_trm.modeling_trm import TRMModel
from vision_trm.processing import TRMProcessor


def save_tiny_model(folder: Path, **overrides) -> Path:
    model = TRMModel(small_model_config(**overrides))
    model.save_pretrained(folder)
    TRMProcessor.from_config(model.config).save_pretrained(folder)
    return folder


def fake_arc_tasks(prefix: str, count: int) -> list[dict]:
    pair = {"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}
    return [{"id": f"{prefix}{index}", "train": [pair], "test": [pair]} for index in range(count)]


# ------------------------------------------------------------------------------------------- evaluate_arc.py
@pytest.mark.parametrize("flag", ["--max_tasks", "--num_views", "--batch_size"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_evaluate_arc_refuses_counts_below_one(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate_arc.main(["--model_name_or_path", "unused", flag, value])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {flag}: must be at least 1, got {value}" in error


@pytest.fixture(scope="module")
def grid_model(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("grid_model"))


@pytest.mark.parametrize("max_tasks, evaluated", [(None, 3), (2, 2), (1, 1)])
def test_evaluate_arc_evaluates_exactly_max_tasks(grid_model, tmp_path, monkeypatch, max_tasks, evaluated):
    tasks = (fake_arc_tasks("train", 2), fake_arc_tasks("eval", 3))
    monkeypatch.setattr(evaluate_arc, "load_arc_tasks", lambda version: tasks)
    argv = ["--model_name_or_path", str(grid_model), "--num_views", "2", "--device", "cpu",
            "--output_json", str(tmp_path / "attempts.json")]
    if max_tasks is not None:
        argv += ["--max_tasks", str(max_tasks)]
    summary = evaluate_arc.main(argv)
    assert summary["num_tasks"] == evaluated
    assert len(json.loads((tmp_path / "attempts.json").read_text())["tasks"]) == evaluated


@pytest.mark.parametrize("flag", ["--ttt_learning_rate", "--ttt_lora_learning_rate"])
def test_evaluate_arc_refuses_learning_rates_not_above_zero(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate_arc.main(["--model_name_or_path", "unused", flag, "0"])
    assert exit_info.value.code == 2
    assert f"argument {flag}: must be a finite number > 0, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("flags, lora_learning_rate", [([], 1e-3), (["--ttt_lora_learning_rate", "3e-4"], 3e-4)])
def test_evaluate_arc_passes_the_ttt_learning_rates_to_each_task(grid_model, tmp_path, monkeypatch, flags,
                                                                  lora_learning_rate):
    monkeypatch.setattr(evaluate_arc, "load_arc_tasks", lambda version: ([], fake_arc_tasks("eval", 2)))
    calls, solve = [], evaluate_arc.solve_arc_task

    def recording_solve(*args, **kwargs):
        calls.append(kwargs)
        return solve(*args, **kwargs)

    monkeypatch.setattr(evaluate_arc, "solve_arc_task", recording_solve)
    summary = evaluate_arc.main(["--model_name_or_path", str(grid_model), "--num_views", "1", "--device", "cpu",
                                 "--ttt_steps", "1", "--ttt_lora_r", "2", "--ttt_learning_rate", "5e-3", *flags,
                                 "--output_json", str(tmp_path / "attempts.json")])
    assert [(c["learning_rate"], c["lora_r"], c["lora_learning_rate"]) for c in calls] == [
        (5e-3, 2, lora_learning_rate)] * 2
    recorded = json.loads((tmp_path / "attempts.json").read_text())["summary"]
    assert (recorded["ttt_learning_rate"], recorded["ttt_lora_r"], recorded["ttt_lora_learning_rate"]) == (
        5e-3, 2, lora_learning_rate)
    assert summary["ttt_lora_learning_rate"] == lora_learning_rate


def test_evaluate_arc_names_the_missing_grid_head(tmp_path):
    folder = save_tiny_model(tmp_path / "no_grid", heads=["classification", "text"])
    with pytest.raises(ValueError, match=r"no grid head \(config.heads = \['classification', 'text'\]\)"):
        evaluate_arc.main(["--model_name_or_path", str(folder), "--device", "cpu"])


# ----------------------------------------------------------------------------------------- run_multimodal.py
@pytest.mark.parametrize(
    "text, problem",
    [
        ("{'concept_vocab_size': 32}", "--config_overrides is not valid JSON"),
        ('{"concept_vocab_size": 32', "--config_overrides is not valid JSON"),
        ('[["concept_vocab_size", 32]]', "--config_overrides must be a JSON object of TRMConfig fields"),
        ('"concept_vocab_size"', "--config_overrides must be a JSON object of TRMConfig fields"),
    ],
)
def test_config_overrides_errors_name_the_flag(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_arguments(["--config_overrides", text])


def test_good_config_overrides_are_accepted():
    model_args, _, _, _ = parse_arguments(["--config_overrides", '{"concept_vocab_size": 32}'])
    assert json.loads(model_args.config_overrides) == {"concept_vocab_size": 32}


@pytest.mark.parametrize("missing", ["/nonexistent/trm-run", "./outputs/no-such-run", "outputs/a/b", "~/trm"])
def test_missing_model_folder_is_named(missing):
    with pytest.raises(ValueError, match=f"--model_name_or_path: the folder '{missing}' does not exist"):
        parse_arguments(["--model_name_or_path", missing])


def test_model_path_that_is_a_file_is_refused(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ValueError, match="is a file"):
        parse_arguments(["--model_name_or_path", str(weights)])


@pytest.mark.parametrize("value", ["org/name", "name"])
def test_hub_ids_and_existing_folders_are_left_to_from_pretrained(value, tmp_path):
    assert parse_arguments(["--model_name_or_path", value])[0].model_name_or_path == value
    assert parse_arguments(["--model_name_or_path", str(tmp_path)])[0].model_name_or_path == str(tmp_path)


@pytest.mark.parametrize("spelling", [["--run_name", "x"], ["--run_name=x"], ["--run-name", "x"], ["--run-name=x"]])
def test_run_name_sets_the_default_output_folder_in_every_spelling(spelling):
    _, _, training_args, _ = parse_arguments(spelling)
    assert training_args.run_name == "x"
    assert Path(training_args.output_dir) == Path("outputs") / "x"


@pytest.mark.parametrize("spelling", [["--max_steps", "5"], ["--max_steps=5"], ["--max-steps", "5"]])
def test_a_given_flag_is_not_overridden_by_the_defaults(spelling):
    assert "1600" not in with_defaults(spelling)
    assert parse_arguments(spelling)[2].max_steps == 5


def test_explicit_output_dir_wins_over_run_name():
    _, _, training_args, _ = parse_arguments(["--run_name=x", "--output_dir=elsewhere"])
    assert training_args.output_dir == "elsewhere" and training_args.run_name == "x"
