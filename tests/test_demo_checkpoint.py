"""The Space's demo checkpoint carries a copy of the code (as every remote-code Hub folder must): it must be the
package's current code, flattened, or the Space would run different code from the repository."""

from pathlib import Path

import torch

from vision_trm.modeling_trm import TRMModel
from vision_trm.modeling_trm.hub_export import flatten_imports, source_files

DEMO = Path(__file__).resolve().parents[1] / "spaces_app" / "demo_checkpoint"
REGENERATE = (
    "regenerate with: python -c \"from vision_trm.modeling_trm.hub_export import write_code_files; "
    "write_code_files('spaces_app/demo_checkpoint')\" (or retrain: python train_scripts/run_multimodal.py)"
)


def test_demo_checkpoint_code_is_the_current_package_code():
    expected = {path.name: flatten_imports(path.read_text(encoding="utf-8"), path.name) for path in source_files()}
    shipped = {path.name: path.read_text(encoding="utf-8") for path in DEMO.glob("*.py")}
    assert set(shipped) == set(expected), f"code files differ: {sorted(set(shipped) ^ set(expected))}; {REGENERATE}"
    stale = sorted(name for name in expected if shipped[name] != expected[name])
    assert not stale, f"stale code in the demo checkpoint: {stale}; {REGENERATE}"


def test_demo_checkpoint_weights_load_into_the_current_model():
    model = TRMModel.from_pretrained(DEMO).eval()
    with torch.no_grad():
        outputs = model(pixel_values=torch.zeros(1, 3, model.config.image_size, model.config.image_size))
    assert torch.isfinite(outputs.class_logits).all()
