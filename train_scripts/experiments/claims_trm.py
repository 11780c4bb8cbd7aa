"""The claims about the product model's blocks, each an experiment over arms of `TRMConfig` changes.

Data: Fashion-MNIST (12,000 training images, held-out test images) and the KJV (training books; held-out test
books), mixed half and half unless an arm says otherwise. Preset `tiny` (no tower) or `tiny-efficientnet` (the
ImageNet EfficientNet-Lite0 tower from PyPI) with the classification and text heads.
"""

from __future__ import annotations

from .composite_runs import run_composite_arm
from .core import Arm, Comparison, Experiment, Scale
from .trm_runs import ConceptProbe, GateProbe, PlannerProbe, run_trm_arm

# GPU scale: the tiny layout four times wider (width 256), 10x the steps, 5x the batch.
GPU_WIDTH = {"hidden_size": 256, "num_attention_heads": 8}


def trm_scales(preset: str = "tiny", cpu_steps: int = 150, cpu_batch: int = 24, eval_every: int = 0,
               overrides: dict | None = None, extra: dict | None = None, gpu_steps: int = 1500,
               heads: tuple = ("classification", "text")) -> dict[str, Scale]:
    overrides = {"heads": list(heads), **(overrides or {})}
    extra = {"preset": preset, **(extra or {})}
    gpu_extra = {**extra, "accuracy_threshold": extra.get("gpu_accuracy_threshold", extra.get("accuracy_threshold"))}
    return {
        "test": Scale(steps=3, batch_size=4, eval_images=8, eval_texts=4, eval_every=2 if eval_every else 0,
                      overrides=overrides, extra=extra, pool_samples=64, pool_eval_samples=16),
        "cpu": Scale(steps=cpu_steps, batch_size=cpu_batch, eval_every=eval_every, overrides=overrides, extra=extra),
        "gpu": Scale(steps=gpu_steps, batch_size=128, learning_rate=5e-4, warmup_steps=100, eval_images=1000,
                     eval_texts=1000, eval_every=eval_every and gpu_steps // 10, overrides={**overrides, **GPU_WIDTH},
                     extra=gpu_extra),
    }


def plain_run(experiment, arm, seed, scale):
    return run_trm_arm(experiment, arm, seed, scale)


def probed_run(probe_class):
    def run(experiment, arm, seed, scale):
        return run_trm_arm(experiment, arm, seed, scale, measure=probe_class())
    return run


# ------------------------------------------------------------------------------------------ 1. unified vs separate
UNIFIED_VS_SEPARATE = Experiment(
    name="unified_vs_separate",
    claim="One model trained on all modalities beats single-task models of the same size (CIFAR +10 points from "
          "spatial reasoning; text slightly worse, 25 vs 22 perplexity).",
    source="unified-vs-separate-models.md",
    hypothesis="At equal total compute and equal samples per task, the unified model's image accuracy is higher "
               "than the image-only model's, and its text perplexity no worse than the text-only model's.",
    arms=[
        Arm("unified", options={"image_fraction": 0.5}, description="half images, half text, all steps"),
        Arm("image_only", options={"image_fraction": 1.0, "steps_factor": 0.5, "evaluate": ("images",)},
            description="same architecture, images only, half the steps (same number of images seen)"),
        Arm("text_only", options={"image_fraction": 0.0, "steps_factor": 0.5, "evaluate": ("texts",)},
            description="same architecture, text only, half the steps (same number of texts seen)"),
        Arm("image_only_same_steps", options={"image_fraction": 1.0, "batch_fraction": 0.5, "evaluate": ("images",)},
            description="images only, all the steps at half the batch: the unified model's updates and images"),
        Arm("text_only_same_steps", options={"image_fraction": 0.0, "batch_fraction": 0.5, "evaluate": ("texts",)},
            description="text only, all the steps at half the batch: the unified model's updates and texts"),
    ],
    scales=trm_scales(),
    run=plain_run,
    comparisons=[
        Comparison("image_accuracy", "unified", "image_only", claimed=0.10),
        Comparison("text_perplexity", "unified", "text_only", higher_is_better=False,
                   note="the note itself expects text-only to be slightly better"),
        Comparison("image_accuracy", "unified", "image_only_same_steps", claimed=0.10,
                   note="same optimiser steps and images seen"),
        Comparison("text_perplexity", "unified", "text_only_same_steps", higher_is_better=False,
                   note="same optimiser steps and texts seen"),
    ],
    plot_metrics=("image_accuracy", "text_perplexity"),
)

