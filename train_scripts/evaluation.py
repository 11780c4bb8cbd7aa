"""Held-out evaluation of a trained model, each figure beside its baseline, through the repo's `evaluate` modules."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import evaluate
import matplotlib
import numpy as np
import torch

from vision_trm.configuration.conventions import IGNORE_INDEX, MODEL_INPUT_NAMES
from vision_trm.modeling_trm.losses import shifted_text_cross_entropy
from vision_trm.processing import TRMProcessor, aligned_input, output_size_from_demonstrations, pad_grid
from vision_trm.train_scripts.arc_voting import decode_at_known_sizes

matplotlib.use("Agg")  # files only: the scripts run on machines without a display
import matplotlib.pyplot as plt  # noqa: E402

METRICS_DIR = Path(__file__).resolve().parent / "metrics"


def load_metric(name: str):
    """One of the repository's local `evaluate` modules (`evaluate.load("accuracy")` would fetch from the Hub)."""
    return evaluate.load(str(METRICS_DIR / name))


def _batches(dataset, batch_size: int):
    for start in range(0, len(dataset), batch_size):
        yield [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]


@torch.no_grad()
def run_model(model, collator, rows):
    """The collated batch (inputs and labels, on the model's device) and the model's outputs on its inputs."""
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in collator(rows).items() if torch.is_tensor(v)}
    return batch, model(**{name: batch[name] for name in MODEL_INPUT_NAMES if name in batch})


def predicted_grids(outputs) -> list[list[list[int]]]:
    """The grid head's answer for every row of a batch, cropped to its predicted size."""
    return [grid.tolist() for grid in TRMProcessor.post_process_grid(outputs.grid_predictions)]


class PerStepAccuracy:
    """Accuracy after each deep-supervision step; a batch whose samples all halted early has fewer steps."""

    def __init__(self):
        self.correct, self.total = [], []

    def add(self, right_per_step: torch.Tensor) -> None:
        """`right_per_step`: `[samples, steps]` of per-sample scores in [0, 1]."""
        for step in range(right_per_step.shape[1]):
            if step == len(self.correct):
                self.correct.append(0.0)
                self.total.append(0)
            self.correct[step] += float(right_per_step[:, step].sum())
            self.total[step] += right_per_step.shape[0]

    def compute(self) -> list[float]:
        return [c / max(t, 1) for c, t in zip(self.correct, self.total)]


def evaluate_classification(model, collator, dataset, batch_size: int = 32, num_classes: int = 10) -> dict:
    metric = load_metric("accuracy")
    per_step = PerStepAccuracy()
    for rows in _batches(dataset, batch_size):
        _, outputs = run_model(model, collator, rows)
        references = [int(r["label"]) for r in rows]
        metric.add_batch(predictions=outputs.class_logits.argmax(-1).cpu().tolist(), references=references)
        targets = torch.tensor(references)[:, None]
        per_step.add((outputs.step_class_predictions.cpu() == targets).float())
    labels = Counter(int(r) for r in dataset["label"])
    return {"accuracy": metric.compute()["accuracy"], "chance": 1.0 / num_classes,
            "majority_class": max(labels.values()) / max(len(dataset), 1), "num_examples": len(dataset),
            "per_step_accuracy": per_step.compute()}


def _scored_tokens(batch):
    """Tokens the decoder predicts, HF causal-LM style: labels[:, 1:] where not IGNORE_INDEX."""
    labels = batch["text_labels"][:, 1:]
    return labels, labels != IGNORE_INDEX


def unigram_log_probs(collator, train_rows, vocab_size: int, batch_size: int = 256) -> torch.Tensor:
    """Train-set unigram over the same tokenizer and the same scored positions, add-one smoothed (log probs)."""
    counts = torch.zeros(vocab_size, dtype=torch.float64)
    for start in range(0, len(train_rows), batch_size):
        batch = collator(train_rows[start:start + batch_size])
        labels, mask = _scored_tokens(batch)
        counts += torch.bincount(labels[mask].flatten(), minlength=vocab_size)[:vocab_size].double()
    return ((counts + 1) / (counts.sum() + vocab_size)).log()


