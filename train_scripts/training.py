"""Trainer pieces of run_multimodal.py: the multi-task Trainer subclass, the NaN guard, callbacks, LoRA helpers."""

from __future__ import annotations

import math
import time

import torch
from transformers import Trainer, TrainerCallback

EXTRA_LOSS_TERMS = ("grid_loss", "classification_loss", "text_loss", "halting_loss", "concept_loss", "n2n_loss")


class NonFiniteLossError(RuntimeError):
    """Training stopped before a NaN / inf could reach the weights; the message names the step and the batch."""


class TRMTrainer(Trainer):
    """`Trainer` with three additions the multi-task, deep-supervision model needs.

    * `phase="n2n"`: each batch becomes two aligned views (`make_aligned_views`) and only the N2N loss is used.
    * A NaN guard: a non-finite loss or gradient raises `NonFiniteLossError` naming the optimizer step and the
      micro-batch, before the optimizer step, so no NaN weight is ever written (checkpoints stay clean).
    * Logging of the model's extra outputs, averaged over each logging window: every loss term, the fusion gate mean,
      the mean halting step, the planner weights' entropy and the concept-vocabulary usage.
    """

    def __init__(self, *args, phase: str = "e2e", **kwargs):
        super().__init__(*args, **kwargs)
        self.phase = phase
        self._extra_sums: dict[str, float] = {}
        self._extra_counts: dict[str, int] = {}
        self._micro_batch = 0

    # ------------------------------------------------------------------------------------------------ loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        sources = inputs.pop("row_sources", None)
        if self.phase == "n2n":
            from vision_trm.modeling_trm.adapter import make_aligned_views

            view1, view2 = make_aligned_views(inputs["pixel_values"])
            outputs = model(pixel_values=view1, n2n_target_pixel_values=view2)
        else:
            outputs = model(**inputs)
        loss = outputs["loss"]
        if model.training:
            self._micro_batch += 1
            if not torch.isfinite(loss.detach()).all():
                raise NonFiniteLossError(self._where(f"non-finite loss ({loss.item()})", sources))
            self._record(outputs)
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Returns small, fixed-shape predictions for `compute_metrics` instead of every logit tensor.

        predictions: (class argmax [B], grid prediction [B,30,30] with -1 outside its size, text NLL sum [B],
        scored text tokens [B]); labels: (class labels [B], grid labels [B,30,30]).
        """
        inputs = self._prepare_inputs(inputs)
        inputs.pop("row_sources", None)
        with torch.no_grad():
            outputs = model(**inputs)
        loss = outputs.loss.detach() if outputs.loss is not None else None
        if prediction_loss_only:
            return loss, None, None
        batch = inputs["pixel_values"].shape[0]
        device = inputs["pixel_values"].device
        class_predictions = (outputs.class_logits.argmax(-1) if outputs.class_logits is not None
                             else torch.full((batch,), -1, device=device))
        grid_predictions = (outputs.step_grid_predictions[torch.arange(batch, device=device),
                                                          outputs.halting_steps - 1]
                            if outputs.step_grid_predictions is not None
                            else torch.full((batch, 30, 30), -1, device=device))
        text_nll, text_tokens = _text_nll(outputs.text_logits, inputs.get("text_labels"), batch, device)
        labels = (inputs.get("labels", torch.full((batch,), -100, device=device)),
                  inputs.get("grid_labels", torch.full((batch, 30, 30), -100, device=device)))
        return loss, (class_predictions, grid_predictions, text_nll, text_tokens), labels

    def training_step(self, model, inputs, num_items_in_batch=None):
        sources = inputs.get("row_sources")
        loss = super().training_step(model, inputs, num_items_in_batch)
        bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
        if bad:
            raise NonFiniteLossError(self._where(f"non-finite gradient in {bad[:3]}", sources))
        return loss

    def _where(self, what: str, sources) -> str:
        step = self.state.global_step + 1
        epoch = self.state.epoch or 0.0
        batch = f"micro-batch {self._micro_batch} (epoch {epoch:.2f})"
        named = ""
        if sources:
            kinds = sorted({s.split(":")[0] for s in sources})
            named = f"; the batch held {len(sources)} rows from {kinds}, first {sources[:4]}"
        return (f"NaN guard: {what} at optimizer step {step}, {batch}{named}. Training stopped before the optimizer "
                "step, so no NaN weights were written; the last good checkpoint is intact (lower the learning rate "
                "or inspect that batch).")

    # --------------------------------------------------------------------------------------------- logging
    def _add(self, name: str, value) -> None:
        if value is None:
            return
        value = float(value)
        if math.isfinite(value):
            self._extra_sums[name] = self._extra_sums.get(name, 0.0) + value
            self._extra_counts[name] = self._extra_counts.get(name, 0) + 1

    @torch.no_grad()
    def _record(self, outputs) -> None:
        for name in EXTRA_LOSS_TERMS:
            value = outputs.get(name) if hasattr(outputs, "get") else getattr(outputs, name, None)
            if value is not None:
                self._add(name, value.detach().float().mean())
        gate = outputs.get("fusion_gate")
        if gate is not None:
            self._add("fusion_gate_mean", gate.detach().float().mean())
        halting = outputs.get("halting_steps")
        if halting is not None:
            self._add("mean_halting_step", halting.detach().float().mean())
        weights = outputs.get("planner_weights")
        if weights is not None:
            w = weights.detach().float().clamp_min(1e-9)
            self._add("planner_entropy", -(w * w.log()).sum(-1).mean())
        concepts = outputs.get("concept_ids")
        if concepts is not None:
            vocab = getattr(getattr(self.model, "config", None), "concept_vocab_size", 0) or 1
            self._add("concept_usage", concepts.detach().unique().numel() / vocab)

    def log(self, logs, start_time=None):
        if "loss" in logs and self._extra_counts:
            for name, total in self._extra_sums.items():
                logs[name] = round(total / self._extra_counts[name], 5)
            self._extra_sums, self._extra_counts = {}, {}
        super().log(logs, start_time)


class TimeBudgetCallback(TrainerCallback):
    """Stops training (cleanly, with a final save) once `minutes` of wall-clock training have passed."""

    def __init__(self, minutes: float):
        self.seconds = minutes * 60
        self.start = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.time()

    def on_step_end(self, args, state, control, **kwargs):
        if self.seconds > 0 and self.start is not None and time.time() - self.start > self.seconds:
            control.should_training_stop = True
            control.should_save = True
        return control


# ------------------------------------------------------------------------------------------------------ LoRA
def lora_target_regex(config) -> str:
    """PEFT `target_modules` regex for the pretrained tower's attention / MLP layers (1x1 convs for EfficientNet)."""
    if config.pretrained_tower == "efficientnet_lite0":
        return r".*pretrained_tower\.backbone\..*\.(_expand_conv|_project_conv)"
    return r".*pretrained_tower\.backbone\..*\.(q_proj|k_proj|v_proj|out_proj|fc1|fc2)"


