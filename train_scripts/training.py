"""Trainer pieces of run_multimodal.py: the multi-task Trainer subclass, the NaN guard, callbacks, LoRA helpers."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import Trainer, TrainerCallback

from vision_trm.configuration.conventions import IGNORE_INDEX
from vision_trm.modeling_trm.losses import shifted_text_cross_entropy
from vision_trm.train_scripts.arc_batches import SimilarCanvasSampler
from vision_trm.train_scripts.arc_voting import task_view_table, trained_view_parts

EXTRA_LOSS_TERMS = ("grid_loss", "classification_loss", "text_loss", "halting_loss", "concept_loss", "n2n_loss")


class NonFiniteLossError(RuntimeError):
    """Training stopped before a NaN / inf could reach the weights; the message names the step and the batch."""


def task_embedding_parameter_groups(model, decay_parameter_names, weight_decay: float,
                                    task_embedding_learning_rate: float) -> list[dict]:
    """Optimizer groups of the ARC recipe: the trainable parameters named in `decay_parameter_names` with
    `weight_decay`, the others without, both at the optimizer's learning rate; and the task embeddings in a group of
    their own at `task_embedding_learning_rate` without decay (TRM's puzzle embeddings)."""
    decay = set(decay_parameter_names)
    named = [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
    task = [parameter for name, parameter in named if name.endswith("task_embeddings.weight")]
    if not task:
        raise ValueError("task_embedding_learning_rate is set but the model has no trainable task_embeddings")
    rest = [(name, parameter) for name, parameter in named if not name.endswith("task_embeddings.weight")]
    return [
        {"params": [parameter for name, parameter in rest if name in decay], "weight_decay": weight_decay},
        {"params": [parameter for name, parameter in rest if name not in decay], "weight_decay": 0.0},
        {"params": task, "weight_decay": 0.0, "lr": task_embedding_learning_rate},
    ]


class TRMTrainer(Trainer):
    """`Trainer` with the additions the multi-task, deep-supervision model needs.

    * A NaN guard: a non-finite loss or gradient raises `NonFiniteLossError` naming the optimizer step and the
      micro-batch, and no NaN weight is ever written (checkpoints stay clean). With a fused optimizer (the
      default `adamw_torch_fused`) the guard never waits for the GPU: the step's finiteness stays on the device,
      the optimizer skips a non-finite update there (its `found_inf`, as `GradScaler` uses it), and the host reads
      the flag one micro-batch later, before any checkpoint and at the end of training. Reading it at once synced
      the GPU twice a step, which left it waiting on the host. Other optimizers are checked at once.
    * Logging of the model's extra outputs, averaged over each logging window: every loss term, the fusion gate mean,
      the mean halting step, the planner weights' entropy and the concept-vocabulary usage.
    * The ARC recipe: with `arc_bank` (an `ArcPairBank` on the training device) a micro-batch of `arc_pair_index`
      becomes augmented model inputs on the device, seeded by (seed, optimizer step, process, micro-batch), so a
      resumed run draws the views an uninterrupted one would, drawing at random the parts of a view the model's
      `config.arc_view_parts` names. With `task_embedding_learning_rate` the task
      embeddings are their own optimizer group at that learning rate, without weight decay (TRM: 1e-2, against
      1e-4 for the network): each task's rows see only that task's few pairs. With cropped cell canvases
      (`crop_cell_canvas`) micro-batches hold pairs of similar canvas size (`SimilarCanvasSampler`).

    The model computes its own loss (`TRMForMultitaskReasoning`, or `TRMForN2NPretraining` for the adapter phase).
    """

    def __init__(self, *args, arc_bank=None, arc_copy_fraction: float = 0.0, arc_canvas_slack: int = 0,
                 task_embedding_learning_rate: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.arc_bank = arc_bank
        self.arc_copy_fraction = arc_copy_fraction
        self.arc_canvas_slack = arc_canvas_slack
        self.task_embedding_learning_rate = task_embedding_learning_rate
        self._extra_sums: dict[str, float] = {}
        self._extra_counts: dict[str, int] = {}
        self._micro_batch = 0
        self._micro_batch_in_step = (-1, 0)  # (optimizer step, micro-batches seen in it)
        # The NaN guard's device-side state: the current optimizer step's loss flag, and the last micro-batch's
        # verdict waiting to be read (see `_defer_finite_check`).
        self._loss_finite, self._loss_finite_step = None, None
        self._pending_check = None
        self._pending_flags = None  # pinned host buffer the verdict is copied into

    # ------------------------------------------------------------------------------------------- optimizer
    def create_optimizer(self, model=None):
        if self.optimizer is None and self.task_embedding_learning_rate:
            self.optimizer = self._optimizer_with_task_embedding_group(self.model if model is None else model)
        return super().create_optimizer(model)

    def _optimizer_with_task_embedding_group(self, model):
        groups = task_embedding_parameter_groups(model, self.get_decay_parameter_names(model), self.args.weight_decay,
                                                 self.task_embedding_learning_rate)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        return optimizer_cls(groups, **optimizer_kwargs)

    # ------------------------------------------------------------------------------------------------ loss
    def _arc_inputs(self, pair_indices: torch.Tensor) -> dict:
        """Augmented ARC inputs of one micro-batch of pair indices, drawn on the training device."""
        step, seen = self._micro_batch_in_step
        seen = seen + 1 if step == self.state.global_step else 0
        self._micro_batch_in_step = (self.state.global_step, seen)
        seed = hash((self.args.seed, self.state.global_step, self.args.process_index, seen)) % (2**62)
        generator = torch.Generator(device=pair_indices.device).manual_seed(seed)
        image_processor = self.processing_class.image_processor
        return self.arc_bank.batch(pair_indices, image_processor, generator, augment=True,
                                   copy_fraction=self.arc_copy_fraction, canvas_slack=self.arc_canvas_slack,
                                   view_parts=trained_view_parts(self.model), views=task_view_table(self.model))

    def _get_train_sampler(self, *args, **kwargs):
        # Cropped cell canvases: a micro-batch costs its largest pair's canvas, so batch pairs of similar size.
        if self.arc_bank is not None and self.arc_bank.canvas_cells is not None:
            return SimilarCanvasSampler(self.arc_bank.canvas_cells, self.args.per_device_train_batch_size,
                                        seed=self.args.seed)
        return super()._get_train_sampler(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        sources = inputs.pop("row_sources", None)
        if "arc_pair_index" in inputs:
            if self.arc_bank is None:
                raise ValueError("a batch of arc_pair_index needs TRMTrainer(arc_bank=...)")
            inputs = self._arc_inputs(inputs.pop("arc_pair_index"))
            # The bank's pairs were checked when it was built: re-checking each batch's values would sync the GPU.
            inputs["check_input_values"] = False
        outputs = model(**inputs)
        loss = outputs["loss"]
        if model.training:
            self._micro_batch += 1
            finite = torch.isfinite(loss.detach()).all()
            if not self._skips_non_finite_steps_on_device():
                if not finite:
                    raise NonFiniteLossError(self._where(f"non-finite loss ({loss.item()})", sources))
            elif self._loss_finite_step == self.state.global_step:
                self._loss_finite = self._loss_finite & finite
            else:
                self._loss_finite, self._loss_finite_step = finite, self.state.global_step
            self._record(outputs)
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Returns small, fixed-shape predictions for `compute_metrics` instead of every logit tensor.

        predictions: (class argmax [B], grid prediction [B, G, G] with IGNORE_INDEX outside its size, text NLL sum
        [B], scored text tokens [B]); labels: (class labels [B], grid labels [B, G, G]).
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
        side = model.config.max_grid_size

        def present_or_ignored(value, shape):
            return value if value is not None else torch.full(shape, IGNORE_INDEX, device=device)

        class_predictions = outputs.class_logits.argmax(-1) if outputs.class_logits is not None else None
        text_nll = text_tokens = torch.zeros(batch, device=device)
        if outputs.text_logits is not None and inputs.get("text_labels") is not None:
            text_nll, text_tokens = shifted_text_cross_entropy(outputs.text_logits, inputs["text_labels"])
        predictions = (present_or_ignored(class_predictions, (batch,)),
                       present_or_ignored(outputs.grid_predictions, (batch, side, side)), text_nll, text_tokens.float())
        labels = (present_or_ignored(inputs.get("labels"), (batch,)),
                  present_or_ignored(inputs.get("grid_labels"), (batch, side, side)))
        return loss, predictions, labels

    def training_step(self, model, inputs, num_items_in_batch=None):
        sources = inputs.get("row_sources")
        loss = super().training_step(model, inputs, num_items_in_batch)
        named = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
        # One fused norm per gradient: a norm is finite exactly when its tensor is. (A check per parameter synced
        # ~115 times a step, which left the GPU idle half of each ARC-recipe step.)
        norms = torch.stack(torch._foreach_norm([grad for _, grad in named])) if named else None
        if not self._skips_non_finite_steps_on_device():
            if norms is not None and not bool(torch.isfinite(norms).all()):
                bad = [name for (name, _), norm in zip(named, norms) if not torch.isfinite(norm)]
                raise NonFiniteLossError(self._where(f"non-finite gradient in {bad[:3]}", sources))
            return loss
        # This micro-batch's backward is queued behind the last one's verdict, so reading that verdict now does
        # not wait for the GPU; raising here still comes before this step's optimizer update.
        self.check_deferred_non_finite()
        grads_finite = torch.isfinite(norms).all() if norms is not None else torch.ones((), dtype=torch.bool)
        finite = self._loss_finite & grads_finite.to(self._loss_finite.device)
        self._inner_optimizer().found_inf = (~finite).float()  # 1: the fused step leaves every tensor as it is
        self._defer_finite_check(self._loss_finite, grads_finite, norms, [name for name, _ in named], sources)
        return loss

    # ------------------------------------------------------------------------------------ the NaN guard
    def _inner_optimizer(self):
        return getattr(self.optimizer, "optimizer", self.optimizer)  # under accelerate's AcceleratedOptimizer

    def _skips_non_finite_steps_on_device(self) -> bool:
        """Whether the optimizer can skip an update on the device: fused Adam / AdamW take `found_inf` (not with a
        loss scaler, which sets it itself)."""
        return (self.optimizer is not None and self.accelerator.scaler is None
                and getattr(self._inner_optimizer(), "_step_supports_amp_scaling", False))

    def _defer_finite_check(self, loss_finite, grads_finite, norms, names, sources) -> None:
        flags = torch.stack([loss_finite, grads_finite.to(loss_finite.device)])
        if flags.is_cuda:
            if self._pending_flags is None:
                self._pending_flags = torch.empty(2, dtype=torch.bool, pin_memory=True)
            self._pending_flags.copy_(flags, non_blocking=True)  # read only after this call's event
            ready = torch.cuda.Event()
            ready.record()
            flags = self._pending_flags
        else:
            ready = None
        self._pending_check = (flags, ready, norms, names, sources, self._where_now())

    def check_deferred_non_finite(self) -> None:
        """Raises `NonFiniteLossError` if the last micro-batch checked on the device had a non-finite loss or
        gradient (its optimizer update was skipped there). Called by the next micro-batch, before every checkpoint
        and at the end of `train`."""
        if self._pending_check is None:
            return
        flags, ready, norms, names, sources, where = self._pending_check
        self._pending_check = None
        if ready is not None:
            ready.synchronize()  # waits for that copy only, not for the work queued since
        loss_finite, grads_finite = bool(flags[0]), bool(flags[1])
        if loss_finite and grads_finite:
            return
        if not loss_finite:
            what = "non-finite loss"
        else:
            bad = [name for name, norm in zip(names, norms.cpu()) if not torch.isfinite(norm)]
            what = f"non-finite gradient in {bad[:3]}"
        raise NonFiniteLossError(self._where(what, sources, where, skipped_on_device=True))

    def train(self, *args, **kwargs):
        self._pending_check, self._loss_finite_step = None, None
        result = super().train(*args, **kwargs)
        self.check_deferred_non_finite()
        return result

    def _save_checkpoint(self, *args, **kwargs):
        self.check_deferred_non_finite()  # never write a checkpoint after a step the guard has not cleared
        return super()._save_checkpoint(*args, **kwargs)

    def _where_now(self) -> tuple[int, int, float]:
        return self.state.global_step + 1, self._micro_batch, self.state.epoch or 0.0

    def _where(self, what: str, sources, where: tuple | None = None, skipped_on_device: bool = False) -> str:
        step, micro_batch, epoch = where or self._where_now()
        batch = f"micro-batch {micro_batch} (epoch {epoch:.2f})"
        named = ""
        if sources:
            kinds = sorted({s.split(":")[0] for s in sources})
            named = f"; the batch held {len(sources)} rows from {kinds}, first {sources[:4]}"
        stopped = ("The optimizer skipped that update on the device and training stopped" if skipped_on_device
                   else "Training stopped before the optimizer step")
        return (f"NaN guard: {what} at optimizer step {step}, {batch}{named}. {stopped}, so no NaN weights were "
                "written; the last good checkpoint is intact (lower the learning rate or inspect that batch).")

    # --------------------------------------------------------------------------------------------- logging
    def _add(self, name: str, value) -> None:
        """Adds one step's value to its logging window, on the value's device: reading it on the host every step
        would sync the GPU several times a step; `log` reads the window's sums once."""
        if value is None:
            return
        value = torch.as_tensor(value, dtype=torch.float32).detach()
        finite = torch.isfinite(value)
        self._extra_sums[name] = self._extra_sums.get(name, 0.0) + torch.where(finite, value, 0.0)
        self._extra_counts[name] = self._extra_counts.get(name, 0) + finite.float()

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
                count = float(self._extra_counts[name])
                if count:  # a term that was never finite in the window is left out, as a NaN would be
                    logs[name] = round(float(total) / count, 5)
            self._extra_sums, self._extra_counts = {}, {}
        super().log(logs, start_time)


class WeightEMACallback(TrainerCallback):
    """An exponential moving average of the trainable weights (TRM and VARC evaluate with one, decay 0.999).

    The average is updated after every optimizer step, with the usual warm-up `min(decay, (1 + t) / (10 + t))` so
    early weights do not linger; it is saved beside each checkpoint as `ema.safetensors` and read back from
    `resume_from` (the checkpoint folder a resumed run starts from). At the end of training it replaces the
    weights, so what is saved and evaluated afterwards is the average.
    """

    FILE_NAME = "ema.safetensors"

    def __init__(self, decay: float = 0.999, resume_from: str | None = None):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.resume_from = resume_from
        self.average: dict[str, torch.Tensor] = {}

    @staticmethod
    def _trainable(model) -> dict[str, torch.Tensor]:
        return {name: p for name, p in model.named_parameters() if p.requires_grad}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        parameters = self._trainable(model)
        self.average = {name: p.detach().clone().float() for name, p in parameters.items()}
        if self.resume_from:
            path = Path(self.resume_from) / self.FILE_NAME
            if not path.is_file():
                raise FileNotFoundError(f"resuming with an EMA needs {path}: that checkpoint was saved without one")
            saved = load_file(str(path), device=str(next(iter(self.average.values())).device))
            if set(saved) != set(self.average):
                raise ValueError(f"{path} holds other parameters than the model's trainable ones")
            self.average = saved

    @torch.no_grad()
    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        decay = min(self.decay, (1 + step) / (10 + step))
        parameters = self._trainable(model)
        names = list(self.average)
        torch._foreach_lerp_([self.average[n] for n in names], [parameters[n].detach().float() for n in names],
                             1.0 - decay)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                save_file({n: t.contiguous() for n, t in self.average.items()}, str(folder / self.FILE_NAME))

    @torch.no_grad()
    def on_train_end(self, args, state, control, model=None, **kwargs):
        for name, parameter in self._trainable(model).items():
            parameter.copy_(self.average[name].to(parameter.dtype))


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


class FitScheduleToTimeCallback(TrainerCallback):
    """Fits the learning-rate schedule to a wall-clock budget, so that `fraction` of it has run when the budget ends.

    Runs compared "at equal time" should each anneal as far as the others, whatever their speed; a fixed
    `max_steps` guessed before the run cannot promise that (a faster arm finishes early, a slower one is cut at a high
    learning rate). After `measure_after` steps (compilation happens in the first ones) every step re-estimates the
    seconds per step from the steps since then, and sets the schedule's length to
    `(steps so far + steps the rest of the budget holds) / fraction`, never above `args.max_steps`, which stays the
    upper bound. `TimeBudgetCallback` still does the stopping. Works with the Trainer's warm-up schedules (linear,
    cosine, polynomial...), whose `LambdaLR` holds a `functools.partial` with `num_training_steps`; a resumed run fits
    the rest of its schedule to the budget of its own call.
    """

    def __init__(self, minutes: float, fraction: float = 1.0, measure_after: int = 10, clock=time.time):
        if minutes <= 0:
            raise ValueError(f"fitting the schedule to time needs a time budget (--max_train_minutes > 0), got {minutes}")
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"the share of the schedule run by the time cap must lie in (0, 1], got {fraction}")
        self.seconds, self.fraction, self.measure_after, self.clock = minutes * 60, fraction, measure_after, clock
        self.start = self.mark = self.mark_step = None

    @staticmethod
    def _refittable(lr_scheduler):
        """The `LambdaLR` under `lr_scheduler`, or a ValueError if its length cannot be refitted."""
        scheduler = getattr(lr_scheduler, "scheduler", lr_scheduler)  # accelerate's AcceleratedScheduler wraps it
        lambdas = getattr(scheduler, "lr_lambdas", None)
        if not lambdas or not all(isinstance(f, partial) and "num_training_steps" in f.keywords for f in lambdas):
            raise ValueError(f"cannot fit {type(scheduler).__name__} to a time budget: it needs one of the Trainer's "
                             "warm-up schedules (a LambdaLR over functools.partial(..., num_training_steps=...))")
        return scheduler

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        self._refittable(lr_scheduler)  # fail before the first step, not after compilation
        self.start, self.mark, self.mark_step = self.clock(), None, None

    def on_step_end(self, args, state, control, lr_scheduler=None, **kwargs):
        now, step = self.clock(), state.global_step
        if self.mark is None:
            if step >= self.measure_after:
                self.mark, self.mark_step = now, step
            return control
        if step == self.mark_step:
            return control
        seconds_per_step = (now - self.mark) / (step - self.mark_step)
        steps_left = max(0.0, self.seconds - (now - self.start)) / seconds_per_step
        total = min(args.max_steps, max(step + 1, round((step + steps_left) / self.fraction)))
        state.max_steps = total
        scheduler = self._refittable(lr_scheduler)
        scheduler.lr_lambdas = [partial(f.func, *f.args, **{**f.keywords, "num_training_steps": total})
                                for f in scheduler.lr_lambdas]
        return control


def compile_compute_blocks(model, **compile_options) -> None:
    """`torch.compile`s the trainable ViT's encoder and the recursion, which hold nearly all the FLOPs and have no
    data-dependent control flow (`compile_options` go to `nn.Module.compile`, e.g. `backend=`).

    The encoder, not the whole ViT: the ViT's position-embedding slice specialises a graph to each cropped canvas
    size, so a cropped run recompiled for every new size (the first 784 steps of a 7.5-min H200 call took 221 s).
    Without it, the second size compiles a graph for symbolic sizes and no later size recompiles.
    """
    trm = model.trm if hasattr(model, "trm") else model
    vit = trm.trainable_vit
    for block in (vit.encoder if vit is not None else None, trm.reasoning_core):
        if block is not None:
            block.compile(**compile_options)


def measured_throughput(metrics: dict, steps: int, samples_per_step: int) -> dict:
    """`Trainer.train()`'s metrics with the speed of what ran: the Trainer computes `train_samples_per_second` and
    `train_steps_per_second` from `max_steps`, which overstates them whenever `TimeBudgetCallback` stops a run early
    (by 23x for a 5-minute run with `max_steps` 100000). `samples_per_step` counts every process."""
    runtime = max(metrics["train_runtime"], 1e-9)
    speed = round(steps * samples_per_step / runtime, 1)
    # measured_train_samples_per_second is the name earlier records in benchmarks/results use.
    return dict(metrics, steps_run=steps, train_samples=steps * samples_per_step,
                train_steps_per_second=round(steps / runtime, 3), train_samples_per_second=speed,
                measured_train_samples_per_second=speed)


# ------------------------------------------------------------------------------------------------------ LoRA
def lora_target_regex(config) -> str:
    """PEFT `target_modules` regex for the pretrained tower's attention / MLP layers (1x1 convs for EfficientNet)."""
    if config.pretrained_tower == "efficientnet_lite0":
        return r".*pretrained_tower\.backbone\..*\.(_expand_conv|_project_conv)"
    return r".*pretrained_tower\.backbone\..*\.(q_proj|k_proj|v_proj|out_proj|fc1|fc2)"


def wrap_with_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.0):
    """LoRA on the frozen tower; every other block of the base model stays fully trainable (`modules_to_save`)."""
    base = model.base_model
    if base.pretrained_tower is None:
        raise ValueError("--lora_backbone needs a pretrained tower (this preset has pretrained_tower='none')")
    prepare_tower_for_lora(model)
    # The tower's projection into the model width is ours, not the pretrained backbone's: it trains in full, as
    # without LoRA (named by its full suffix: PEFT matches names by suffix, and CLIP has a `visual_projection`).
    trainable = [name for name, _ in base.named_children() if name != "pretrained_tower"]
    trainable.append("pretrained_tower.projection")
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=lora_target_regex(model.config),
                        modules_to_save=trainable)
    return get_peft_model(model, config)


def prepare_tower_for_lora(model):
    """Call on a model before `get_peft_model` / `PeftModel.from_pretrained` (a no-op for HF towers)."""
    if model.config.pretrained_tower == "efficientnet_lite0":
        _plain_pointwise_convs(model.base_model.pretrained_tower)
    return model


def _plain_pointwise_convs(tower) -> None:
    """EfficientNet's 1x1 convs are `Conv2dStaticSamePadding`, which PEFT cannot clone for its LoRA factors (it needs
    an `image_size`). For a 1x1, stride-1 conv the padding is the identity, so the module is exactly an `nn.Conv2d`:
    re-class it in place (same parameters, same state-dict keys, same outputs)."""
    for name, module in tower.named_modules():
        if name.rsplit(".", 1)[-1] in ("_expand_conv", "_project_conv") and isinstance(module, nn.Conv2d):
            if module.kernel_size == (1, 1) and module.stride == (1, 1) and type(module) is not nn.Conv2d:
                module.__class__ = nn.Conv2d


def freeze_all_but(model, module_name: str) -> None:
    """N2N phase: only `module_name` (the adapter) learns."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith(module_name + ".")
