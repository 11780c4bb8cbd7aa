"""Held-out image → code evaluation: the model's greedy programs beside the two baselines, per kind, through the
local `evaluate` modules (`code_render_back`: exact match, valid rate, render-back SSIM; `chrf`). All three systems
are told each input's kind: the model through its kind's prompt (task id), the baselines directly."""

from __future__ import annotations

from collections import defaultdict

import torch

from vision_trm.configuration.conventions import MODEL_INPUT_NAMES

from ..evaluation import load_metric
from .baselines import NearestNeighbourBaseline, TemplateBaseline, row_image
from .dataset import kind_of
from .kinds import KINDS

SYSTEMS = ("model", "nearest_neighbour", "template")
SYSTEM_NAMES = {"model": "model (greedy)", "nearest_neighbour": "nearest neighbour", "template": "per-kind template"}


@torch.no_grad()
def generate_programs(model, collator, rows, batch_size: int = 32, max_new_tokens: int | None = None) -> list[str]:
    """The model's greedy program for each row's image (decoded up to its first eos)."""
    processor = collator.processor
    bos, eos = processor.tokenizer.bos_token_id, processor.tokenizer.eos_token_id
    max_new_tokens = max_new_tokens or model.config.max_text_length - 1
    device = next(model.parameters()).device
    programs = []
    for start in range(0, len(rows), batch_size):
        batch = collator(rows[start:start + batch_size])
        inputs = {name: batch[name].to(device) for name in ("pixel_values", "modality_ids", "task_ids")
                  if name in batch and name in MODEL_INPUT_NAMES}
        tokens = model.generate_text(inputs["pixel_values"], bos, eos, max_new_tokens,
                                     modality_ids=inputs.get("modality_ids"), task_ids=inputs.get("task_ids"))
        for sequence in tokens[:, 1:].tolist():
            programs.append(processor.decode_text(sequence[: sequence.index(eos)] if eos in sequence else sequence))
    return programs


def score(predictions: list[str], references: list[str], kinds: list[str]) -> dict:
    """{kind: metrics, ..., "all": metrics} with exact_match, valid_rate, render_back, chrf, num_examples."""
    groups = defaultdict(list)
    for index, kind in enumerate(kinds):
        groups[kind].append(index)
        groups["all"].append(index)
    results = {}
    for group in [k for k in KINDS if k in groups] + ["all"]:
        chosen = groups[group]
        p, r, k = ([values[i] for i in chosen] for values in (predictions, references, kinds))
        results[group] = load_metric("code_render_back").compute(predictions=p, references=r, kinds=k)
        results[group]["chrf"] = load_metric("chrf").compute(predictions=p, references=r)["score"]
    return results


def evaluate_image_to_code(model, collator, test_rows, train_rows, batch_size: int = 32, num_examples: int = 3,
                           max_new_tokens: int | None = None) -> dict:
    """Model and baselines on `test_rows` (held-out composite rows of the image_to_code source)."""
    test_rows, train_rows = list(test_rows), list(train_rows)
    references = [row["text_target"] for row in test_rows]
    kinds = [kind_of(row) for row in test_rows]
    predictions = {
        "model": generate_programs(model, collator, test_rows, batch_size, max_new_tokens),
        "nearest_neighbour": NearestNeighbourBaseline(train_rows).predict([row_image(row) for row in test_rows],
                                                                          kinds),
        "template": TemplateBaseline(train_rows, load_metric("chrf")).predict(kinds),
    }
    results = {name: score(predictions[name], references, kinds) for name in SYSTEMS}
    results["num_test_pairs"] = len(test_rows)
    results["num_train_pairs"] = len(train_rows)
    # A few predictions per kind, to read beside the figures.
    results["examples"] = []
    for kind in KINDS:
        indices = [i for i, k in enumerate(kinds) if k == kind][:num_examples]
        results["examples"] += [{"kind": kind, "reference": references[i],
                                 **{name: predictions[name][i] for name in SYSTEMS}} for i in indices]
    return results


def format_image_to_code_table(results: dict) -> str:
    """Markdown: one row per kind and system (exact match, valid rate, render-back SSIM, identical renderings,
    chrF)."""
    lines = ["| kind (test pairs) | system | exact match | valid | render-back SSIM | renders identically | chrF |",
             "|---|---|---|---|---|---|---|"]
    for group in [k for k in KINDS if k in results["model"]] + ["all"]:
        for name in SYSTEMS:
            r = results[name][group]
            lines.append(f"| {group} ({r['num_examples']}) | {SYSTEM_NAMES[name]} | {r['exact_match']:.1%} | "
                         f"{r['valid_rate']:.1%} | {r['render_back']:.3f} | {r['render_exact']:.1%} | "
                         f"{r['chrf']:.1f} |")
    return "\n".join(lines)