UNIFIED_VS_SEPARATE_ARC = Experiment(
    name="unified_vs_separate_arc",
    claim="ARC +15 points from text priors in the unified model (72% vs 57% ARC-only).",
    source="unified-vs-separate-models.md",
    hypothesis="The main job's unified model (ARC + images + text) scores more ARC cells on the held-out evaluation "
               "test inputs than an ARC-only model of the same size given the same ARC samples.",
    arms=[
        Arm("unified", description="the main job: ARC 40%, Fashion-MNIST 30%, KJV 30% of each batch, all steps"),
        Arm("arc_only", options={"sources": "arc", "weights": "1", "steps_factor": 0.4},
            description="ARC alone, 40% of the steps: the same ARC samples and the ARC share of the compute"),
        Arm("arc_only_same_steps", options={"sources": "arc", "weights": "1", "batch_fraction": 0.4},
            description="ARC alone, all the steps at 40% of the batch: the unified model's updates, ~its ARC rows"),
    ],
    scales={
        "test": Scale(steps=2, batch_size=5, extra={"preset": "tiny-efficientnet", "max_samples_per_source": 16,
                                                    "max_eval_samples": 4, "arc_augmentations": 1,
                                                    "max_arc_eval_samples": 6}),
        "cpu": Scale(steps=1600, batch_size=16, extra={"preset": "tiny-efficientnet"}),
        "gpu": Scale(steps=8000, batch_size=64, learning_rate=5e-4, warmup_steps=100,
                     extra={"preset": "tiny-efficientnet"}),
    },
    run=run_composite_arm,
    comparisons=[
        Comparison("arc_per_cell_accuracy", "unified", "arc_only", claimed=0.15),
        Comparison("arc_per_cell_at_demonstrated_size", "unified", "arc_only", claimed=0.15),
        Comparison("arc_per_cell_accuracy", "unified", "arc_only_same_steps", claimed=0.15,
                   note="same optimiser steps"),
    ],
    plot_metrics=("arc_per_cell_accuracy", "arc_per_cell_at_demonstrated_size"),
)


# ------------------------------------------------------------------------------------------ 3. recursion refines
def _recursion_arm(h: int, l: int) -> Arm:
    return Arm(f"H{h}L{l}", overrides={"H_cycles": h, "L_cycles": l},
               description=f"{h} x ({l} + 1) = {h * (l + 1)} applications of the shared net per supervision step")


RECURSION = Experiment(
    name="recursion_refines",
    claim="Each recursion refines the answer: accuracy after supervision step 1 < 2 < 3 (cycle 1 +7%, 2 +8%, "
          "3 +5%); H x L cycles give the reasoning.",
    source="trm-with-pretrained-features.md",
    hypothesis="Held-out accuracy rises (perplexity falls) from supervision step 1 to 2 to 3; at equal compute per "
               "step (H x (L + 1) = 6), the split between H and L matters less than having the compute at all.",
    arms=[_recursion_arm(1, 5), _recursion_arm(2, 2), _recursion_arm(3, 1), _recursion_arm(1, 1)],
    scales=trm_scales(overrides={"deep_supervision_steps": 3, "use_halting": False}, cpu_steps=120),
    run=plain_run,
    comparisons=[
        Comparison("image_accuracy_step2", "H2L2", "H2L2", worse_metric="image_accuracy_step1", paired=True,
                   claimed=0.08),
        Comparison("image_accuracy_step3", "H2L2", "H2L2", worse_metric="image_accuracy_step2", paired=True,
                   claimed=0.05),
        Comparison("text_perplexity_step2", "H2L2", "H2L2", worse_metric="text_perplexity_step1",
                   higher_is_better=False, paired=True),
        Comparison("text_perplexity_step3", "H2L2", "H2L2", worse_metric="text_perplexity_step2",
                   higher_is_better=False, paired=True),
        Comparison("image_accuracy", "H2L2", "H1L1", note="6 vs 2 net applications per step"),
        Comparison("image_accuracy", "H2L2", "H1L5", note="equal compute"),
        Comparison("image_accuracy", "H2L2", "H3L1", note="equal compute"),
    ],
    plot_metrics=("image_accuracy_step1", "image_accuracy_step2", "image_accuracy_step3", "text_perplexity"),
)

