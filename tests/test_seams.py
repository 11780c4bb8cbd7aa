"""The seams between the folders (issue 8): what crosses them, and the layout rules that keep them apart.

- The processor returns the model's inputs (`MODEL_INPUT_NAMES`) and labels (`LABEL_NAMES`); the model's `forward`
  takes exactly those, by name, with no catch-all `**kwargs`.
- The base model computes no loss; the loss module does, for `TRMForMultitaskReasoning`. Every class wraps the
  base model as `.trm`, so each loads the others' checkpoints.
- `processing/` never imports `modeling_trm/`; `configuration/` imports neither; no file edits the import path; the
  demo checkpoint folder holds no code.
"""

import ast
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import AutoModel

from vision_trm.configuration import FORWARD_OPTIONS, IGNORE_INDEX, LABEL_NAMES, MODEL_INPUT_NAMES
from vision_trm.modeling_trm import (
    TRMForImageClassification,
    TRMForMultitaskReasoning,
    TRMModel,
    TRMModelOutput,
    TRMMultitaskLoss,
)
from vision_trm.processing import TRMProcessor

REPO = Path(__file__).resolve().parents[1]
SKIPPED_FOLDERS = {"__pycache__", "build", "dist", "node_modules"}

TASK = {
    "id": "abc",
    "train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}],
    "test": [{"input": [[6, 7]], "output": [[7, 6]]}],
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def forward_parameters(model_class) -> list[str]:
    return [name for name in inspect.signature(model_class.forward).parameters if name != "self"]


# ---------------------------------------------------------------------------------------- processor -> model


def test_forward_takes_exactly_the_model_inputs_and_labels():
    """... and the call options of `FORWARD_OPTIONS`, which say how to run, not what to read."""
    assert forward_parameters(TRMModel) == list(MODEL_INPUT_NAMES + FORWARD_OPTIONS)
    assert forward_parameters(TRMForMultitaskReasoning) == list(MODEL_INPUT_NAMES + LABEL_NAMES + FORWARD_OPTIONS)


@pytest.mark.parametrize("model_class", [TRMModel, TRMForMultitaskReasoning, TRMForImageClassification])
def test_a_misspelled_keyword_is_a_type_error(small_model_config, model_class):
    model = model_class(small_model_config())
    pixels = torch.randn(1, 3, 32, 32)
    with pytest.raises(TypeError, match="grid_label"):
        model(pixel_values=pixels, grid_label=torch.zeros(1, 30, 30, dtype=torch.long))
    with pytest.raises(TypeError, match="input_index"):  # processor bookkeeping is not a model input
        model(pixel_values=pixels, input_index=torch.zeros(1, dtype=torch.long))


def test_the_base_model_accepts_no_labels_and_returns_no_loss(small_model_config, model_batch):
    config = small_model_config()
    model = TRMModel(config).eval()
    inputs, labels = model_batch(config)
    for name, value in labels.items():
        with pytest.raises(TypeError, match=name):
            model(**inputs, **{name: value})
    with torch.no_grad():
        outputs = model(**inputs)
    assert not any("loss" in field for field in TRMModelOutput.__dataclass_fields__)
    assert not any("loss" in key for key in outputs.keys())
    assert outputs.grid_logits is not None and outputs.class_logits is not None and outputs.text_logits is not None


def test_processor_output_is_what_the_models_take(small_model_config):
    config = small_model_config()
    processor = TRMProcessor.from_config(config, task_vocabulary={"abc": 3})
    batch = processor(["a cat", Image.new("RGB", (40, 20), "red"), TASK], labels=[None, 2, None],
                      text_targets=["cat", None, None])
    assert batch["task_ids"].tolist() == [0, 0, 3]
    model = TRMForMultitaskReasoning(config).eval()
    with torch.no_grad():
        outputs = model(**batch)  # no key to drop, none to rename
        base_outputs = model.trm(**{name: batch[name] for name in processor.model_input_names if name in batch})
    assert torch.isfinite(outputs.loss)
    assert outputs.grid_loss is not None and outputs.classification_loss is not None and outputs.text_loss is not None
    torch.testing.assert_close(base_outputs.grid_logits, outputs.grid_logits, rtol=0, atol=0)
    # The model's padded grid_predictions crop back to one grid per row.
    grids = processor.post_process_grid(outputs.grid_predictions)
    assert len(grids) == 3 and all(grid.ndim == 2 and (grid >= 0).all() and (grid < 10).all() for grid in grids)


# ------------------------------------------------------------------------------------------- shared weights


def trained_model(config, batch) -> TRMForMultitaskReasoning:
    """A model after two training forwards: the concept vocabulary is initialised and its usage clocks run."""
    model = TRMForMultitaskReasoning(config).train()
    inputs, labels = batch
    for _ in range(2):
        model(**inputs, **labels).loss.backward()
    concepts = model.trm.concepts
    assert concepts.initialized and concepts.code_usage.sum() > 0 and concepts.steps_since_used.sum() > 0
    return model.eval()


def test_every_class_loads_the_others_weights(tmp_path, small_model_config, model_batch):
    config = small_model_config()
    inputs, _ = model_batch(config)
    image_inputs = {"pixel_values": inputs["pixel_values"], "modality_ids": torch.ones(3, dtype=torch.long)}
    source = trained_model(config, model_batch(config))
    source.save_pretrained(tmp_path / "multitask")
    base, info = TRMModel.from_pretrained(tmp_path / "multitask", output_loading_info=True)
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    # The Hub's AutoModel path. With the package installed transformers prefers its registered class to the folder's
    # code; tests/test_hub_folder.py loads the remote code itself in a process that cannot import the package.
    remote = AutoModel.from_pretrained(tmp_path / "multitask", trust_remote_code=True)
    assert type(remote) is TRMModel
    classifier = TRMForImageClassification.from_pretrained(tmp_path / "multitask")
    with torch.no_grad():
        expected = source(**inputs)
        for loaded in (base, remote):
            got = loaded.eval()(**inputs)
            for name in ("grid_logits", "class_logits", "text_logits", "halting_logits"):
                torch.testing.assert_close(getattr(got, name), getattr(expected, name), rtol=0, atol=0, msg=name)
        torch.testing.assert_close(classifier.eval()(inputs["pixel_values"]).logits,
                                   source(**image_inputs).class_logits, rtol=0, atol=0)
    # ... and back: the base model's checkpoint is a complete TRMForMultitaskReasoning.
    base.save_pretrained(tmp_path / "base")
    wrapped, info = TRMForMultitaskReasoning.from_pretrained(tmp_path / "base", output_loading_info=True)
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    with torch.no_grad():
        torch.testing.assert_close(wrapped.eval()(**inputs).grid_logits, expected.grid_logits, rtol=0, atol=0)


def test_classification_loss_is_the_loss_module_on_image_rows(small_model_config):
    config = small_model_config()
    classifier = TRMForImageClassification(config).eval()
    pixels, labels = torch.randn(2, 3, 32, 32), torch.tensor([1, 4])
    with torch.no_grad():
        loss = classifier(pixels, labels=labels).loss
        outputs = classifier.trm(pixels, modality_ids=torch.ones(2, dtype=torch.long))
        expected = TRMMultitaskLoss(config)(outputs, labels=labels)["loss"]
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)


