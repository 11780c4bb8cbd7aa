"""The Space's demo checkpoint: weights, config and processor files only (no code copy), loadable by the installed
package, written by `spaces_app/make_demo_checkpoint.py`, which never touches files it did not write."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoProcessor

from vision_trm.configuration import MODEL_INPUT_NAMES, TRMConfig
from vision_trm.modeling_trm import TRMForMultitaskReasoning, TRMModel
from vision_trm.processing import TRMProcessor

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "spaces_app" / "demo_checkpoint"
SCRIPT = ROOT / "spaces_app" / "make_demo_checkpoint.py"


def test_demo_checkpoint_holds_no_code():
    assert not list(DEMO.glob("*.py")), "the remote-code folder is written at export time, never committed"


def test_demo_checkpoint_loads_through_the_auto_classes_of_the_installed_package():
    model = AutoModel.from_pretrained(DEMO).eval()
    processor = AutoProcessor.from_pretrained(DEMO)
    assert isinstance(model, TRMModel) and isinstance(processor, TRMProcessor)
    batch = processor(["a line of text", [[1, 2], [3, 4]]])
    with torch.no_grad():
        outputs = model(**{name: batch[name] for name in MODEL_INPUT_NAMES if name in batch})
    assert torch.isfinite(outputs.class_logits).all()
    assert processor.post_process_grid(outputs.grid_predictions)[1].ndim == 2


@pytest.fixture
def run_dir(tmp_path):
    config = TRMConfig.from_preset("tiny")
    folder = tmp_path / "run"
    TRMForMultitaskReasoning(config).save_pretrained(folder)
    TRMProcessor.from_config(config).save_pretrained(folder)
    (folder / "eval_results.json").write_text(json.dumps({"seed": 0}))
    (folder / "optimizer.pt").write_bytes(b"not copied")
    return folder


def test_make_demo_checkpoint_copies_weights_config_and_processor_but_no_code(run_dir, tmp_path):
    target = tmp_path / "demo"
    result = subprocess.run([sys.executable, str(SCRIPT), str(run_dir), "--target", str(target)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    names = {p.name for p in target.iterdir()}
    assert {"model.safetensors", "config.json", "processor_config.json", "eval_results.json"} <= names
    assert not any(name.endswith(".py") for name in names) and "optimizer.pt" not in names
    assert "auto_map" not in json.loads((target / "config.json").read_text())  # it would name absent code files
    assert isinstance(AutoModel.from_pretrained(target), TRMModel)


def test_make_demo_checkpoint_refuses_a_folder_holding_other_files(run_dir, tmp_path):
    target = tmp_path / "somebody_elses"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    result = subprocess.run([sys.executable, str(SCRIPT), str(run_dir), "--target", str(target)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "notes.txt" in result.stderr
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]
    assert (target / "notes.txt").read_text() == "mine"


def test_make_demo_checkpoint_refuses_an_unfinished_run(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--target", str(tmp_path / "demo")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "model.safetensors" in result.stderr
    assert not (tmp_path / "demo").exists()