# The ARC recipe's arms: three supervision steps, each scored (halting off), on cropped cell canvases (the cheap
# form of the ARC presets on a CPU).
_RECURSION_ARC_OVERRIDES = {"deep_supervision_steps": 3, "use_halting": False, "crop_cell_canvas": True}

RECURSION_ARC = Experiment(
    name="recursion_refines_arc",
    claim="Recursion refines ARC answers: exact match after supervision step 1 < 2 < 3.",
    source="trm-with-pretrained-features.md",
    hypothesis="On held-out ARC test inputs, per-cell accuracy (exact match is ~0 at these budgets) rises with the "
               "supervision step, whatever the split of the step's compute between H and L.",
    arms=[_recursion_arm(1, 5), _recursion_arm(2, 2), _recursion_arm(3, 1)],
    scales={
        "test": Scale(steps=2, batch_size=4, overrides=_RECURSION_ARC_OVERRIDES,
                      extra={"recipe": "arc", "preset": "arc-tiny", "max_arc_eval_samples": 6}),
        "cpu": Scale(steps=600, batch_size=16, overrides=_RECURSION_ARC_OVERRIDES,
                     extra={"recipe": "arc", "preset": "arc-tiny"}),
        "gpu": Scale(steps=3000, batch_size=128, warmup_steps=200, overrides=_RECURSION_ARC_OVERRIDES,
                     extra={"recipe": "arc", "preset": "arc"}),
    },
    run=run_composite_arm,
    comparisons=[
        Comparison("arc_per_cell_step2", "H2L2", "H2L2", worse_metric="arc_per_cell_step1", paired=True),
        Comparison("arc_per_cell_step3", "H2L2", "H2L2", worse_metric="arc_per_cell_step2", paired=True),
        Comparison("arc_per_cell_accuracy", "H2L2", "H1L5", note="equal compute"),
        Comparison("arc_per_cell_accuracy", "H2L2", "H3L1", note="equal compute"),
    ],
    plot_metrics=("arc_per_cell_step1", "arc_per_cell_step2", "arc_per_cell_step3"),
)


# ------------------------------------------------------------------------------------- 4. pretrained + N2N adapter
PRETRAINED_AND_ADAPTER = Experiment(
    name="pretrained_and_adapter",
    claim="The N2N adapter adds +12% (denoise + align); pretrained features + adapter train 5-10x faster than "
          "learning vision from scratch.",
    source="hybrid-architecture-pretrained-n2n-trm-coconut.md",
    hypothesis="On Fashion-MNIST, the model with the frozen ImageNet tower reaches a held-out accuracy threshold in "
               "fewer steps than the same model without it; the adapter (with or without its N2N phase) raises "
               "accuracy over no adapter.",
    arms=[
        Arm("scratch", options={"preset": "tiny"}, description="trainable ViT only, adapter on"),
        Arm("tower_no_adapter", overrides={"use_n2n_adapter": False}),
        Arm("tower_adapter", description="adapter on, no N2N phase (identity at start)"),
        Arm("tower_adapter_n2n", options={"n2n_fraction": 0.5},
            description="adapter pre-trained with N2N on the training canvases first (extra steps)"),
    ],
    scales=trm_scales(preset="tiny-efficientnet", cpu_steps=150, eval_every=30, heads=("classification",),
                      extra={"accuracy_threshold": 0.65, "gpu_accuracy_threshold": 0.85}),
    run=plain_run,
    comparisons=[
        Comparison("image_accuracy", "tower_adapter_n2n", "tower_no_adapter", claimed=0.12),
        Comparison("image_accuracy", "tower_adapter", "tower_no_adapter", claimed=0.12),
        Comparison("image_accuracy_auc", "tower_no_adapter", "scratch"),
        Comparison("steps_to_0.65", "tower_no_adapter", "scratch", higher_is_better=False),
        Comparison("image_accuracy", "tower_no_adapter", "scratch"),
    ],
    plot_metrics=("image_accuracy", "image_accuracy_auc"),
    plot_curve="image_accuracy",
)
for _arm in PRETRAINED_AND_ADAPTER.arms:
    _arm.options.setdefault("image_fraction", 1.0)
    _arm.options.setdefault("evaluate", ("images",))