def evaluate_text(model, collator, dataset, train_rows, batch_size: int = 32) -> dict:
    metric = load_metric("perplexity")
    baseline = load_metric("perplexity")
    vocab_size = model.config.text_vocab_size
    unigram = unigram_log_probs(collator, train_rows, vocab_size)
    for rows in _batches(dataset, batch_size):
        batch, outputs = run_model(model, collator, rows)
        labels, mask = _scored_tokens(batch)
        nll, counts = shifted_text_cross_entropy(outputs.text_logits, batch["text_labels"])
        nll, counts = nll.cpu().double(), counts.cpu().tolist()
        base = (-unigram[labels.clamp_min(0).cpu()] * mask.cpu()).sum(-1)
        metric.add_batch(nll_sums=nll.tolist(), token_counts=counts)
        baseline.add_batch(nll_sums=base.tolist(), token_counts=counts)
    model_result, base_result = metric.compute(), baseline.compute()
    return {"perplexity": model_result["perplexity"], "unigram_perplexity": base_result["perplexity"],
            "num_tokens": model_result["num_tokens"], "num_examples": len(dataset)}


def majority_colour_grid(grid) -> list[list[int]]:
    """Baseline: the input's shape filled with its most frequent colour."""
    array = np.asarray(grid)
    colour = int(np.bincount(array.flatten(), minlength=10).argmax())
    return np.full_like(array, colour).tolist()


def copy_scaled_or_tiled_grid(demonstrations, test_input) -> list[list[int]]:
    """Baseline: the test input copied, upscaled or tiled to the size its task's demonstrations agree on, whichever
    of the three gets the most demonstration cells right (ties keep the plain copy); where they agree on no size, the
    copy (also without demonstrations). Three fixed rules chosen per task, nothing learned: what a model must beat
    before it can be said to read a task at all (`processing.aligned_input`, which a model trained with
    `arc_input_alignment` reads instead of the input)."""
    return aligned_input(demonstrations, test_input).tolist()


def copy_at_size(grid, size) -> list[list[int]]:
    """`grid` cut or padded to `size` (h, w), its top-left corner kept, new cells its most frequent colour; `grid`
    itself for no size (None or ())."""
    array = np.asarray(grid)
    if not size:
        return array.tolist()
    fill = int(np.bincount(array.flatten(), minlength=10).argmax())
    answer = np.full(tuple(size), fill, dtype=array.dtype)
    rows, columns = min(size[0], array.shape[0]), min(size[1], array.shape[1])
    answer[:rows, :columns] = array[:rows, :columns]
    return answer.tolist()


def copy_at_demonstrated_size_grid(demonstrations, test_input) -> list[list[int]]:
    """Baseline: the copied, upscaled or tiled input (`copy_scaled_or_tiled_grid`), then cut or padded to the size the
    demonstrations agree on (`copy_at_size`). It is told exactly the size a model decoded at the demonstrations' size
    is told, so what a model gains over it is not the size."""
    return copy_at_size(aligned_input(demonstrations, test_input),
                        output_size_from_demonstrations(demonstrations, test_input) if demonstrations else None)


def _answers_at_known_sizes(model, outputs, rows) -> list[list[list[int]]]:
    """Each row's answer decoded at its `output_size` ([] leaves the model's own frame)."""
    sizes = [tuple(row["output_size"]) or None for row in rows]
    return predicted_grids(SimpleNamespace(grid_predictions=decode_at_known_sizes(model, outputs, sizes)))


