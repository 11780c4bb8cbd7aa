"""One composite `datasets` corpus of ARC grids, images and text (the seeds' `build_composite`).

Every row has the same raw fields, whatever its modality; the collator turns them into model inputs through the
processor:

    modality     0 text | 1 image | 2 grid          (configuration MODALITY_*)
    task_id      ARC task id (1-based), 0 otherwise; task_name its name
    input_grid   ARC input grid (list of rows), [] otherwise
    output_grid  ARC target grid, [] otherwise
    image        raw uint8 pixels (bytes) with image_shape [H, W] or [H, W, C]; b"" otherwise
    label        class label, IGNORE_INDEX (-100) otherwise
    text         context chunk rendered on the canvas; text_target the continuation to predict
    source       where the row comes from ("arc:<task>", "fashion_mnist", "kjv:<book>",
                 "image_to_code:<kind>:<i>", ...)

The build is deterministic given its arguments (seeded shuffles and `interleave_datasets` with probabilities) and is
cached with `save_to_disk` under `cache_dir/composite-<hash of the arguments>`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict, Features, List, Value, interleave_datasets, load_from_disk

from vision_trm.configuration.conventions import IGNORE_INDEX, MODALITY_GRID, MODALITY_IMAGE, MODALITY_TEXT
from vision_trm.processing import output_size_from_demonstrations

from .data_arc import arc_protocol_split, arc_rows, build_task_vocabulary, load_arc_tasks
from .data_images import image_rows, load_cifar10, load_fashion_mnist
from .data_text import kjv_splits, load_wikitext2, text_rows
from .image_to_code.dataset import image_to_code_rows, with_kind_prompts

_BUILD_VERSION = 4  # bump when the row layout or the split logic changes (invalidates caches)

FEATURES = Features({
    "modality": Value("int8"),
    "task_id": Value("int32"),
    "task_name": Value("string"),
    "input_grid": List(List(Value("int8"))),
    "output_grid": List(List(Value("int8"))),
    "image": Value("binary"),
    "image_shape": List(Value("int32")),
    "label": Value("int64"),
    "text": Value("string"),
    "text_target": Value("string"),
    "source": Value("string"),
    # ARC evaluation rows: the output size the task's demonstrations agree on, [h, w], or [] (no common rule).
    "output_size": List(Value("int16")),
    # ARC training rows: the view the pair is drawn in, [dihedral, *colour permutation] (`data_arc.arc_rows`).
    "augmentation": List(Value("int8")),
    # ARC evaluation rows: the test input as the task gives it (`input_grid` is what the model reads, aligned with
    # `arc_input_alignment`), and the `copy_scaled_or_tiled` baseline's answer; both scored as baselines.
    "given_input_grid": List(List(Value("int8"))),
    "scaled_or_tiled_grid": List(List(Value("int8"))),
})
_EMPTY = {"task_id": 0, "task_name": "", "input_grid": [], "output_grid": [], "image": b"", "image_shape": [],
          "label": IGNORE_INDEX, "text": "", "text_target": "", "source": "",
          "output_size": [], "augmentation": [], "given_input_grid": [], "scaled_or_tiled_grid": []}


@dataclass
class CompositeSpec:
    """Everything that determines a composite build (its hash keys the cache)."""

    sources: tuple = ("arc", "fashion_mnist", "kjv")
    weights: tuple = (0.4, 0.3, 0.3)
    seed: int = 0
    arc_version: str = "1"
    arc_augmentations: int = 8
    max_samples_per_source: int | None = 20000
    max_eval_samples: int | None = 1000
    text_context_chars: int = 96
    text_target_chars: int = 48
    num_train_samples: int | None = None
    extra: dict = field(default_factory=dict)
    # Every ARC input replaced by its copy at the demonstrations' output size (`processing.align_task`); the model
    # must be configured alike (`TRMConfig.arc_input_alignment`).
    arc_input_alignment: bool = False

    def key(self) -> str:
        fields = asdict(self)
        if not fields["arc_input_alignment"]:
            del fields["arc_input_alignment"]  # builds from before the field keep their cache
        payload = json.dumps({"version": _BUILD_VERSION, **fields}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _rows_to_dataset(rows, modality: int) -> Dataset:
    columns = {name: [] for name in FEATURES}
    for row in rows:
        full = {**_EMPTY, **row, "modality": modality}
        for name in FEATURES:
            columns[name].append(full[name])
    return Dataset.from_dict(columns, features=FEATURES)


def _cap(dataset: Dataset, limit, seed: int) -> Dataset:
    dataset = dataset.shuffle(seed=seed)
    if limit is not None and len(dataset) > limit:
        dataset = dataset.select(range(limit))
    return dataset.flatten_indices()


def _arc(spec: CompositeSpec):
    training_tasks, evaluation_tasks = load_arc_tasks(spec.arc_version)
    vocabulary = build_task_vocabulary(training_tasks, evaluation_tasks)
    train_pairs, heldout = arc_protocol_split(training_tasks, evaluation_tasks, align_inputs=spec.arc_input_alignment)
    train = _rows_to_dataset(
        ({**row, "source": f"arc:{row['task_name']}"}
         for row in arc_rows(train_pairs, vocabulary, spec.arc_augmentations, seed=spec.seed)),
        MODALITY_GRID,
    )
    evaluation = _rows_to_dataset(
        ({"input_grid": item["input"], "output_grid": item["output"] or [], "task_name": item["task_name"],
          "task_id": vocabulary[item["task_name"]], "source": f"arc-eval:{item['task_name']}:{item['test_index']}",
          "output_size": list(output_size_from_demonstrations(item["demos"], item["input"]) or ()),
          "given_input_grid": item["given_input"], "scaled_or_tiled_grid": item["scaled_or_tiled"]}
         for item in heldout),
        MODALITY_GRID,
    )
    return train, {"arc_eval": evaluation}, vocabulary


def _fashion(spec: CompositeSpec):
    train = _rows_to_dataset(image_rows(*load_fashion_mnist("train"), source="fashion_mnist"), MODALITY_IMAGE)
    test = _rows_to_dataset(image_rows(*load_fashion_mnist("test"), source="fashion_mnist"), MODALITY_IMAGE)
    return train, {"fashion_mnist_test": test}


def _cifar(spec: CompositeSpec):
    def rows(split):
        data = load_cifar10(split)
        for example in data:
            image = np.asarray(example["img"].convert("RGB"), dtype=np.uint8)
            yield {"image": image.tobytes(), "image_shape": list(image.shape), "label": int(example["label"]),
                   "source": "cifar10"}
    return _rows_to_dataset(rows("train"), MODALITY_IMAGE), {"cifar10_test": _rows_to_dataset(rows("test"),
                                                                                              MODALITY_IMAGE)}


def _kjv(spec: CompositeSpec):
    splits = kjv_splits()
    kwargs = dict(context_chars=spec.text_context_chars, target_chars=spec.text_target_chars, source="kjv")
    train = _rows_to_dataset(text_rows(splits["train"], **kwargs), MODALITY_TEXT)
    return train, {"kjv_validation": _rows_to_dataset(text_rows(splits["validation"], **kwargs), MODALITY_TEXT),
                   "kjv_test": _rows_to_dataset(text_rows(splits["test"], **kwargs), MODALITY_TEXT)}


def _wikitext(spec: CompositeSpec):
    kwargs = dict(context_chars=spec.text_context_chars, target_chars=spec.text_target_chars, source="wikitext2")
    return (_rows_to_dataset(text_rows(load_wikitext2("train"), **kwargs), MODALITY_TEXT),
            {"wikitext2_test": _rows_to_dataset(text_rows(load_wikitext2("test"), **kwargs), MODALITY_TEXT)})


def _image_to_code(spec: CompositeSpec):
    """Generated (image, code) pairs: UI mockups, charts, code screenshots (`image_to_code/`). Per-kind split sizes
    come from `spec.extra["image_to_code"]` (e.g. {"train": 3200, "validation": 100, "test": 200})."""
    rows = image_to_code_rows(spec.extra.get("image_to_code"), seed=spec.seed)
    return _rows_to_dataset(rows["train"], MODALITY_IMAGE), {
        "image_to_code_validation": _rows_to_dataset(rows["validation"], MODALITY_IMAGE),
        "image_to_code_test": _rows_to_dataset(rows["test"], MODALITY_IMAGE)}


SOURCE_BUILDERS = {"arc": _arc, "fashion_mnist": _fashion, "cifar10": _cifar, "kjv": _kjv, "wikitext2": _wikitext,
                   "image_to_code": _image_to_code}
# Evaluation splits kept whole (never capped by max_eval_samples): their figures are per task / per kind.
COMPLETE_EVAL_SPLITS = ("arc_eval", "image_to_code_validation", "image_to_code_test")


def default_cache_dir() -> Path:
    return Path(os.environ.get("VISION_TRM_DATA_CACHE", Path.home() / ".cache" / "vision_trm" / "composite"))


def build_composite(spec: CompositeSpec | None = None, cache_dir=None, use_cache: bool = True, **overrides):
    """Builds (or loads from cache) the composite corpus.

    Returns `(DatasetDict, task_vocabulary)`. The DatasetDict holds `train` (the sources interleaved with
    `weights` as probabilities, seeded) and one evaluation split per source: `arc_eval` (held-out ARC evaluation
    test inputs), `fashion_mnist_test`, `kjv_validation`, `kjv_test` (held-out books), ...
    """
    spec = spec or CompositeSpec()
    if overrides:
        spec = CompositeSpec(**{**asdict(spec), **overrides})
    if len(spec.sources) != len(spec.weights):
        raise ValueError(f"{len(spec.sources)} sources but {len(spec.weights)} weights")
    unknown = set(spec.sources) - set(SOURCE_BUILDERS)
    if unknown:
        raise ValueError(f"unknown sources {sorted(unknown)}; known: {sorted(SOURCE_BUILDERS)}")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache_dir / f"composite-{spec.key()}"
    if use_cache and (target / "task_vocabulary.json").is_file():
        return load_from_disk(str(target / "data")), json.loads((target / "task_vocabulary.json").read_text())

    trains, evaluations, vocabulary = [], {}, {}
    for index, name in enumerate(spec.sources):
        built = SOURCE_BUILDERS[name](spec)
        if name == "arc":
            train, evals, vocabulary = built
        else:
            train, evals = built
        trains.append(_cap(train, spec.max_samples_per_source, spec.seed + index))
        for split, dataset in evals.items():
            limit = None if split in COMPLETE_EVAL_SPLITS else spec.max_eval_samples
            evaluations[split] = _cap(dataset, limit, spec.seed + 100 + index) if limit else dataset
    weights = np.asarray(spec.weights, dtype=np.float64)
    active = weights > 0
    if not active.any():
        raise ValueError("at least one source weight must be positive")
    if active.sum() == 1:
        train = trains[int(np.argmax(active))]
    else:
        train = interleave_datasets([d for d, a in zip(trains, active) if a],
                                    probabilities=list(weights[active] / weights[active].sum()),
                                    seed=spec.seed, stopping_strategy="first_exhausted")
    if "image_to_code" in spec.sources:
        vocabulary = with_kind_prompts(vocabulary)  # its rows name their kind's prompt (task_name)
    if spec.num_train_samples is not None and len(train) > spec.num_train_samples:
        train = train.select(range(spec.num_train_samples))
    data = DatasetDict({"train": train.flatten_indices(), **evaluations})
    if use_cache:
        target.mkdir(parents=True, exist_ok=True)
        data.save_to_disk(str(target / "data"))
        (target / "spec.json").write_text(json.dumps(asdict(spec), indent=1, default=str))
        (target / "task_vocabulary.json").write_text(json.dumps(vocabulary))
    return data, vocabulary


def curriculum_specs(base: CompositeSpec) -> list[tuple[str, CompositeSpec]]:
    """The seeds' curriculum: text first (cheap concept initialisation), then every source mixed, then ARC only."""
    stages = []
    for name, weight_of in (("text", {"kjv": 1.0, "wikitext2": 1.0}),
                            ("mixed", None),
                            ("arc", {"arc": 1.0})):
        weights = base.weights if weight_of is None else tuple(weight_of.get(s, 0.0) for s in base.sources)
        if sum(weights) == 0:
            continue
        stages.append((name, CompositeSpec(**{**asdict(base), "weights": tuple(weights)})))
    return stages
