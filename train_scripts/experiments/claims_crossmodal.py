"""Claim 2, cross-modal zero-shot transfer (unified-vs-separate-models.md: "learned rotation from text, applied it
to grids"), as a test that can fail.

Task: a 2 x 2 two-colour grid and a rendered instruction naming one of the 4 rotations ("copy", "rot90", "rot180",
"rot270"); the model answers with the rotated grid, one of the 16 patterns, through the classification head
(shared by both modalities, so that nothing but the input differs). The same sample is shown in one of two
modalities on the 64 px canvas, written in a 16 px font (the product's renderer, larger than its 8 px default for
this canvas, so that a tiny model can read it within a CPU budget):

- **text**: the instruction on the first line and the grid written as two lines of digits ("10" / "01"),
  `modality_ids` = text;
- **grid**: the instruction on the first line and the grid drawn as coloured cells by the product's grid renderer
  (ARC palette, frame) at a random place under it, `modality_ids` = grid.

Arms (equal steps): `unified` sees all 4 rotations in text and 3 in grids — "rot90" on grids never; `grid_only`
sees the same 3 rotations on grids and no text at all (the unimodal control); `oracle` also sees rot90 on grids (the
ceiling at this budget). The claim holds if `unified` does rot90 on grids clearly better than `grid_only` and than
the trivial answers (copy the input, or apply the best other transform), scored on the same held-out renderings.

Earlier versions could not tell transfer from its absence at this scale: 3 x 3 grids answered as 9 digits by the
text decoder (all 8 dihedral transforms) were not learnt even with supervision in 250 CPU steps (0% exact for the
oracle), and with 2 x 2 grids the reflections agree with rot90 on half the patterns (a 50% trivial baseline) while
the 8 px text stayed at chance. Rotations only: the best other rotation (rot270) agrees with rot90 on 4 of 16.
At 200 CPU steps even the oracle did not follow the instruction; the CPU scale is 4,000 steps since, where it does.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import torch

from vision_trm.configuration.conventions import MODALITY_GRID, MODALITY_TEXT
from vision_trm.processing import TRMProcessor
from vision_trm.processing.grids import render_grid
from vision_trm.processing.text_rendering import TextRenderer
from vision_trm.processing.transforms import dihedral_transform

from .core import (
    Arm,
    Comparison,
    Experiment,
    RunResult,
    Scale,
    optimizer_memory_bytes,
    parameter_counts,
    seed_everything,
    on_device,
    stability_report,
    train_loop,
)
from .trm_runs import build_trm, limit_cpu_threads

TRANSFORM_NAMES = ("copy", "rot90", "rot180", "rot270")  # dihedral indices 0-3 (counter-clockwise turns)
HELD_OUT_TRANSFORM = 1  # rot90: seen only through text by the unified model
GRID_SIDE = 2
NUM_PATTERNS = 2 ** (GRID_SIDE * GRID_SIDE)
ALL_TRANSFORMS = tuple(range(len(TRANSFORM_NAMES)))
SEEN_ON_GRIDS = tuple(d for d in ALL_TRANSFORMS if d != HELD_OUT_TRANSFORM)
ARM_PAIRS = {
    "unified": [("text", d) for d in ALL_TRANSFORMS] + [("grid", d) for d in SEEN_ON_GRIDS],
    "grid_only": [("grid", d) for d in SEEN_ON_GRIDS],
    "oracle": [("text", d) for d in ALL_TRANSFORMS] + [("grid", d) for d in ALL_TRANSFORMS],
}
GRID_CANVAS = 40  # the drawn grid: 2 x 2 cells and the frame at 10 px a cell
FONT_SIZE = 16
EVAL_PLACEMENTS = 8  # renderings of each pattern in the held-out evaluation
EVAL_SEED = 12345


def all_patterns() -> np.ndarray:
    """The 16 two-colour 2 x 2 grids, `[16, 2, 2]`, colours 0 (black) and 1 (blue); pattern k has cell bits of k."""
    return np.array(list(itertools.product((0, 1), repeat=GRID_SIDE * GRID_SIDE)), dtype=np.int64).reshape(
        -1, GRID_SIDE, GRID_SIDE)


def pattern_id(grid: np.ndarray) -> int:
    return int("".join(str(int(v)) for v in np.asarray(grid).flatten()), 2)


def digits(grid: np.ndarray) -> str:
    return "".join(str(int(v)) for v in np.asarray(grid).flatten())


class TransformCanvases:
    """Renders samples through the product's text and grid renderers (uint8 canvases, then its normalisation)."""

    def __init__(self, processor: TRMProcessor):
        self.processor = processor
        self.image_processor = processor.image_processor
        self.size = self.image_processor.canvas_size
        self.text_renderer = TextRenderer(self.size, font_size=FONT_SIZE)
        self.top = self.text_renderer.line_height + self.text_renderer.margin  # under the instruction line

    def canvas(self, modality: str, transform: int, grid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        name = TRANSFORM_NAMES[transform]
        if modality == "text":
            rows = "\n".join(digits(row) for row in grid)
            return self.text_renderer.render(f"{name}\n{rows}")["canvas"]
        canvas = self.text_renderer.render(name)["canvas"].copy()
        top = int(rng.integers(self.top, self.size - GRID_CANVAS + 1))
        left = int(rng.integers(0, self.size - GRID_CANVAS + 1))
        canvas[top:top + GRID_CANVAS, left:left + GRID_CANVAS] = render_grid(grid, canvas_size=GRID_CANVAS)
        return canvas

    def batch(self, samples, rng: np.random.Generator) -> dict:
        """`samples`: (modality, transform, grid) triples -> the model's inputs, the answer's pattern as label."""
        pixels = np.stack([self.image_processor.normalize_canvas(self.canvas(m, d, g, rng)) for m, d, g in samples])
        return {
            "pixel_values": torch.from_numpy(pixels),
            "modality_ids": torch.tensor([MODALITY_TEXT if m == "text" else MODALITY_GRID for m, _, _ in samples]),
            "labels": torch.tensor([pattern_id(dihedral_transform(g, d)) for _, d, g in samples]),
        }


def eval_samples(modality: str, transforms) -> list:
    patterns = all_patterns()
    return [(modality, d, g) for d in transforms for g in patterns for _ in range(EVAL_PLACEMENTS)]


@torch.no_grad()
def score(model, canvases: TransformCanvases, samples, batch_size: int = 128) -> dict:
    """Accuracy, and for each dihedral transform how often the answer equals that transform of the input."""
    model.eval()
    device = next(model.parameters()).device
    rng = np.random.default_rng(EVAL_SEED)  # the same held-out renderings for every arm and seed
    right = 0
    matches = np.zeros(len(TRANSFORM_NAMES))
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        batch = on_device(canvases.batch(chunk, rng), device)
        labels = batch.pop("labels").cpu()
        predicted = model(**batch).class_logits.argmax(-1).cpu()
        right += int((predicted == labels).sum())
        for d in ALL_TRANSFORMS:
            expected = torch.tensor([pattern_id(dihedral_transform(g, d)) for _, _, g in chunk])
            matches[d] += int((predicted == expected).sum())
    return {"accuracy": right / len(samples), "matches": (matches / len(samples)).tolist()}


def trivial_baselines(patterns: np.ndarray) -> dict:
    """How often rot90's answer equals the input (copy) or another transform's answer, over `patterns`."""
    agree = {d: float(np.mean([np.array_equal(dihedral_transform(g, d), dihedral_transform(g, HELD_OUT_TRANSFORM))
                               for g in patterns])) for d in SEEN_ON_GRIDS}
    return {"baseline_copy_input": agree[0], "baseline_best_other_transform": max(agree.values()),
            "baseline_mean_other_transform": float(np.mean(list(agree.values())))}


def run_crossmodal_arm(experiment, arm, seed: int, scale: Scale) -> RunResult:
    limit_cpu_threads()
    seed_everything(seed)
    start = time.perf_counter()
    model = build_trm(scale.extra.get("preset", "tiny"), scale.overrides)
    canvases = TransformCanvases(TRMProcessor.from_config(model.config))
    patterns = all_patterns()
    pairs = ARM_PAIRS[arm.name]
    rng = np.random.default_rng(seed)
    zero_shot = eval_samples("grid", [HELD_OUT_TRANSFORM])

    def next_batch(step):
        chosen = rng.integers(len(pairs), size=scale.batch_size)
        grids = patterns[rng.integers(len(patterns), size=scale.batch_size)]
        return canvases.batch([(pairs[c][0], pairs[c][1], g) for c, g in zip(chosen, grids)], rng)

    def evaluate(trained):
        return {"zero_shot_rot90_grid": score(trained, canvases, zero_shot)["accuracy"]}

    log = train_loop(model, next_batch, scale, seed, evaluate=evaluate)
    held_out = score(model, canvases, zero_shot)
    metrics = {
        "zero_shot_rot90_grid": held_out["accuracy"],
        "rot90_text": score(model, canvases, eval_samples("text", [HELD_OUT_TRANSFORM]))["accuracy"],
        "seen_transforms_grid": score(model, canvases, eval_samples("grid", SEEN_ON_GRIDS))["accuracy"],
        "seen_transforms_text": score(model, canvases, eval_samples("text", SEEN_ON_GRIDS))["accuracy"],
        "train_seconds": log.train_time_s,
        "optimizer_memory_MiB": optimizer_memory_bytes(model) / 2**20,
        "chance": 1.0 / NUM_PATTERNS,
        **trivial_baselines(patterns),
    }
    # Which transform the zero-shot answers actually perform (rot90 itself is the right one).
    for d, fraction in enumerate(held_out["matches"]):
        metrics[f"zero_shot_answer_is_{TRANSFORM_NAMES[d].replace(' ', '_')}"] = fraction
    return RunResult(metrics=metrics, curves=log.curves, parameters=parameter_counts(model),
                     stability=stability_report(log), wall_time_s=time.perf_counter() - start,
                     extra={"pairs": pairs})


# One supervision step of one H x L cycle: the claim is about transfer, not recursion, and a quarter of the cost per
# step buys the steps the task needs on a CPU (the same for every arm).
TASK_HEAD = {"heads": ["classification"], "num_labels": NUM_PATTERNS, "deep_supervision_steps": 1, "H_cycles": 1,
             "L_cycles": 1}

CROSSMODAL = Experiment(
    name="crossmodal_transfer",
    claim="A unified model learns a concept (rotation) from text and applies it to grids zero-shot; impossible "
          "with separate models (cross-modal 65% vs 0%).",
    source="unified-vs-separate-models.md",
    hypothesis="The unified model, which saw rot90 only in text, performs rot90 on held-out grids far above the "
               "grid-only control and the trivial baselines.",
    arms=[Arm(name, description=", ".join(f"{m}:{TRANSFORM_NAMES[d]}" for m, d in pairs))
          for name, pairs in ARM_PAIRS.items()],
    scales={
        "test": Scale(steps=3, batch_size=4, overrides=TASK_HEAD),
        # 4,000 steps: the oracle follows the instruction on grids only after ~3,000 (seed 0's record: 37.5% at step
        # 1,500, 68% at 3,000, 98% at 4,000); at 200 steps no arm did, so nothing could be concluded.
        "cpu": Scale(steps=4000, batch_size=32, eval_every=250, overrides=TASK_HEAD),
        "gpu": Scale(steps=2000, batch_size=128, learning_rate=5e-4, warmup_steps=100, eval_every=200,
                     overrides={**TASK_HEAD, "hidden_size": 256, "num_attention_heads": 8}),
    },
    run=run_crossmodal_arm,
    comparisons=[
        Comparison("zero_shot_rot90_grid", "unified", "grid_only", claimed=0.65),
        Comparison("rot90_text", "unified", "grid_only", note="sanity: only unified has seen rot90 at all"),
        Comparison("zero_shot_rot90_grid", "oracle", "unified", note="how far zero-shot is from supervised"),
    ],
    plot_metrics=("zero_shot_rot90_grid", "rot90_text", "seen_transforms_grid"),
    plot_curve="zero_shot_rot90_grid",
)

EXPERIMENTS = [CROSSMODAL]