def evaluate_arc_heldout(model, collator, dataset, batch_size: int = 32) -> dict:
    """One forward per held-out test input (no voting; see evaluate_arc.py for the many-view protocol).

    With the cell head and rows that carry the `output_size` their demonstrations agree on, the same forwards are also
    scored decoded at that size (`model_size_from_demonstrations`; rows without one keep the model's own frame).
    """
    names = ["model", "copy_input", "majority_colour"]
    # Rows built since the composite's version 4 carry the input as given and the scaled-or-tiled copy (with
    # `arc_input_alignment` the model reads the latter as its input, so copying `input_grid` is not copy-the-input).
    with_given = "given_input_grid" in dataset.column_names
    names += ["copy_scaled_or_tiled", "copy_at_demonstrated_size"] if with_given else []
    with_sizes = "output_size" in dataset.column_names and getattr(model.config, "grid_head_type", None) == "cells"
    names += ["model_size_from_demonstrations"] if with_sizes else []
    scores = {name: load_metric("arc_exact_match") for name in names}
    per_step = PerStepAccuracy()
    for rows in _batches(dataset, batch_size):
        # The inputs alone go through the processor: the targets are scored here, never drawn on the canvas (on a
        # cropped cell canvas an answer larger than the task's crop could not be).
        _, outputs = run_model(model, collator, [dict(row, output_grid=None) for row in rows])
        # Per-cell accuracy of each step's answer over the target's cells (a wrong size scores its overlap).
        side = model.config.max_grid_size
        targets = torch.stack([torch.from_numpy(pad_grid(row["output_grid"], side)) for row in rows])[:, None]
        valid = targets != IGNORE_INDEX
        right = ((outputs.step_grid_predictions.cpu() == targets) & valid).flatten(2).sum(-1)
        per_step.add(right / valid.flatten(2).sum(-1).clamp(min=1))
        held = _answers_at_known_sizes(model, outputs, rows) if with_sizes else [None] * len(rows)
        for row, predicted, at_size in zip(rows, predicted_grids(outputs), held):
            target = json.dumps(row["output_grid"])
            given = row["given_input_grid"] if with_given and row["given_input_grid"] else row["input_grid"]
            attempts = {"model": [predicted], "copy_input": [given], "majority_colour": [majority_colour_grid(given)],
                        "copy_scaled_or_tiled": [row.get("scaled_or_tiled_grid") or given],
                        "copy_at_demonstrated_size": [copy_at_size(row.get("scaled_or_tiled_grid") or given,
                                                                   row.get("output_size"))],
                        "model_size_from_demonstrations": [at_size]}
            for name, metric in scores.items():
                metric.add(predictions=json.dumps(attempts[name]), references=target)
    task_ids = [r.split(":")[1] for r in dataset["source"]]
    results = {name: metric.compute(task_ids=task_ids) for name, metric in scores.items()}
    figures = ("per_cell_accuracy", "per_cell_accuracy_over_union", "exact_match", "pass@1")
    summary = {name: {k: results[name][k] for k in figures} for name in results}
    summary["model"]["per_step_per_cell_accuracy"] = per_step.compute()
    return summary


def _over_union_rows(arc: dict) -> list[str]:
    """The at-size row again, scored over the union of answer and target: an answer larger than its target (copying a
    large input where the answer is a small crop) no longer gets free credit for the target cells it happens to cover.
    No row for results written before the figure existed."""
    figure = "per_cell_accuracy_over_union"
    model = arc["model_size_from_demonstrations"]
    if figure not in model:
        return []
    return [f"| the same, cells right over the union of answer and target | {model[figure]:.1%} | "
            f"{_at_size_baselines(arc, figure)} |"]


# The baselines an answer at the demonstrations' size is read against, as the table names them.
AT_SIZE_BASELINES = {"copy_input": "copy-input", "copy_scaled_or_tiled": "copied, upscaled or tiled input",
                     "copy_at_demonstrated_size": "that copy cut or padded to the demonstrations' size"}


def _at_size_baselines(arc: dict, figure: str) -> str:
    return ", ".join(f"{label} {arc[name][figure]:.1%}" for name, label in AT_SIZE_BASELINES.items()
                     if figure in arc.get(name, {}))


def format_table(results: dict) -> str:
    lines = ["| Evaluation (held out) | Model | Baseline |", "|---|---|---|"]
    if "fashion_mnist" in results:
        r = results["fashion_mnist"]
        lines.append(f"| Fashion-MNIST test accuracy ({r['num_examples']} images) | {r['accuracy']:.1%} | "
                     f"chance {r['chance']:.0%} |")
    if "kjv" in results:
        r = results["kjv"]
        lines.append(f"| KJV held-out books, perplexity per byte-token ({r['num_tokens']} tokens) | "
                     f"{r['perplexity']:.2f} | train unigram (add-one) {r['unigram_perplexity']:.2f} |")
    if "arc" in results:
        r = results["arc"]
        lines.append(f"| ARC-AGI-1 eval test inputs, per-cell accuracy | {r['model']['per_cell_accuracy']:.1%} | "
                     f"copy-input {r['copy_input']['per_cell_accuracy']:.1%}, majority-colour "
                     f"{r['majority_colour']['per_cell_accuracy']:.1%} |")
        if "model_size_from_demonstrations" in r:
            lines.append(f"| ARC-AGI-1 eval test inputs, per-cell accuracy, answers at the size the demonstrations "
                         f"agree on | {r['model_size_from_demonstrations']['per_cell_accuracy']:.1%} | "
                         f"{_at_size_baselines(r, 'per_cell_accuracy')} |")
            lines += _over_union_rows(r)
        lines.append(f"| ARC-AGI-1 eval test inputs, exact match | {r['model']['exact_match']:.1%} | "
                     f"copy-input {r['copy_input']['exact_match']:.1%}, majority-colour "
                     f"{r['majority_colour']['exact_match']:.1%}" + (
                         f", copied, upscaled or tiled input {r['copy_scaled_or_tiled']['exact_match']:.1%}"
                         if "copy_scaled_or_tiled" in r else "") + " |")
    return "\n".join(lines)


