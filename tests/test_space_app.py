"""The Gradio Space, driven end to end: the app is started on localhost and each tab is called through
`gradio_client` with the offline examples. The model is the real one (the demo checkpoint when present, else the
tiny preset with random weights, which the page flags)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio_client  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
APP_PATH = REPO / "spaces_app" / "app.py"


def load_app_module():
    spec = importlib.util.spec_from_file_location("trm_space_app", APP_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["trm_space_app"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def space():
    saved = os.environ.pop("MODEL_ID", None)
    try:
        app = load_app_module()
    finally:
        if saved is not None:
            os.environ["MODEL_ID"] = saved
    _, url, _ = app.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **app.LAUNCH_KWARGS)
    client = gradio_client.Client(url, verbose=False)
    yield app, client
    app.demo.close()


def _image(path) -> np.ndarray:
    assert path and Path(path).is_file(), path
    return np.asarray(Image.open(path).convert("RGB"))


def _assert_canvas(app, path):
    """The canvas the model read, enlarged by an integer factor for display."""
    side = app.LOADED.model.config.image_size
    canvas = _image(path)
    assert canvas.shape[0] == canvas.shape[1] and canvas.shape[0] % side == 0 and canvas.shape[2] == 3
    factor = canvas.shape[0] // side
    assert np.array_equal(canvas, canvas[::factor, ::factor].repeat(factor, 0).repeat(factor, 1))


def _decode_shown_grid(path) -> list[list[int]]:
    """Reads a displayed grid image back with the processor's exact canvas decoder."""
    from vision_trm.processing import decode_canvas

    image = _image(path)
    side = max(image.shape[:2])
    canvas = np.full((side, side, 3), 255, np.uint8)
    canvas[: image.shape[0], : image.shape[1]] = image
    return decode_canvas(canvas).tolist()


def _first_task(app) -> str:
    return next(iter(app.bundled_tasks()))


def _assert_grid(grid, size=None):
    assert isinstance(grid, list) and grid and all(isinstance(row, list) for row in grid)
    assert len({len(row) for row in grid}) == 1, "ragged grid"
    assert all(isinstance(c, int) and 0 <= c <= 9 for row in grid for c in row)
    if size is not None:
        assert [len(grid), len(grid[0])] == list(size)


# ------------------------------------------------------------------------------------------------------------ ARC


def test_arc_bundled_example(space):
    app, client = space
    name = next(iter(app.bundled_tasks()))
    task = json.loads(app.bundled_tasks()[name].read_text())
    status, pairs, test_input, prediction, expected, steps, details, canvas = client.predict(
        name, "", 0, api_name="/run_arc"
    )
    assert f"Task **{name}**" in status and "Halting fired at step" in status
    for path in (pairs, test_input, prediction, expected, steps, canvas):
        assert _image(path).ndim == 3
    config = app.LOADED.model.config
    _assert_canvas(app, canvas)
    _assert_grid(details["predicted_grid"], details["predicted_size"])
    assert details["expected_grid"] == task["test"][0]["output"]
    assert details["exact_match"] == (details["predicted_grid"] == details["expected_grid"])
    assert 1 <= details["num_steps"] <= config.deep_supervision_steps
    assert len(details["step_grids"]) == details["num_steps"]
    assert 1 <= details["halting_step"] <= details["num_steps"]
    for grid in details["step_grids"]:
        _assert_grid(grid)
    # The answer at the halting step is the answer shown.
    assert details["step_grids"][details["halting_step"] - 1] == details["predicted_grid"]
    # The images show exactly these grids.
    assert _decode_shown_grid(prediction) == details["predicted_grid"]
    assert _decode_shown_grid(expected) == details["expected_grid"]
    assert _decode_shown_grid(test_input) == task["test"][0]["input"]
    # Same answer as running the model directly (the UI does not alter it).
    direct = app.run_arc_task(app.LOADED, app.validate_task(task), 0, name)
    assert direct["predicted_grid"] == details["predicted_grid"]


def test_arc_pasted_task_with_two_test_inputs(space):
    app, client = space
    task = {
        "train": [{"input": [[1, 0], [0, 0]], "output": [[0, 1], [0, 0]]}],
        "test": [{"input": [[2, 0], [0, 0]]}, {"input": [[0, 0, 3]], "output": [[3, 0, 0]]}],
    }
    status, *_, details, _ = client.predict(_first_task(app), json.dumps(task), 1, api_name="/run_arc")
    assert "test input 1" in status
    assert details["task"] == "uploaded" and details["expected_grid"] == [[3, 0, 0]]
    _assert_grid(details["predicted_grid"], details["predicted_size"])


@pytest.mark.parametrize(
    "task_json, index, message",
    [
        ("{not json", 0, "not valid JSON"),
        ('{"train": [], "test": [{"input": [[1]]}]}', 0, 'non-empty "train"'),
        ("[1, 2, 3]", 0, "JSON object"),
        ('{"train": [{"input": [[1, 12]], "output": [[1]]}], "test": [{"input": [[1]]}]}', 0, "colour 12"),
        ('{"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]}', 0, "ragged"),
        ('{"train": [{"input": [[1.5]], "output": [[1]]}], "test": [{"input": [[1]]}]}', 0, "integers 0-9"),
        ('{"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]}', 0, 'no "output"'),
        ('{"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1]]}]}', 3, "index 3 does not exist"),
        (json.dumps({"train": [{"input": [[1] * 31], "output": [[1]]}], "test": [{"input": [[1]]}]}), 0, "30x30"),
    ],
)
def test_arc_bad_input_gets_a_message(space, task_json, index, message):
    app, client = space
    status, *rest = client.predict(_first_task(app), task_json, index, api_name="/run_arc")
    assert status.startswith("⚠️ **Invalid input:**") and message in status, status
    assert "Traceback" not in status
    assert all(value is None for value in rest)


