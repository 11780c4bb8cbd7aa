"""The Gradio Space, driven end to end: a tiny checkpoint is saved in a temporary folder, the app loads it through
`MODEL_ID` (Auto classes + the folder's remote code), is started on localhost and each tab is called through
`gradio_client`. One test loads the committed demo checkpoint instead."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr  # noqa: E402
import gradio_client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from PIL import Image  # noqa: E402

from file_modules import REPO, load_file_module  # noqa: E402
from vision_trm.configuration import TRMConfig  # noqa: E402
from vision_trm.modeling_trm import TRMModel  # noqa: E402
from vision_trm.processing import TRMProcessor  # noqa: E402

APP_PATH = REPO / "spaces_app" / "app.py"
LABELS = ["tee", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def save_tiny_checkpoint(folder: Path) -> Path:
    config = TRMConfig.from_preset("tiny", id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})
    torch.manual_seed(0)
    TRMModel(config).save_pretrained(folder)
    TRMProcessor.from_config(config).save_pretrained(folder)
    return folder


def load_app_module():
    return load_file_module("trm_space_app", APP_PATH)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny_checkpoint"))


@pytest.fixture(scope="module")
def space(checkpoint):
    saved = os.environ.get("MODEL_ID")
    os.environ["MODEL_ID"] = str(checkpoint)
    try:
        app = load_app_module()
    finally:
        if saved is None:
            os.environ.pop("MODEL_ID")
        else:
            os.environ["MODEL_ID"] = saved
    _, url, _ = app.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **app.LAUNCH_KWARGS)
    client = gradio_client.Client(url, verbose=False)
    yield app, client
    app.demo.close()


def _image(path) -> np.ndarray:
    assert path and Path(path).is_file(), path
    return np.asarray(Image.open(path).convert("RGB"))


def _gallery(items) -> list[tuple[np.ndarray, str]]:
    return [(_image(item["image"]), item["caption"]) for item in items]


def _shown_canvas(app, canvas: np.ndarray) -> np.ndarray:
    factor = app.CANVAS_DISPLAY_PX // canvas.shape[0]
    return canvas.repeat(factor, 0).repeat(factor, 1)


def _first_task(app) -> tuple[str, dict]:
    name, path = next(iter(app.bundled_tasks().items()))
    return name, json.loads(path.read_text())


# ------------------------------------------------------------------------------------------------------------ ARC


def test_arc_bundled_example(space, checkpoint):
    app, client = space
    name, task = _first_task(app)
    status, pairs, test_input, prediction, expected, steps, details, canvas = client.predict(
        name, "", 0, api_name="/run_arc"
    )
    draw = app.PROCESSOR.draw_grid
    # The same answer as the package's own model class loaded from the same folder, through the processor.
    reference = TRMModel.from_pretrained(checkpoint).eval()
    batch = TRMProcessor.from_pretrained(checkpoint)([{**task, "task_id": name}])
    with torch.no_grad():
        outputs = reference(pixel_values=batch["pixel_values"][:1], modality_ids=batch["modality_ids"][:1],
                            task_ids=batch["task_ids"][:1])
    assert details["predicted_grid"] == app.PROCESSOR.post_process_grid(outputs.grid_predictions)[0].tolist()
    assert details["halting_step"] == int(outputs.halting_steps[0])
    steps_expected = app.PROCESSOR.post_process_grid(outputs.step_grid_predictions[0])
    assert details["step_grids"] == [grid.tolist() for grid in steps_expected]
    assert details["expected_grid"] == task["test"][0]["output"]
    assert details["exact_match"] == (details["predicted_grid"] == details["expected_grid"])
    halted = details["halting_step"]
    assert f"Task **{name}**" in status and f"Halting fired at step {halted} of {len(steps_expected)}" in status
    # The images are the processor's drawings of exactly these grids.
    assert np.array_equal(_image(prediction), draw(details["predicted_grid"]))
    assert np.array_equal(_image(expected), draw(task["test"][0]["output"]))
    assert np.array_equal(_image(test_input), draw(task["test"][0]["input"]))
    assert np.array_equal(_image(canvas), _shown_canvas(app, app.PROCESSOR.image_processor.render_grid(
        task["test"][0]["input"])))
    shown_pairs = _gallery(pairs)
    assert [caption for _, caption in shown_pairs] == [f"pair {k}: input → output" for k in range(1, len(task["train"]) + 1)]
    first_in = draw(task["train"][0]["input"], 150)
    assert np.array_equal(shown_pairs[0][0][: first_in.shape[0], : first_in.shape[1]], first_in)
    shown_steps = _gallery(steps)
    assert [caption.endswith("· halt") for _, caption in shown_steps] == [
        s == halted for s in range(1, len(steps_expected) + 1)
    ]
    for (image, _), grid in zip(shown_steps, steps_expected):
        assert np.array_equal(image, draw(grid, 120))


def test_views_offered_stay_within_what_the_model_was_trained_on(space):
    """The "Views voted over" slider's maximum follows `config.arc_view_parts`: 32 with colour permutations, the 8
    dihedral views without them, the identity alone without dihedral transforms either."""
    from types import SimpleNamespace

    app, _ = space

    def model(parts):
        return SimpleNamespace(config=SimpleNamespace(arc_view_parts=parts))

    assert app.voting_view_limit(app.MODEL) == app.MAX_TTT_VIEWS == 32
    assert app.voting_view_limit(model(["dihedral", "translation"])) == 8
    assert app.voting_view_limit(model(["translation"])) == 1


def test_arc_pasted_task_runs_the_chosen_test_input(space):
    app, client = space
    task = {
        "train": [{"input": [[1, 0], [0, 0]], "output": [[0, 1], [0, 0]]}],
        "test": [{"input": [[2, 0], [0, 0]]}, {"input": [[0, 0, 3]], "output": [[3, 0, 0]]}],
    }
    name, _ = _first_task(app)
    status, _, test_input, _, expected, _, details, canvas = client.predict(name, json.dumps(task), 1, api_name="/run_arc")
    assert "Task **uploaded**, test input 1" in status
    assert details["expected_grid"] == [[3, 0, 0]]
    assert np.array_equal(_image(test_input), app.PROCESSOR.draw_grid([[0, 0, 3]]))
    assert np.array_equal(_image(canvas), _shown_canvas(app, app.PROCESSOR.image_processor.render_grid([[0, 0, 3]])))
    alone = app.predict_arc(app.MODEL, app.PROCESSOR, {"train": task["train"], "test": [task["test"][1]]}, 0)
    assert details["predicted_grid"] == alone["prediction"].tolist()


BAD_TASKS = [
    ("{not json", 0, "not valid JSON: Expecting property name"),
    ("[1, 2, 3]", 0, "must be a dict with 'train' and 'test'"),
    ('{"train": [], "test": [{"input": [[1]]}]}', 0, "'train' is empty"),
    ('{"train": [{"input": [[1, 12]], "output": [[1]]}], "test": [{"input": [[1]]}]}', 0, r"train\[0\]: colour"),
    ('{"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]}', 0, "ragged"),
    ('{"train": [{"input": [[1.5]], "output": [[1]]}], "test": [{"input": [[1]]}]}', 0, "non-integer cell"),
    ('{"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]}', 0, "mismatched pair"),
    ('{"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1]]}]}', 3, "index 3 does not exist"),
    (json.dumps({"train": [{"input": [[1] * 31], "output": [[1]]}], "test": [{"input": [[1]]}]}), 0, "over 30x30"),
    (json.dumps({"train": [{"input": [[1]], "output": [[1]]}] * 11, "test": [{"input": [[1]]}]}), 0, "11 demo"),
    ('{"id": "' + "a" * 1_000_000 + '"}', 0, "larger than 1000 kB"),
]


@pytest.mark.parametrize("task_json, index, message", BAD_TASKS, ids=[message for _, _, message in BAD_TASKS])
def test_arc_bad_task_names_the_problem(space, task_json, index, message):
    app, client = space
    with pytest.raises(AppError, match=message):
        client.predict(_first_task(app)[0], task_json, index, api_name="/run_arc")


def test_arc_task_names_never_become_paths(space):
    app, _ = space
    for name in ("../../../etc/passwd", "/etc/passwd", "examples/arc/00576224.json"):
        with pytest.raises(gr.Error, match="Unknown task"):
            app.load_named_task(name)


def test_task_file_upload_is_read_with_limits(space, tmp_path):
    app, _ = space
    good = tmp_path / "task.json"
    good.write_text(json.dumps({"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]]}]}))
    assert json.loads(app.read_task_file(str(good)))["test"][0]["input"] == [[1]]
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(gr.Error, match="not UTF-8"):
        app.read_task_file(str(bad))
    big = tmp_path / "big.json"
    big.write_text(" " * (app.MAX_JSON_BYTES + 1))
    with pytest.raises(gr.Error, match="larger than"):
        app.read_task_file(str(big))


# ---------------------------------------------------------------------------------------------------------- Image


def test_image_example(space):
    app, client = space
    example = sorted(app.IMAGE_EXAMPLES_DIR.glob("*.png"))[0]
    status, label, gate, canvas, details = client.predict(gradio_client.handle_file(str(example)),
                                                         api_name="/classify_image")
    confidences = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert set(confidences) == set(LABELS)  # the checkpoint's id2label names
    direct = app.classify(app.MODEL, app.PROCESSOR, Image.open(example))
    assert confidences == pytest.approx(direct["probabilities"], abs=1e-5)
    assert label["label"] == max(direct["probabilities"], key=direct["probabilities"].get)
    assert f"Top class: **{label['label']}**" in status
    assert gate == app.describe_gate(direct["fusion_gate"])
    assert np.array_equal(_image(canvas), direct["canvas"])
    assert canvas and _image(canvas).shape == (256, 256, 3)


def test_fusion_gate_is_described(space):
    app, _ = space
    assert "single vision path" in app.describe_gate(None)
    assert "g = 0.250" in app.describe_gate([0.25])
    assert "per token (2): min 0.100, max 0.300, mean g = 0.200" in app.describe_gate([0.1, 0.3])


def _save_bytes(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return gradio_client.handle_file(str(path))


def test_corrupt_image_names_the_problem(space, tmp_path):
    app, client = space
    with pytest.raises(AppError, match="not a readable image: cannot identify image file"):
        client.predict(_save_bytes(tmp_path / "noise.png", b"definitely not a PNG" * 50), api_name="/classify_image")
    whole = tmp_path / "whole.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(whole)
    cut = whole.read_bytes()[: whole.stat().st_size // 2]
    with pytest.raises(AppError, match="not a readable image"):
        client.predict(_save_bytes(tmp_path / "cut.png", cut), api_name="/classify_image")


@pytest.mark.parametrize("side", [5000, 6000])  # over PIL's warning limit / over its error limit (twice the pixels)
def test_decompression_bomb_names_the_problem(space, tmp_path, side):
    app, client = space
    assert app.MAX_IMAGE_PIXELS < side * side
    path = tmp_path / "bomb.png"
    Image.new("L", (side, side)).save(path)
    assert path.stat().st_size < 200_000  # small on disk, huge once decoded
    with pytest.raises(AppError, match="possible decompression bomb"):
        client.predict(gradio_client.handle_file(str(path)), api_name="/classify_image")


def test_image_too_large_names_the_limit(space, tmp_path):
    app, client = space
    path = tmp_path / "wide.png"
    Image.new("RGB", (app.MAX_IMAGE_SIDE + 10, 4)).save(path)
    with pytest.raises(AppError, match="largest side allowed is 4096 px"):
        client.predict(gradio_client.handle_file(str(path)), api_name="/classify_image")


def test_uploads_over_the_size_limit_are_refused(space, tmp_path):
    _, client = space
    path = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (1100, 1100, 3), dtype=np.uint8)).save(path)
    assert path.stat().st_size > 2_000_000  # over MAX_UPLOAD_SIZE
    with pytest.raises(Exception, match="(?i)too large|exceeds|size"):
        client.predict(gradio_client.handle_file(str(path)), api_name="/classify_image")


# ----------------------------------------------------------------------------------------------------------- Text


def test_text_example(space):
    app, client = space
    text = app.TEXT_EXAMPLES[0]
    status, canvas, continuation, details = client.predict(text, 8, api_name="/continue_text")
    processor, model = app.PROCESSOR, app.MODEL
    assert np.array_equal(_image(canvas), _shown_canvas(app, processor.image_processor.render_text(text)["canvas"]))
    generated = details["token_ids"]
    assert 0 <= len(generated) <= 8 and continuation == processor.decode_text(generated)
    assert f"Generated {len(generated)} token(s)" in status and "cannot draw" not in status
    # Greedy: teacher-forcing the shown tokens, each is the argmax after its prefix (then EOS, if it stopped early).
    batch = processor([text])
    prefix = torch.tensor([[processor.tokenizer.bos_token_id] + generated])
    with torch.no_grad():
        logits = model(pixel_values=batch["pixel_values"], modality_ids=batch["modality_ids"],
                       task_ids=batch["task_ids"], decoder_input_ids=prefix,
                       decoder_attention_mask=torch.ones_like(prefix)).text_logits[0]
    greedy = logits.argmax(-1).tolist()
    assert greedy[: len(generated)] == generated
    if len(generated) < 8:
        assert greedy[len(generated)] == processor.tokenizer.eos_token_id


@pytest.mark.parametrize(
    "text, tokens, message",
    [("x" * 2001, 4, "the limit is 2000"), ("", 4, "Type some text"), ("hi", 0, "less than minimum value 1"),
     ("hi", 65, "greater than maximum value 64")],
)
def test_text_limits_name_the_problem(space, text, tokens, message):
    _, client = space
    with pytest.raises(AppError, match=message):
        client.predict(text, tokens, api_name="/continue_text")


def test_undrawable_characters_are_warned_about(space, monkeypatch):
    app, client = space
    processor_class = type(app.PROCESSOR)
    original = processor_class.__call__

    def reporting_undrawable(self, *args, **kwargs):
        batch = original(self, *args, **kwargs)
        if kwargs.get("return_bookkeeping"):
            batch["undrawable_characters"] = [["☃", "𝄞"]]
        return batch

    monkeypatch.setattr(processor_class, "__call__", reporting_undrawable)
    status, *_ = client.predict("a snowman ☃ and a clef 𝄞", 2, api_name="/continue_text")
    assert "⚠️ The font cannot draw '☃', '𝄞'" in status


# ---------------------------------------------------------------------------------------------------- loading


def test_model_id_loads_a_saved_folder(space, checkpoint, monkeypatch):
    """With the package installed, transformers prefers its registered classes to the folder's remote code (the
    remote code itself is proven in a clean process by tests/test_hub_folder.py)."""
    app, _ = space
    monkeypatch.setenv("MODEL_ID", str(checkpoint))
    model, processor, source = app.load_model_and_processor()
    assert source == str(checkpoint)
    assert type(model).__name__ == "TRMModel" and type(processor).__name__ == "TRMProcessor"
    _, task = _first_task(app)
    package_model = TRMModel.from_pretrained(checkpoint).eval()
    expected = app.predict_arc(package_model, TRMProcessor.from_pretrained(checkpoint), task, 0)
    assert np.array_equal(app.predict_arc(model, processor, task, 0)["prediction"], expected["prediction"])


def test_unloadable_model_id_fails_naming_it(space):
    app, _ = space
    with pytest.raises(RuntimeError, match="Could not load MODEL_ID='/nonexistent/vision-trm'"):
        app.load_model_and_processor("/nonexistent/vision-trm")


def test_no_model_at_all_fails_with_a_message(space, tmp_path, monkeypatch):
    app, _ = space
    monkeypatch.delenv("MODEL_ID", raising=False)
    monkeypatch.setattr(app, "DEMO_CHECKPOINT", tmp_path / "missing")
    with pytest.raises(RuntimeError, match="MODEL_ID is not set"):
        app.load_model_and_processor()


def test_demo_checkpoint_loads_with_the_package_classes(space, monkeypatch):
    app, _ = space
    assert not sorted(app.DEMO_CHECKPOINT.glob("*.py")), "the demo folder holds weights and files, no code"
    monkeypatch.delenv("MODEL_ID", raising=False)
    model, processor, source = app.load_model_and_processor()
    assert source == "demo_checkpoint" and type(model) is TRMModel and type(processor) is TRMProcessor
    name, task = _first_task(app)
    result = app.predict_arc(model, processor, {**task, "task_id": name}, 0)
    assert result["prediction"].ndim == 2 and 1 <= result["halting_step"] <= model.config.deep_supervision_steps
    image = sorted(app.IMAGE_EXAMPLES_DIR.glob("*.png"))[0]
    probabilities = app.classify(model, processor, Image.open(image))["probabilities"]
    assert set(probabilities) == set(model.config.id2label.values()) and "Ankle boot" in probabilities


# --------------------------------------------------------------------------------------------------- Image -> code


def test_image_to_code_example_shows_the_program_and_its_rendering(space):
    app, client = space
    status, shown_input, predicted, rendering, expected, details = client.predict(
        "chart", 1, api_name="/image_to_code_example")
    reference = app.code_examples()["chart"][1]
    image = app.CODE_KINDS["chart"].render(reference)
    assert expected == reference and details["expected_program"] == reference
    assert np.array_equal(_image(shown_input), app.enlarged(image))
    assert predicted == details["predicted_program"]
    assert predicted == app.predict_code(app.CODE_MODEL, app.CODE_PROCESSOR, Image.fromarray(image), "chart")
    assert details["valid"] == app.is_valid("chart", predicted)
    if details["valid"]:
        assert np.array_equal(_image(rendering), app.enlarged(app.try_render("chart", predicted)))
    else:
        assert rendering is None and "**not** a valid" in status


def test_image_to_code_draws_a_right_answer_and_never_runs_a_hostile_one(space, monkeypatch, tmp_path):
    app, client = space
    reference = app.code_examples()["ui"][0]
    monkeypatch.setattr(app, "predict_code", lambda model, processor, image, kind: reference)
    status, _, predicted, rendering, _, details = client.predict("ui", 0, api_name="/image_to_code_example")
    assert "Exact match." in status and details["render_back_ssim"] == 1.0
    assert np.array_equal(_image(rendering), app.enlarged(app.CODE_KINDS["ui"].render(reference)))
    marker = tmp_path / "executed"
    hostile = f"<script>__import__('os').system('touch {marker}')</script>"
    monkeypatch.setattr(app, "predict_code", lambda model, processor, image, kind: hostile)
    status, _, predicted, rendering, _, details = client.predict("ui", 0, api_name="/image_to_code_example")
    assert predicted == hostile and rendering is None and details["valid"] is False
    assert "**not** a valid" in status and not marker.exists()


def test_image_to_code_upload_and_bad_requests(space, tmp_path):
    app, client = space
    path = tmp_path / "code.png"
    Image.fromarray(app.CODE_KINDS["code"].render("x = 1\nprint(x)")).save(path)
    status, shown_input, predicted, _, expected, details = client.predict(
        gradio_client.handle_file(str(path)), "code", api_name="/image_to_code_upload")
    assert expected in ("", None) and details["expected_program"] is None and details["kind"] == "code"
    assert _image(shown_input).shape == (256, 256, 3)
    with pytest.raises(AppError, match="greater than maximum value 19"):  # the Number input itself refuses it
        client.predict("ui", 99, api_name="/image_to_code_example")
    with pytest.raises(AppError, match="svg is not in the list of choices"):
        client.predict("svg", 0, api_name="/image_to_code_example")
    with pytest.raises(gr.Error, match="Unknown kind 'svg'"):  # the handler's own check, behind the dropdown's
        app.image_to_code_example("svg", 0)