def wrap_with_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.0):
    """LoRA on the frozen tower; every other top-level module stays fully trainable (saved as `modules_to_save`)."""
    from peft import LoraConfig, get_peft_model

    if getattr(model, "pretrained_tower", None) is None:
        raise ValueError("--lora_backbone needs a pretrained tower (this preset has pretrained_tower='none')")
    prepare_tower_for_lora(model)
    trainable = [name for name, _ in model.named_children() if name != "pretrained_tower"]
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=lora_target_regex(model.config),
                        modules_to_save=trainable)
    return get_peft_model(model, config)


def prepare_tower_for_lora(model):
    """Call on a base model before `get_peft_model` / `PeftModel.from_pretrained` (a no-op for HF towers)."""
    if model.config.pretrained_tower == "efficientnet_lite0":
        _plain_pointwise_convs(model.pretrained_tower)
    return model


def _plain_pointwise_convs(tower) -> None:
    """EfficientNet's 1x1 convs are `Conv2dStaticSamePadding`, which PEFT cannot clone for its LoRA factors (it needs
    an `image_size`). For a 1x1, stride-1 conv the padding is the identity, so the module is exactly an `nn.Conv2d`:
    re-class it in place (same parameters, same state-dict keys, same outputs)."""
    from torch import nn

    for name, module in tower.named_modules():
        if name.rsplit(".", 1)[-1] in ("_expand_conv", "_project_conv") and isinstance(module, nn.Conv2d):
            if module.kernel_size == (1, 1) and module.stride == (1, 1) and type(module) is not nn.Conv2d:
                module.__class__ = nn.Conv2d


def freeze_all_but(model, module_name: str) -> None:
    """N2N phase: only `module_name` (the adapter) learns."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith(module_name + ".")


def _text_nll(text_logits, text_labels, batch: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample summed next-token NLL and number of scored tokens (HF causal-LM shift)."""
    if text_logits is None or text_labels is None:
        return torch.zeros(batch, device=device), torch.zeros(batch, device=device)
    labels = text_labels[:, 1:]
    mask = labels != -100
    nll = torch.nn.functional.cross_entropy(
        text_logits[:, :-1].float().transpose(1, 2), labels.clamp_min(0), reduction="none"
    )
    return (nll * mask).sum(-1), mask.sum(-1).float()
