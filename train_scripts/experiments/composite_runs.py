"""One arm as a run of `run_multimodal.py`: the main job (the composite recipe: ARC + Fashion-MNIST + KJV), for the
claims that need ARC next to the other modalities, or the ARC recipe (`extra["recipe"] = "arc"`), for the claims
about ARC alone.

Arm options read here:
    sources          comma list of composite sources (`--sources`; default the main job's "arc,fashion_mnist,kjv")
    weights          their interleaving probabilities (`--weights`; default "0.4,0.3,0.3")
    steps_factor     this arm's steps relative to the scale's (0.4: an ARC-only model given the ARC share)
    batch_fraction   this arm's batch relative to the scale's (0.4: the unified model's updates, its ARC rows only)

Scale fields read: `steps`, `batch_size`, `learning_rate`, `warmup_steps`, `overrides` (TRMConfig fields), and in
`extra`: `recipe` (composite, the default, or arc), `preset`, `max_samples_per_source`, `max_eval_samples`,
`max_arc_eval_samples`, `arc_augmentations` (the `run_multimodal.py` flags of those names).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from vision_trm.modeling_trm import TRMForMultitaskReasoning

from .core import RunResult, Scale, parameter_counts


# The preset an arm runs when neither the arm nor the scale names one.
DEFAULT_PRESETS = {"composite": "tiny-efficientnet", "arc": "arc-tiny"}


def composite_arguments(arm, seed: int, scale: Scale, output_dir: Path) -> list[str]:
    """The `run_multimodal.py` command line of one arm and seed."""
    steps = max(1, round(scale.steps * arm.options.get("steps_factor", 1.0)))
    batch = max(1, round(scale.batch_size * arm.options.get("batch_fraction", 1.0)))
    extra = scale.extra
    recipe = extra.get("recipe", "composite")
    argv = ["--recipe", recipe,
            "--preset", arm.options.get("preset", extra.get("preset", DEFAULT_PRESETS[recipe]))]
    if recipe == "composite":
        argv += ["--sources", arm.options.get("sources", "arc,fashion_mnist,kjv"),
                 "--weights", arm.options.get("weights", "0.4,0.3,0.3")]
    argv += ["--max_steps", str(steps), "--per_device_train_batch_size", str(batch),
            "--learning_rate", str(scale.learning_rate), "--warmup_steps", str(scale.warmup_steps),
            "--seed", str(seed), "--output_dir", str(output_dir),
            "--max_train_minutes", "0", "--save_steps", str(steps + 1), "--disable_tqdm", "True"]
    overrides = {**scale.overrides, **arm.overrides}
    if overrides:
        argv += ["--config_overrides", json.dumps(overrides)]
    for name in ("max_samples_per_source", "max_eval_samples", "max_arc_eval_samples", "arc_augmentations"):
        if name in extra:
            argv += [f"--{name}", str(extra[name])]
    return argv


def run_composite_arm(experiment, arm, seed: int, scale: Scale) -> RunResult:
    """Trains one arm with `run_multimodal.main` in a temporary folder (removed after; the composite data stay in
    the main job's cache, `VISION_TRM_DATA_CACHE`, so arms of one seed share a build) and returns its held-out
    figures: `arc_per_cell_accuracy`, `arc_per_cell_at_demonstrated_size` (answers decoded at the size the
    demonstrations agree on), `arc_exact_match`, `arc_per_cell_step<k>` (after supervision step k), and
    `image_accuracy` / `text_perplexity` where the arm trains those sources."""
    from .. import run_multimodal  # the script module; imported here so the runner's other experiments stay light

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"{experiment.name}-{arm.name}-") as folder:
        argv = composite_arguments(arm, seed, scale, Path(folder))
        results = run_multimodal.main(argv)
        parameters = parameter_counts(TRMForMultitaskReasoning.from_pretrained(folder)) if Path(
            folder, "config.json").is_file() else {}
    if not isinstance(results, dict) or "error" in results:
        raise RuntimeError(f"{experiment.name}/{arm.name} seed {seed}: the run failed: {results}")
    metrics = {"train_seconds": sum(m.get("train_runtime", 0.0) for m in results["train"].values())}
    arc = results.get("arc")
    if arc:
        metrics["arc_per_cell_accuracy"] = arc["model"]["per_cell_accuracy"]
        metrics["arc_exact_match"] = arc["model"]["exact_match"]
        if "model_size_from_demonstrations" in arc:
            metrics["arc_per_cell_at_demonstrated_size"] = arc["model_size_from_demonstrations"]["per_cell_accuracy"]
        metrics["arc_copy_input_per_cell_accuracy"] = arc["copy_input"]["per_cell_accuracy"]
        # Per supervision step (the recursion's refinement), identity view.
        for step, accuracy in enumerate(arc["model"].get("per_step_per_cell_accuracy", []), start=1):
            metrics[f"arc_per_cell_step{step}"] = accuracy
    if "fashion_mnist" in results:
        metrics["image_accuracy"] = results["fashion_mnist"]["accuracy"]
    if "kjv" in results:
        metrics["text_perplexity"] = results["kjv"]["perplexity"]
    return RunResult(metrics=metrics, parameters=parameters, wall_time_s=time.perf_counter() - start,
                     extra={"command": "python train_scripts/run_multimodal.py " + " ".join(argv),
                            "preset": results.get("preset")})