def test_arc_task_names_never_become_paths(space):
    app, _ = space
    for name in ("../../../etc/passwd", "/etc/passwd", "examples/arc/00576224.json"):
        with pytest.raises(app.InputError, match="Unknown task"):
            app.load_named_task(name)


# ---------------------------------------------------------------------------------------------------------- Image


def test_image_example(space):
    app, client = space
    example = sorted(app.IMAGE_EXAMPLES_DIR.glob("*.png"))[0]
    status, label, gate, canvas, details = client.predict(
        gradio_client.handle_file(str(example)), api_name="/classify_image"
    )
    config = app.LOADED.model.config
    confidences = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert len(confidences) == config.num_labels
    assert sum(confidences.values()) == pytest.approx(1.0, abs=1e-4)
    assert label["label"] == max(confidences, key=confidences.get)
    assert sum(details["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert "Top class" in status and "Fusion gate" in gate
    if details["fusion_gate"] is not None:
        assert all(0.0 <= g <= 1.0 for g in details["fusion_gate"])
    _assert_canvas(app, canvas)


def test_image_too_large_gets_a_message(space, tmp_path):
    app, client = space
    path = tmp_path / "wide.png"
    Image.new("RGB", (app.MAX_IMAGE_SIDE + 10, 4)).save(path)
    status, *rest = client.predict(gradio_client.handle_file(str(path)), api_name="/classify_image")
    assert "largest side allowed" in status
    label, gate, canvas, details = rest
    assert not label and gate is None and canvas is None and details is None


# ----------------------------------------------------------------------------------------------------------- Text


def test_text_example(space):
    app, client = space
    status, canvas, continuation, details = client.predict(app.TEXT_EXAMPLES[0], 8, api_name="/continue_text")
    config = app.LOADED.model.config
    _assert_canvas(app, canvas)
    assert isinstance(continuation, str)
    assert 0 <= len(details["token_ids"]) <= 8
    assert all(0 <= t < config.text_vocab_size for t in details["token_ids"])
    assert continuation == app.LOADED.processor.decode_text(details["token_ids"])
    assert f"Generated {len(details['token_ids'])} token(s)" in status


def test_text_limits_get_a_message(space):
    app, client = space
    status, *rest = client.predict("x" * (app.MAX_TEXT_CHARS + 1), 4, api_name="/continue_text")
    assert "limit is" in status and all(value is None for value in rest)


# ---------------------------------------------------------------------------------------------------- loading


def test_unloadable_model_id_falls_back_with_a_banner(space):
    app, _ = space
    loaded = app.load_model_and_processor("/nonexistent/vision-trm-checkpoint")
    assert loaded.banner and "could not load `/nonexistent/vision-trm-checkpoint`" in loaded.banner
    if not (app.DEMO_CHECKPOINT / "config.json").is_file():
        assert "Untrained demo weights" in loaded.banner


def test_model_id_loads_a_saved_folder_with_remote_code(space, tmp_path):
    app, _ = space
    model, processor = app.build_untrained_tiny(seed=1)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = app.load_model_and_processor(str(tmp_path))
    assert loaded.source == str(tmp_path) and loaded.banner is None
    assert type(loaded.model).__module__.startswith("transformers_modules")  # the folder's own (remote) code
    assert type(loaded.processor).__name__ == "TRMProcessor"
    task = app.validate_task(json.loads(next(iter(app.bundled_tasks().values())).read_text()))
    expected = app.run_arc_task(app.LoadedModel(model, processor, "in-process"), task, 0)
    assert app.run_arc_task(loaded, task, 0)["predicted_grid"] == expected["predicted_grid"]


def test_uploads_over_the_size_limit_are_refused(space, tmp_path):
    app, client = space
    path = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (1100, 1100, 3), dtype=np.uint8)).save(path)
    assert path.stat().st_size > 2_000_000  # over MAX_UPLOAD_SIZE
    with pytest.raises(Exception, match="(?i)too large|exceeds|size"):
        client.predict(gradio_client.handle_file(str(path)), api_name="/classify_image")


def test_task_file_upload_is_validated(space, tmp_path):
    app, _ = space
    read_upload = app.make_handlers(app.LOADED)[2]
    good = tmp_path / "task.json"
    good.write_text(json.dumps({"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]]}]}))
    status, text = read_upload(str(good))
    assert "loaded" in status and json.loads(text)["test"][0]["input"] == [[1]]
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe\x00binary")
    status, text = read_upload(str(bad))
    assert "not UTF-8" in status and text is None
    big = tmp_path / "big.json"
    big.write_text(" " * (app.MAX_JSON_BYTES + 1))
    assert "larger than" in read_upload(str(big))[0]
