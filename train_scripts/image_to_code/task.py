"""What `run_multimodal.py --task image_to_code` adds to the composite run: its data source and split sizes, the
decoder-length check, the rows its baselines learn from, and the evaluation it writes."""

from __future__ import annotations

import json
from pathlib import Path

from .dataset import ROWS_VERSION, SOURCE_PREFIX
from .evaluation import evaluate_image_to_code, format_image_to_code_table
from .generator import MAX_CODE_CHARS, SPLITS

TASKS = ("composite", "image_to_code")


def task_sources(task: str, sources: list, weights: list) -> tuple[list, list]:
    """`--task image_to_code` trains on the generated pairs alone; `composite` keeps `--sources` (which may include
    `image_to_code` beside the other sources)."""
    if task not in TASKS:
        raise ValueError(f"--task must be one of {TASKS}, got {task!r}")
    return (["image_to_code"], [1.0]) if task == "image_to_code" else (sources, weights)


def parse_counts(text: str) -> dict:
    """`--image_to_code_counts 3200,100,200` → {"train": 3200, "validation": 100, "test": 200} (pairs per kind)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != len(SPLITS) or not all(p.isdigit() for p in parts):
        raise ValueError(f"--image_to_code_counts must be three integers train,validation,test (per kind), got "
                         f"{text!r}")
    counts = dict(zip(SPLITS, map(int, parts)))
    if counts["train"] == 0 or counts["test"] == 0:
        raise ValueError(f"--image_to_code_counts needs at least one train and one test pair per kind, got {text!r}")
    return counts


def composite_extra(sources: list, counts_text: str) -> dict:
    """`CompositeSpec.extra` for the sources (empty without image_to_code, so other runs keep their cache keys)."""
    if "image_to_code" not in sources:
        return {}
    return {"image_to_code": parse_counts(counts_text), "image_to_code_rows_version": ROWS_VERSION}


def check_decoder_length(config) -> None:
    """The decoder must hold the longest program (bos + up to MAX_CODE_CHARS bytes + eos): refuse, never truncate."""
    needed = MAX_CODE_CHARS + 2
    if config.max_text_length < needed:
        raise ValueError(f"image_to_code programs are up to {MAX_CODE_CHARS} characters, so the text decoder needs "
                         f"max_text_length >= {needed}; this config has {config.max_text_length}: pass "
                         f"--config_overrides '{{\"max_text_length\": {needed}}}' (or more)")


def image_to_code_train_rows(train):
    """The image-to-code rows of a (possibly mixed) training set, for the baselines."""
    return train.filter(lambda source: source.startswith(SOURCE_PREFIX + ":"), input_columns="source")


def evaluate_and_write(model, collator, data, batch_size: int, output_dir: Path) -> tuple[dict, str]:
    """Model vs baselines on `image_to_code_test`; writes image_to_code_results.json and its table beside the
    model. Returns (results, markdown table)."""
    results = evaluate_image_to_code(model, collator, data["image_to_code_test"],
                                     image_to_code_train_rows(data["train"]), batch_size)
    table = format_image_to_code_table(results)
    (Path(output_dir) / "image_to_code_results.json").write_text(json.dumps(results, indent=1))
    (Path(output_dir) / "image_to_code_table.md").write_text(table + "\n")
    return results, table