def test_concept_buffers_come_back_as_saved(tmp_path, small_model_config, model_batch):
    config = small_model_config()
    source = trained_model(config, model_batch(config))
    source.save_pretrained(tmp_path)
    saved = {name: buffer.clone() for name, buffer in source.trm.concepts.state_dict().items()}
    for model_class in (TRMForMultitaskReasoning, TRMModel):
        loaded = model_class.from_pretrained(tmp_path).base_model.concepts.state_dict()
        for name, value in saved.items():
            assert torch.equal(loaded[name], value), f"{model_class.__name__}: concepts.{name} was not restored"


def test_concept_buffers_are_zero_in_a_checkpoint_without_them(tmp_path, small_model_config, model_batch):
    config = small_model_config()
    source = trained_model(config, model_batch(config))
    source.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    buffers = ("initialized", "code_usage", "steps_since_used")
    for name in buffers:
        del weights[f"trm.concepts.{name}"]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    concepts = TRMForMultitaskReasoning.from_pretrained(tmp_path).trm.concepts
    assert not concepts.initialized
    assert torch.equal(concepts.code_usage, torch.zeros_like(concepts.code_usage))
    assert torch.equal(concepts.steps_since_used, torch.zeros_like(concepts.steps_since_used))
    assert torch.equal(concepts.codebook, source.trm.concepts.codebook)  # the weights it has are not re-initialised