def plot_training_curves(log_history, path) -> Path | None:
    keys = ["loss", "grid_loss", "classification_loss", "text_loss", "halting_loss", "concept_loss", "n2n_loss",
            "eval_loss"]
    series = {k: [(e["step"], e[k]) for e in log_history if k in e and "step" in e] for k in keys}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    extras = [k for k in ("fusion_gate_mean", "mean_halting_step", "planner_entropy", "concept_usage")
              if any(k in e for e in log_history)]
    figure, axes = plt.subplots(1, 2 if extras else 1, figsize=(12 if extras else 7, 4.5), squeeze=False)
    for name, points in series.items():
        axes[0, 0].plot(*zip(*points), label=name, marker="." if len(points) < 30 else None)
    axes[0, 0].set_xlabel("optimizer step")
    axes[0, 0].set_ylabel("loss")
    axes[0, 0].set_yscale("log")
    axes[0, 0].legend(fontsize=8)
    axes[0, 0].set_title("training losses")
    for name in extras:
        points = [(e["step"], e[name]) for e in log_history if name in e]
        axes[0, 1].plot(*zip(*points), label=name)
    if extras:
        axes[0, 1].set_xlabel("optimizer step")
        axes[0, 1].legend(fontsize=8)
        axes[0, 1].set_title("model internals")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def compute_metrics(eval_prediction) -> dict:
    """`Trainer` metrics through the repository's `evaluate` modules, from `TRMTrainer.prediction_step`'s outputs:
    class accuracy, ARC per-cell accuracy and exact match (one task per grid), text perplexity."""
    (class_predictions, grid_predictions, text_nll, text_tokens), (labels, grid_labels) = (
        eval_prediction.predictions, eval_prediction.label_ids)
    metrics = {}
    has_label = labels != IGNORE_INDEX
    if has_label.any():
        accuracy = load_metric("accuracy").compute(predictions=class_predictions[has_label],
                                                   references=labels[has_label])
        metrics["accuracy"] = accuracy["accuracy"]
    has_grid = (grid_labels != IGNORE_INDEX).reshape(len(grid_labels), -1).any(-1)
    if has_grid.any():
        predictions = [json.dumps([grid.tolist()]) for grid in TRMProcessor.post_process_grid(grid_predictions[has_grid])]
        references = [json.dumps(grid.tolist()) for grid in TRMProcessor.post_process_grid(grid_labels[has_grid])]
        arc = load_metric("arc_exact_match").compute(predictions=predictions, references=references)
        metrics.update(arc_per_cell_accuracy=arc["per_cell_accuracy"], arc_exact_match=arc["exact_match"])
    if text_tokens.sum() > 0:
        metrics["perplexity"] = load_metric("perplexity").compute(nll_sums=text_nll.tolist(),
                                                                  token_counts=text_tokens.astype(int).tolist())["perplexity"]
    return metrics


def plot_evaluation(results: dict, model, path) -> Path | None:
    """Per-step (per-recursion) held-out accuracy, and how often each concept code was used in training."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    curves = {
        "Fashion-MNIST accuracy": results.get("fashion_mnist", {}).get("per_step_accuracy"),
        "ARC per-cell accuracy": results.get("arc", {}).get("model", {}).get("per_step_per_cell_accuracy"),
    }
    for label, values in curves.items():
        if values:
            left.plot(range(1, len(values) + 1), values, marker="o", label=label)
    steps = max((len(values) for values in curves.values() if values), default=1)
    left.set(title="held-out accuracy after each supervision step", xlabel="supervision step (H x L cycles each)",
             ylabel="accuracy", ylim=(0, 1), xticks=range(1, steps + 1))
    left.legend()
    concepts = model.base_model.concepts
    if concepts is not None and float(concepts.code_usage.sum()) > 0:
        usage = concepts.code_usage.detach().cpu().sort(descending=True).values
        right.bar(range(len(usage)), usage.numpy(), width=1.0)
        stats = concepts.usage_statistics()
        right.set(title=f"concept usage in training: {stats['codes_used']} of {len(usage)} codes, "
                        f"perplexity {stats['perplexity']:.1f}", xlabel="code (sorted by use)", ylabel="uses",
                  yscale="log")
    else:
        right.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def finite_state_dict(model) -> bool:
    return all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())
