"""(image, code) pairs as composite rows, the layout `data_sources.build_composite` and the collator read: modality
image, `image` = the rendered pixels (raw uint8 bytes + `image_shape`), `text_target` = the program, `source` =
"image_to_code:<kind>:<index in the kind's stream>", `task_name` = the kind's prompt ("image_to_code:<kind>").

The prompt plays the part of the design note's "Convert this button to HTML/CSS": `build_composite` gives each
kind's prompt a task id after the ARC tasks' (`with_kind_prompts`), and the collator passes it as `task_ids`, so the
model is told which language to write (the baselines are told the kind too). The source `"image_to_code"` of
`build_composite` is built from these rows (train, `image_to_code_validation`, `image_to_code_test`)."""

from __future__ import annotations

from .generator import SPLITS, generate_programs
from .kinds import KINDS

SOURCE_PREFIX = "image_to_code"
# Programs per kind and split: 3 kinds x 3,500 = 10,500 pairs.
DEFAULT_COUNTS = {"train": 3200, "validation": 100, "test": 200}
# Part of the composite's cache key: bump when the generator, the renderers or the row layout change.
ROWS_VERSION = 1


def source_name(kind: str, index: int) -> str:
    return f"{SOURCE_PREFIX}:{kind}:{index}"


def prompt_name(kind: str) -> str:
    """The task name that prompts the model to write `kind`'s language."""
    return f"{SOURCE_PREFIX}:{kind}"


def with_kind_prompts(vocabulary: dict) -> dict:
    """`vocabulary` (task name -> id, 1-based) plus one prompt per kind, numbered after its largest id."""
    start = max(vocabulary.values(), default=0)
    return {**vocabulary, **{prompt_name(kind): start + 1 + i for i, kind in enumerate(KINDS)}}


def kind_of(row) -> str:
    """The kind of an image-to-code row, from its `source`."""
    prefix, kind, _ = row["source"].split(":")
    if prefix != SOURCE_PREFIX:
        raise ValueError(f"row from {row['source']!r} is not an image-to-code row")
    return kind


def check_counts(counts: dict) -> dict:
    counts = {**DEFAULT_COUNTS, **(counts or {})}
    unknown = set(counts) - set(SPLITS)
    if unknown:
        raise ValueError(f"image_to_code counts: unknown splits {sorted(unknown)}; splits are {', '.join(SPLITS)}")
    return counts


def image_to_code_rows(counts: dict | None = None, seed: int = 0) -> dict[str, list[dict]]:
    """{split: [row, ...]}: `counts[split]` programs of each kind (default `DEFAULT_COUNTS`), each with its image."""
    pairs = generate_programs(check_counts(counts), seed=seed)
    rows = {}
    for split, split_pairs in pairs.items():
        rows[split] = []
        for pair in split_pairs:
            image = pair.image()
            rows[split].append({"image": image.tobytes(), "image_shape": list(image.shape), "text_target": pair.code,
                                "task_name": prompt_name(pair.kind), "source": source_name(pair.kind, pair.index)})
    return rows