# ------------------------------------------------------------------------------------------------ layout rules


def python_files(root: Path = REPO):
    """Every .py file of the repository (not hidden folders, caches or build outputs)."""
    for folder, subfolders, files in os.walk(root):
        # A virtual environment inside the repository (`.venv/`, `venv/`: it holds a pyvenv.cfg) is not our code.
        subfolders[:] = [name for name in subfolders if not name.startswith(".") and name not in SKIPPED_FOLDERS
                         and not name.endswith(".egg-info") and not (Path(folder) / name / "pyvenv.cfg").exists()]
        yield from (Path(folder) / name for name in files if name.endswith(".py"))


def imported_modules(path: Path) -> list[str]:
    """The module named by every import statement of a file, as written (`..modeling_trm.heads` for a relative one)."""
    modules = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            modules += [base] if node.module else [base + alias.name for alias in node.names]
    return modules


# Text that adds to the import path when run as code (`python -c "..."`); it does not match itself.
_PATH_EDIT_IN_TEXT = re.compile(r"sys\.path\.(insert|append|extend)\(|sys\.path(\[[^\]]*\])?\s*\+?=(?!=)")


def import_path_edits(path: Path) -> list[int]:
    """Lines of a file that touch `sys.path` (any use: reading it only ever serves editing it), import `path` from
    `sys`, or carry code that edits it in a string."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", None) == "sys":
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "sys" and any(a.name == "path" for a in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _PATH_EDIT_IN_TEXT.search(node.value):
            lines.append(node.lineno)
    return sorted(set(lines))


def test_the_layout_helpers_find_what_they_look_for(tmp_path):
    """The rules below pass on an empty result, so check that the helpers do see an import and a path edit."""
    sample = tmp_path / "sample.py"
    edit = "sys" + ".path.append(1)"  # spelled apart, so that this file does not edit the path itself
    sample.write_text("import sys\nfrom ..modeling_trm.heads import x\nfrom .. import modeling_trm\n"
                      f"{edit}\ncode = 'import sys; {edit}'\nprint(sys.argv)\n")
    assert imported_modules(sample) == ["sys", "..modeling_trm.heads", "..modeling_trm"]
    assert import_path_edits(sample) == [4, 5]
    assert sample in set(python_files(tmp_path))


def test_processing_never_imports_modeling_trm():
    offenders = {f"{path.relative_to(REPO)}: {module}" for path in (REPO / "processing").glob("*.py")
                 for module in imported_modules(path) if "modeling_trm" in module}
    assert not offenders, f"processing/ imports modeling_trm: {sorted(offenders)}"


def test_configuration_imports_neither_processing_nor_modeling_trm():
    offenders = {f"{path.relative_to(REPO)}: {module}" for path in (REPO / "configuration").glob("*.py")
                 for module in imported_modules(path) if re.search(r"\b(processing|modeling_trm)\b", module)}
    assert not offenders, f"configuration/ imports another code folder: {sorted(offenders)}"


def test_using_the_processor_loads_no_modeling_code():
    """At run time too: importing the processor and running it on every kind of input leaves modeling_trm unloaded."""
    code = (
        "import sys\n"
        "from PIL import Image\n"
        "from vision_trm.processing import TRMProcessor\n"
        "p = TRMProcessor()\n"
        "task = {'id': 'a', 'train': [{'input': [[1]], 'output': [[2]]}],"
        " 'test': [{'input': [[3]], 'output': [[4]]}]}\n"
        "out = p(['text', Image.new('RGB', (8, 8)), [[1, 2]], task], labels=[1, None, None, None],"
        " text_targets=['t', None, None, None])\n"
        "p.post_process_grid(out['grid_labels'][3:]); p.draw_grid([[1]])\n"
        "print(sorted(name for name in sys.modules if 'modeling_trm' in name))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=REPO.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_no_python_file_edits_the_import_path():
    """The package is installed (`vision_trm.*`, `vision_trm.train_scripts`): no script, app or test needs to."""
    # The one exception: the clean-process helper removes the repository from a child's path on purpose, to prove
    # that a Hub folder loads without this package.
    allowed = {REPO / "tests" / "clean_process.py"}
    offenders = {f"{path.relative_to(REPO)}:{line}" for path in python_files() if path not in allowed
                 for line in import_path_edits(path)}
    assert not offenders, f"these lines edit or use sys.path: {sorted(offenders)}"


def test_demo_checkpoint_holds_no_code():
    """The Space loads the demo folder with the installed package's classes; a code snapshot there would go stale."""
    folder = REPO / "spaces_app" / "demo_checkpoint"
    assert folder.is_dir()
    code = sorted(path.name for path in folder.rglob("*.py"))
    assert not code, f"spaces_app/demo_checkpoint/ holds code files: {code}"


