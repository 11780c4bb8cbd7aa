"""The push path with the Hub API replaced by a recording fake: which files go up, to which repository, with which
card; the card's YAML parses and its model-index round-trips. Nothing touches the network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from train_scripts import push_to_hub
from train_scripts.model_card import build_model_card, validate_card_locally, write_model_card

EVAL_RESULTS = {
    "command": "python train_scripts/run_multimodal.py --output_dir outputs/run",
    "hardware": "2-core CPU",
    "date": "2026-11-23",
    "results": [
        {
            "task_type": "image-classification",
            "task_name": "Image classification",
            "dataset_name": "Fashion-MNIST",
            "dataset_type": "zalando-datasets/fashion_mnist",
            "split": "test",
            "metric_type": "accuracy",
            "metric_name": "Accuracy",
            "value": 0.734,
            "baseline": 0.1,
            "baseline_name": "chance",
        },
        {
            "task_type": "image-to-image",
            "task_name": "ARC grid prediction",
            "dataset_name": "ARC-AGI-1 evaluation",
            "dataset_type": "arc-agi-1",
            "split": "evaluation",
            "metric_type": "pass@2",
            "value": 0.0025,
        },
    ],
}
TRAINING_SUMMARY = {"preset": "tiny", "max_steps": 300, "learning_rate": 0.001, "seed": 42}


class RecordingHfApi:
    """Records every call; `upload_folder` snapshots the folder's files and contents at call time."""

    def __init__(self):
        self.calls = []
        self.uploaded = {}

    def create_repo(self, **kwargs):
        self.calls.append(("create_repo", kwargs))
        return f"https://huggingface.co/{kwargs['repo_id']}"

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))
        folder = Path(kwargs["folder_path"])
        self.uploaded = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        return "https://huggingface.co/commit/abc"

    def add_space_variable(self, repo_id, key, value, **kwargs):
        self.calls.append(("add_space_variable", {"repo_id": repo_id, "key": key, "value": value}))

    def __getattr__(self, name):  # anything else would be an unexpected Hub call
        raise AssertionError(f"unexpected Hub API call: {name}")


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A real tiny TRM saved with save_pretrained, plus training leftovers that must not be uploaded."""
    from vision_trm.configuration import TRMConfig
    from vision_trm.modeling_trm import TRMModel
    from vision_trm.processing import TRMProcessor

    folder = tmp_path_factory.mktemp("run")
    config = TRMConfig.from_preset("tiny")
    TRMModel(config).save_pretrained(folder)
    TRMProcessor.from_config(config).save_pretrained(folder)
    (folder / "eval_results.json").write_text(json.dumps(EVAL_RESULTS))
    (folder / "training_summary.json").write_text(json.dumps(TRAINING_SUMMARY))
    (folder / "checkpoint-100").mkdir()
    (folder / "checkpoint-100" / "optimizer.pt").write_bytes(b"x")
    (folder / "trainer_state.json").write_text("{}")
    (folder / "training_args.bin").write_bytes(b"x")
    (folder / "README.md").write_text("stale card")
    return folder


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_push_model_uploads_model_processor_code_and_card(saved_model):
    api = RecordingHfApi()
    summary = push_to_hub.main(["--model_dir", str(saved_model), "--repo_id", "someone/vision-trm-tiny"], api=api)
    names = [name for name, _ in api.calls]
    assert names == ["create_repo", "upload_folder"]
    create, upload = api.calls[0][1], api.calls[1][1]
    assert create == {"repo_id": "someone/vision-trm-tiny", "repo_type": "model", "private": False, "exist_ok": True}
    assert upload["repo_id"] == "someone/vision-trm-tiny" and upload["repo_type"] == "model"

    uploaded = set(api.uploaded)
    assert uploaded == set(summary["files"])
    for required in (
        "config.json",
        "model.safetensors",
        "processor_config.json",
        "README.md",
        "configuration_trm.py",
        "modeling_trm.py",
        "processing_trm.py",
        "eval_results.json",
    ):
        assert required in uploaded, required
    for leftover in ("checkpoint-100/optimizer.pt", "trainer_state.json", "training_args.bin"):
        assert leftover not in uploaded
    assert not any(name.startswith("checkpoint-") or "__pycache__" in name for name in uploaded)

    card = api.uploaded["README.md"].decode()
    assert card != "stale card"
    metadata = validate_card_locally(card)
    assert metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == "image-classification"
    assert "custom_code" in metadata["tags"]
    assert set(metadata["datasets"]) == {"zalando-datasets/fashion_mnist", "arc-agi-1"}
    assert set(metadata["metrics"]) == {"accuracy", "pass@2"}
    results = metadata["model-index"][0]["results"]
    assert {r["metrics"][0]["type"]: r["metrics"][0]["value"] for r in results} == {"accuracy": 0.734, "pass@2": 0.0025}
    assert 'AutoModel.from_pretrained("someone/vision-trm-tiny", trust_remote_code=True)' in card
    assert EVAL_RESULTS["command"] in card and "2-core CPU" in card
    assert "| Image classification | Fashion-MNIST (test) | Accuracy | 0.734 | 0.1 (chance) |" in card
    assert "AdaptiveFusion gate" in card  # the data-flow diagram
    assert "no pretrained tower" in card.lower()  # the tiny preset was trained without pretrained weights
    assert "| `max_steps` | 300 |" in card


def test_dry_run_writes_exactly_what_would_be_uploaded(saved_model, tmp_path):
    api = RecordingHfApi()
    out = tmp_path / "dry"
    args = ["--model_dir", str(saved_model), "--repo_id", "someone/vision-trm-tiny"]
    summary = push_to_hub.main(args + ["--dry_run", "--dry_run_dir", str(out)], api=api)
    assert api.calls == []  # nothing uploaded
    assert _files(out) == set(summary["files"])
    push_to_hub.main(args, api=api)
    assert set(api.uploaded) == _files(out)
    for name, content in api.uploaded.items():
        assert (out / name).read_bytes() == content, name


def test_dry_run_folder_loads_with_remote_code(saved_model, tmp_path):
    from transformers import AutoConfig, AutoModel

    out = tmp_path / "dry"
    push_to_hub.main(["--model_dir", str(saved_model), "--repo_id", "x/y", "--dry_run", "--dry_run_dir", str(out)])
    config = AutoConfig.from_pretrained(out, trust_remote_code=True)
    model = AutoModel.from_pretrained(out, trust_remote_code=True)
    assert config.model_type == "vision_trm" and type(model).__name__ == "TRMModel"
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(out, trust_remote_code=True)
    assert type(processor).__name__ == "TRMProcessor"  # processor_config.json carries an auto_map


def test_push_space(tmp_path):
    api = RecordingHfApi()
    summary = push_to_hub.main(
        ["--space", "--repo_id", "someone/vision-trm-demo", "--space_model_id", "someone/vision-trm-tiny"], api=api
    )
    create = api.calls[0][1]
    assert create["repo_type"] == "space" and create["space_sdk"] == "gradio"
    assert api.calls[1][1]["repo_type"] == "space"
    assert (
        "add_space_variable",
        {"repo_id": "someone/vision-trm-demo", "key": "MODEL_ID", "value": "someone/vision-trm-tiny"},
    ) in api.calls
    uploaded = set(api.uploaded)
    assert {"app.py", "requirements.txt", "README.md"} <= uploaded
    assert any(name.startswith("examples/arc/") and name.endswith(".json") for name in uploaded)
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in uploaded)
    assert uploaded == set(summary["files"])
    header = yaml.safe_load(api.uploaded["README.md"].decode().split("---\n")[1])
    assert header["sdk"] == "gradio" and header["app_file"] == "app.py"
    assert header["sdk_version"].startswith("6.")
    assert header["models"] == ["someone/vision-trm-tiny"]


def test_missing_model_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        push_to_hub.main(["--model_dir", str(tmp_path), "--repo_id", "x/y"], api=RecordingHfApi())


def test_card_from_flat_trainer_metrics(tmp_path):
    path = write_model_card(
        tmp_path,
        {"eval_arc_exact_match": 0.0, "eval_fashion_mnist_accuracy": 0.71, "eval_loss": 1.5},
        None,
        repo_id="a/b",
        eval_command="python train_scripts/run_multimodal.py",
    )
    metadata = validate_card_locally(path.read_text())
    types = {r["dataset"]["type"]: r["metrics"][0]["type"] for r in metadata["model-index"][0]["results"]}
    assert types == {"arc-agi-1": "exact_match", "zalando-datasets/fashion_mnist": "accuracy"}
    assert "| eval_loss |" in path.read_text() or "eval_loss" in path.read_text()


def test_card_without_results_says_so():
    card = build_model_card(None, None)
    metadata = validate_card_locally(card)
    assert "model-index" not in metadata
    assert "No evaluation results were given" in card.content
    assert "command that produced these numbers was not recorded" in card.content


def test_card_from_run_multimodal_results():
    """The nested `eval_results.json` that run_multimodal.py writes: each figure with its baseline."""
    results = {
        "preset": "tiny",
        "fashion_mnist": {"accuracy": 0.62, "chance": 0.1, "num_examples": 1000},
        "kjv": {"perplexity": 9.1, "unigram_perplexity": 12.3, "num_tokens": 5000},
        "arc": {
            "model": {"per_cell_accuracy": 0.4, "exact_match": 0.0, "pass@1": 0.0},
            "copy_input": {"per_cell_accuracy": 0.6, "exact_match": 0.01, "pass@1": 0.01},
            "majority_colour": {"per_cell_accuracy": 0.5, "exact_match": 0.0, "pass@1": 0.0},
        },
    }
    card = build_model_card(results, {"preset": "tiny"}, eval_command="python train_scripts/run_multimodal.py")
    metadata = validate_card_locally(card)
    index = {r["dataset"]["type"]: {m["type"] for m in r["metrics"]} for r in metadata["model-index"][0]["results"]}
    assert index == {
        "zalando-datasets/fashion_mnist": {"accuracy"},
        "bible-kjv": {"perplexity"},
        "arc-agi-1": {"per_cell_accuracy", "exact_match", "pass@1"},
    }
    assert "| 0.62 | 0.1 (chance) |" in card.content
    assert "copy-input 0.6, majority-colour 0.5" in card.content
    assert "python train_scripts/run_multimodal.py" in card.content
