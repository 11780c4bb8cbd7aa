"""The saved folder loads with trust_remote_code in a clean process that cannot import this package."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from clean_process import CLEAN_MARKER, run_clean
from tiny_models import model_batch, small_clip_config, small_model_config
from vision_trm.modeling_trm import TRMModel
from vision_trm.configuration.hub_export import flatten_imports
from vision_trm.processing import TRMProcessor

PROCESSOR_INPUTS = ["a line of text", [[1, 2, 3], [4, 5, 6]]]

def export_elsewhere(model: TRMModel, tmp_path: Path) -> Path:
    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    TRMProcessor.from_config(model.config).save_pretrained(saved)
    moved = tmp_path / "elsewhere" / "trm-tiny"
    shutil.copytree(saved, moved)
    return moved


def test_saved_folder_is_flat_with_auto_map(tmp_path):
    model = TRMModel(small_model_config())
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_trm.TRMModel"
    assert config["auto_map"]["AutoConfig"] == "configuration_trm.TRMConfig"
    for name in ("modeling_trm.py", "configuration_trm.py", "attention.py", "recursion.py", "model.safetensors"):
        assert (tmp_path / name).exists(), name
    for code_file in tmp_path.glob("*.py"):
        parent_imports = re.findall(r"^\s*from \.\.", code_file.read_text(), re.MULTILINE)
        assert not parent_imports, f"{code_file.name} keeps a parent-package import"


def test_flatten_refuses_imports_it_cannot_rewrite():
    assert flatten_imports("from ..configuration.configuration_trm import X\n", "m.py") == (
        "from .configuration_trm import X\n"
    )
    with pytest.raises(RuntimeError, match="cannot be flattened"):
        flatten_imports("from ..elsewhere import X\n", "m.py")


@pytest.mark.parametrize("make_config", [small_model_config, small_clip_config], ids=["tiny", "tiny-clip-tower"])
def test_trust_remote_code_roundtrip_in_a_clean_process(tmp_path, make_config):
    config = make_config()
    model = TRMModel(config).eval()
    batch, _ = model_batch(config)
    with torch.no_grad():
        expected = model(**batch)
    folder = export_elsewhere(model, tmp_path)
    tensors = {k: v.contiguous() for k, v in batch.items()}
    processed = TRMProcessor.from_config(config)(PROCESSOR_INPUTS)
    tensors.update(
        expected_grid=expected.grid_logits,
        expected_class=expected.class_logits,
        expected_canvases=processed["pixel_values"],
    )
    save_file(tensors, str(tmp_path / "io.safetensors"))
    result = run_clean(
        """
        import torch
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModel, AutoProcessor
        folder = sys.argv[2]
        try:
            AutoModel.from_pretrained(folder)
        except ValueError as error:
            assert "trust_remote_code" in str(error), error
            print("REFUSED_WITHOUT_TRUST")
        model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        tower = getattr(model, "pretrained_tower", None)
        if tower is not None:
            assert not any(p.requires_grad for p in tower.backbone.parameters()), "tower unfrozen after loading"
        io = load_file("io.safetensors")
        expected_grid, expected_class = io.pop("expected_grid"), io.pop("expected_class")
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        assert type(processor).__module__.startswith("transformers_modules"), type(processor).__module__
        processed = processor(["a line of text", [[1, 2, 3], [4, 5, 6]]])
        torch.testing.assert_close(processed["pixel_values"], io.pop("expected_canvases"))
        with torch.no_grad():
            model(pixel_values=processed["pixel_values"], modality_ids=processed["modality_ids"])
        print("PROCESSOR_MATCHES")
        with torch.no_grad():
            out = model(**io)
        torch.testing.assert_close(out.grid_logits, expected_grid)
        torch.testing.assert_close(out.class_logits, expected_class)
        print("OUTPUTS_MATCH")
        """,
        folder,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert CLEAN_MARKER in result.stdout
    assert "REFUSED_WITHOUT_TRUST" in result.stdout
    assert "OUTPUTS_MATCH" in result.stdout
    assert "PROCESSOR_MATCHES" in result.stdout