# ------------------------------------------------------------------------------------------------- 5. planner
PLANNER = Experiment(
    name="planner",
    claim="COCONUT latent planning adds +10% (meta-reasoning over 4 explored paths).",
    source="hybrid-architecture-pretrained-n2n-trm-coconut.md",
    hypothesis="The planner (soft or Gumbel selection) raises held-out accuracy over no planner, and its path "
               "weights move away from uniform.",
    arms=[
        Arm("soft", overrides={"planner_selection": "soft"}),
        Arm("gumbel", overrides={"planner_selection": "gumbel"}),
        Arm("off", overrides={"planner_num_paths": 0}),
    ],
    scales=trm_scales(cpu_steps=120),
    run=probed_run(PlannerProbe),
    comparisons=[
        Comparison("image_accuracy", "soft", "off", claimed=0.10),
        Comparison("image_accuracy", "gumbel", "off", claimed=0.10),
        Comparison("text_perplexity", "soft", "off", higher_is_better=False),
        Comparison("text_perplexity", "gumbel", "off", higher_is_better=False),
    ],
    plot_metrics=("image_accuracy", "text_perplexity", "planner_entropy_final"),
    plot_curve="planner_entropy",
)


# ------------------------------------------------------------------------------------ 6. capsules and concepts
CONCEPTS = Experiment(
    name="concepts",
    claim="The concept vocabulary learns abstract, shared concepts (2048 codes, cross-modal); capsules are the "
          "modality-agnostic representation.",
    source="unified-vs-separate-models.md; hybrid-architecture-pretrained-n2n-trm-coconut.md",
    hypothesis="Quantising the capsules against a concept vocabulary does not lower accuracy and the vocabulary is "
               "used broadly (many codes, high usage perplexity) at every vocabulary size.",
    arms=[
        Arm("vocab256", overrides={"concept_vocab_size": 256}, description="the tiny preset's vocabulary"),
        Arm("vocab16", overrides={"concept_vocab_size": 16}),
        Arm("off", overrides={"concept_vocab_size": 0}),
        Arm("one_capsule_off", overrides={"concept_vocab_size": 0, "num_capsules": 1},
            description="capsules reduced to one, no vocabulary"),
    ],
    scales=trm_scales(cpu_steps=120),
    run=probed_run(ConceptProbe),
    comparisons=[
        Comparison("image_accuracy", "vocab256", "off"),
        Comparison("text_perplexity", "vocab256", "off", higher_is_better=False),
        Comparison("image_accuracy", "off", "one_capsule_off", note="12 capsules vs 1"),
        Comparison("text_perplexity", "off", "one_capsule_off", higher_is_better=False, note="12 capsules vs 1"),
    ],
    plot_metrics=("image_accuracy", "text_perplexity", "heldout_usage_perplexity", "heldout_fraction_used"),
    plot_curve="concept_usage_per_batch",
)