def test_skipping_the_value_checks_keeps_the_shape_checks_and_the_outputs(small_model_config, model_batch):
    """`check_input_values=False` (the ARC recipe's own batches, where each value check is a GPU sync) skips what
    reads values and nothing else: a NaN canvas passes, a wrong shape does not, and valid inputs give the same
    outputs and loss."""
    config = small_model_config()
    model = TRMForMultitaskReasoning(config).eval()
    inputs, labels = model_batch(config)
    with torch.no_grad():
        checked = model(**inputs, **labels)
        unchecked = model(**inputs, **labels, check_input_values=False)
    assert torch.equal(checked.loss, unchecked.loss) and torch.equal(checked.class_logits, unchecked.class_logits)
    nan_canvas = dict(inputs, pixel_values=inputs["pixel_values"].clone().index_fill_(0, torch.tensor([1]), float("nan")))
    with pytest.raises(ValueError, match="NaN"):
        model(**nan_canvas)
    with torch.no_grad():
        model(**nan_canvas, check_input_values=False)
    wrong_shape = dict(inputs, pixel_values=inputs["pixel_values"][:, :, :16])
    with pytest.raises(ValueError, match="pixel_values must have shape"):
        model(**wrong_shape, check_input_values=False)
    bad_labels = dict(labels, labels=torch.tensor([IGNORE_INDEX, config.num_labels, IGNORE_INDEX]))
    with pytest.raises(ValueError, match="labels hold"):
        model(**inputs, **bad_labels)


def test_the_cell_head_zeroes_the_rows_without_a_grid(small_model_config, model_batch):
    """The cell head runs on every row (cheaper than asking the device which rows are grids) and zeroes the others;
    a grid row's logits are what it gets alone."""
    config = small_model_config(grid_head_type="cells", image_size=16, patch_size=2, max_grid_size=6,
                                deep_supervision_steps=1)
    model = TRMModel(config).eval()
    inputs, _ = model_batch(config)
    with torch.no_grad():
        mixed = model(**inputs).cell_logits
        alone = model(**{name: value[:1] for name, value in inputs.items()}).cell_logits
    assert (mixed[1:] == 0).all() and mixed[0].abs().sum() > 0
    torch.testing.assert_close(mixed[:1], alone)