# ---------------------------------------------------------------------------------------- 7b. the shipped gate
FUSION_GATE = Experiment(
    name="fusion_gate",
    claim="The adaptive gate finds the optimal blend of pretrained and trainable features (+8%), starting near 0.8 "
          "pretrained and shifting to 0.3 as the trainable ViT specialises.",
    source="trm-with-pretrained-features.md (fusion); the H100 run (gate ~0.01) vs the CPU run (~0.65)",
    hypothesis="The gate's value follows how useful each path is. Alternative: it follows how fast Adam can move "
               "it (its step per update grows with the learning rate and with the width of the gate MLP) and the "
               "norms of the two paths, and a path's accuracy contribution is not what the gate says.",
    arms=[
        Arm("cpu_recipe", description="tiny-efficientnet (width 64), lr 1e-3, 10 warm-up steps (the CPU main job)"),
        Arm("gpu_lr", options={"learning_rate": 1e-4, "warmup_steps": 100, "steps_factor": 2 / 3},
            description="width 64 with the H100 run's lr 1e-4 and 100 warm-up steps (100 steps)"),
        Arm("width256_gpu_lr", overrides={"hidden_size": 256, "num_attention_heads": 8},
            options={"learning_rate": 1e-4, "warmup_steps": 100, "steps_factor": 0.25, "evaluate": ()},
            description="width 256, the H100 run's learning rate; its first 38 steps: the gate's early speed"),
        Arm("width768_gpu_lr", overrides={"hidden_size": 768, "num_attention_heads": 12},
            options={"learning_rate": 1e-4, "warmup_steps": 100, "steps_factor": 1 / 6, "evaluate": (),
                     "batch_size": 8},
            description="the H100 run's width (768) and learning rate, its first 25 steps (batch 8): the gate's "
                        "early speed"),
        Arm("mean", overrides={"fusion_mode": "mean"}, description="fixed 0.5 average (no gate)"),
        Arm("h100_recipe", overrides={"hidden_size": 768, "num_attention_heads": 12},
            options={"preset": "efficientnet-lite0", "learning_rate": 1e-4, "warmup_steps": 100,
                     "steps_factor": 0.3, "bf16": True, "only_scales": ("gpu",)},
            description="GPU only: the H100 run's preset (efficientnet-lite0, 224 px, width 768), lr, bf16 and ~450 "
                        "steps"),
        Arm("h100_recipe_mean", overrides={"hidden_size": 768, "num_attention_heads": 12, "fusion_mode": "mean"},
            options={"preset": "efficientnet-lite0", "learning_rate": 1e-4, "warmup_steps": 100,
                     "steps_factor": 0.3, "bf16": True, "only_scales": ("gpu",)},
            description="GPU only: h100_recipe with the fixed 0.5 average: does the gate that turns the tower down "
                        "(to ~0.18 in 450 steps) cost or gain accuracy at the product's GPU recipe?"),
    ],
    scales=trm_scales(preset="tiny-efficientnet"),
    run=probed_run(GateProbe),
    comparisons=[
        Comparison("image_accuracy", "cpu_recipe", "mean", claimed=0.08),
        Comparison("text_perplexity", "cpu_recipe", "mean", higher_is_better=False),
        Comparison("image_accuracy", "h100_recipe", "h100_recipe_mean", claimed=0.08,
                   note="the product's GPU recipe (224 px, width 768)"),
    ],
    plot_metrics=("gate_at_step25", "gate_final", "image_accuracy", "image_accuracy_without_pretrained",
                  "image_accuracy_without_trainable"),
    plot_curve="gate",
)


# ---------------------------------------------------------------------------------------------------- 8. LoRA
LORA = Experiment(
    name="lora_tower",
    claim="Optionally unfreeze the pretrained tower after the adapter converges (Phase 3); frozen keeps memory low.",
    source="hybrid-architecture-pretrained-n2n-trm-coconut.md",
    hypothesis="LoRA on the EfficientNet-Lite0 tower recovers most of full fine-tuning's accuracy gain over the "
               "frozen tower with a fraction of its trainable parameters and optimiser memory.",
    arms=[
        Arm("frozen"),
        Arm("lora_r8", options={"lora": True}),
        Arm("full_finetune", overrides={"freeze_pretrained_tower": False}),
        # The frozen arm given LoRA's wall time: a LoRA step cost 1.55x a frozen one on the 2-core CPU (53.3 against
        # 34.4 s for 150 steps, 12 seeds), so 232 steps.
        Arm("frozen_equal_time", options={"steps_factor": 1.55},
            description="frozen, 1.55x the steps: the wall time of the LoRA arm"),
    ],
    scales=trm_scales(preset="tiny-efficientnet", heads=("classification",)),
    run=plain_run,
    # Paired by seed: a seed fixes the model's initialisation (LoRA's adapters are added after it) and the batches
    # (`MixedBatches` draws them from its own seeded generator), so the arms of one seed differ only in what trains.
    comparisons=[
        Comparison("image_accuracy", "lora_r8", "frozen", paired=True),
        Comparison("image_accuracy", "full_finetune", "frozen", paired=True),
        Comparison("image_accuracy", "full_finetune", "lora_r8", paired=True),
        Comparison("image_accuracy", "lora_r8", "frozen_equal_time", paired=True, note="at equal wall time"),
    ],
    plot_metrics=("image_accuracy", "optimizer_memory_MiB", "train_seconds"),
)
for _arm in LORA.arms:
    _arm.options.setdefault("image_fraction", 1.0)
    _arm.options.setdefault("evaluate", ("images",))

EXPERIMENTS = [UNIFIED_VS_SEPARATE, UNIFIED_VS_SEPARATE_ARC, RECURSION, RECURSION_ARC, PRETRAINED_AND_ADAPTER,
               PLANNER, CONCEPTS, FUSION_GATE, LORA]
