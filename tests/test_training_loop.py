"""The training loop's own pieces: the schedule fitted to a time budget, the NaN guard, the logged terms, and the
ARC recipe step's reads of device values (GPU syncs)."""

from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments, get_scheduler

from vision_trm.train_scripts.training import FitScheduleToTimeCallback


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def run_steps(seconds_per_step, budget_s, fraction, max_steps=10_000, first_step_s=30.0, scheduler_type="cosine"):
    """Steps a real Trainer scheduler under the callback until the budget runs out; returns (steps, lrs, state)."""
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    scheduler = get_scheduler(scheduler_type, optimizer, num_warmup_steps=5, num_training_steps=max_steps)
    args = TrainingArguments(output_dir="unused", max_steps=max_steps, report_to="none")
    state, control, clock = TrainerState(max_steps=max_steps), TrainerControl(), FakeClock()
    callback = FitScheduleToTimeCallback(budget_s / 60, fraction, clock=clock)
    callback.on_train_begin(args, state, control, lr_scheduler=scheduler)
    lrs = []
    while clock.now < budget_s and state.global_step < state.max_steps:
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
        clock.now += first_step_s if state.global_step == 0 else seconds_per_step  # the first step compiles
        state.global_step += 1
        callback.on_step_end(args, state, control, lr_scheduler=scheduler)
    return state.global_step, lrs, state


@pytest.mark.parametrize("seconds_per_step", [0.05, 0.2])
def test_the_schedule_ends_with_the_budget_at_any_speed(seconds_per_step):
    steps, lrs, state = run_steps(seconds_per_step, budget_s=120, fraction=1.0)
    expected = (120 - 30) / seconds_per_step
    assert abs(steps - expected) <= 0.02 * expected
    assert abs(state.max_steps - steps) <= 2  # the schedule's length is what the budget held
    assert lrs[-1] < 0.01 and max(lrs) > 0.99  # annealed to ~0 at the cap, after a full warm-up


def test_a_fraction_leaves_the_schedule_that_far_along_at_the_cap():
    steps, lrs, state = run_steps(0.1, budget_s=120, fraction=0.8)
    assert abs(steps / state.max_steps - 0.8) < 0.01
    assert abs(lrs[-1] - 0.5 * (1 + torch.cos(torch.tensor(0.8 * torch.pi)).item())) < 0.02


def test_max_steps_stays_the_upper_bound():
    steps, lrs, state = run_steps(0.01, budget_s=120, fraction=1.0, max_steps=500)
    assert steps == 500 and state.max_steps == 500
    assert lrs[-1] < 0.001


def test_a_schedule_it_cannot_refit_and_a_missing_budget_are_named():
    with pytest.raises(ValueError, match="--max_train_minutes"):
        FitScheduleToTimeCallback(0)
    with pytest.raises(ValueError, match="share of the schedule"):
        FitScheduleToTimeCallback(1, fraction=1.5)
    with pytest.raises(ValueError, match="cannot fit"):
        run_steps(0.1, budget_s=60, fraction=1.0, scheduler_type="constant")


# ------------------------------------------------------------------ the NaN guard
class TwoLayers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.first, self.second = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)

    def forward(self, x, y):
        return {"loss": ((self.second(self.first(x)).squeeze(-1) - y) ** 2).mean()}


def guarded_run(tmp_path, optim, nan_at_step, save_steps=100, max_steps=3):
    """Trains TwoLayers with a NaN gradient in `second.weight` at optimizer step `nan_at_step` (the loss stays
    finite); returns (the error, the weights before, the model, the trainer)."""
    from vision_trm.train_scripts.training import NonFiniteLossError, TRMTrainer

    torch.manual_seed(0)
    model = TwoLayers()
    steps_seen = [0]

    def poison(grad):
        steps_seen[0] += 1
        return grad * float("nan") if steps_seen[0] == nan_at_step else grad

    model.second.weight.register_hook(poison)
    rows = [{"x": torch.randn(2), "y": torch.randn(())} for _ in range(4 * max_steps)]
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=max_steps, per_device_train_batch_size=4,
                             report_to="none", use_cpu=True, remove_unused_columns=False, disable_tqdm=True,
                             optim=optim, save_steps=save_steps, learning_rate=0.1)
    trainer = TRMTrainer(model=model, args=args, train_dataset=rows)
    weights = []

    class Snapshot(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            weights.append({n: p.detach().clone() for n, p in model.named_parameters()})

    trainer.add_callback(Snapshot())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(NonFiniteLossError) as error:
        trainer.train()
    return str(error.value), [before] + weights, trainer


def test_a_fused_optimizer_skips_the_non_finite_update_on_the_device_and_the_guard_names_it(tmp_path):
    """The default optimizer (`adamw_torch_fused`) takes the step's verdict as `found_inf` and leaves every tensor as
    it was; the host learns of it at the next micro-batch and names the step and the gradient."""
    message, weights, trainer = guarded_run(tmp_path, "adamw_torch_fused", nan_at_step=2)
    assert trainer._skips_non_finite_steps_on_device()
    assert "non-finite gradient in ['second.weight']" in message and "optimizer step 2" in message
    assert "skipped that update on the device" in message and "no NaN weights" in message
    assert not torch.equal(weights[1]["second.weight"], weights[0]["second.weight"])  # step 1 updated
    for name in weights[1]:
        assert torch.equal(weights[2][name], weights[1][name])  # step 2 was skipped, every tensor as it was
    state = trainer.optimizer.optimizer.state[trainer.model.second.weight]
    assert float(state["step"]) == 1.0  # the skipped step is not counted either


def test_a_checkpoint_is_never_written_after_a_step_the_guard_has_not_cleared(tmp_path):
    message, _, _ = guarded_run(tmp_path, "adamw_torch_fused", nan_at_step=2, save_steps=1)
    assert "optimizer step 2" in message
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-1"]


def test_an_optimizer_without_found_inf_is_checked_before_its_step(tmp_path):
    message, weights, trainer = guarded_run(tmp_path, "adamw_torch", nan_at_step=1)
    assert not trainer._skips_non_finite_steps_on_device()
    assert "non-finite gradient in ['second.weight']" in message and "optimizer step 1" in message
    assert "before the optimizer step" in message
    assert len(weights) == 1  # it stopped inside step 1, before its update


def test_logged_terms_average_their_finite_values_over_the_window(tmp_path):
    from vision_trm.train_scripts.training import TRMTrainer

    args = TrainingArguments(output_dir=str(tmp_path), max_steps=1, report_to="none", use_cpu=True,
                             remove_unused_columns=False, disable_tqdm=True)
    trainer = TRMTrainer(model=TwoLayers(), args=args, train_dataset=[{"x": torch.randn(2), "y": torch.randn(())}])
    for value in (1.0, float("nan"), 3.0):
        trainer._add("grid_loss", torch.tensor(value))
    trainer._add("halting_loss", torch.tensor(float("inf")))
    trainer.log({"loss": 0.5})
    logged = trainer.state.log_history[-1]
    assert logged["grid_loss"] == pytest.approx(2.0) and "halting_loss" not in logged
    trainer._add("grid_loss", torch.tensor(5.0))  # a new window starts empty
    trainer.log({"loss": 0.5})
    assert trainer.state.log_history[-1]["grid_loss"] == pytest.approx(5.0)


# ------------------------------------------------------------------ compiling for cropped canvases
def run_sides(model, sides):
    from vision_trm.configuration import MODALITY_GRID

    px = model.config.patch_size
    views = torch.cat([torch.zeros(2, 1, dtype=torch.long), torch.arange(10).expand(2, -1)], 1)
    for side in sides:
        outputs = model(pixel_values=torch.randn(2, 3, side * px, side * px), modality_ids=torch.full((2,), MODALITY_GRID),
                        task_ids=torch.tensor([1, 2]), augmentation_ids=views)
        outputs.cell_logits.float().mean().backward()


def test_cropped_canvases_stop_recompiling_after_the_second_size():
    """After two canvas sizes the compiled blocks hold a graph for symbolic sizes: new sizes must not recompile.
    The ViT's encoder is what is compiled, not the whole ViT: under inductor the ViT's position slice specialises the
    graph to each size (seen on the H200, and on this CPU with torch 2.13: one recompile per size); `aot_eager`
    traces the same graphs without inductor's code generation, to keep this test fast."""
    import torch._dynamo

    from vision_trm.configuration import TRMConfig
    from vision_trm.modeling_trm import TRMForMultitaskReasoning
    from vision_trm.train_scripts.training import compile_compute_blocks

    torch._dynamo.reset()
    config = TRMConfig.from_preset("arc-tiny", num_task_ids=3, hidden_size=16, num_attention_heads=2,
                                   crop_cell_canvas=True)
    model = TRMForMultitaskReasoning(config)
    compile_compute_blocks(model, backend="aot_eager")
    vit = model.trm.trainable_vit
    assert vit._compiled_call_impl is None and vit.encoder._compiled_call_impl is not None
    assert model.trm.reasoning_core._compiled_call_impl is not None
    try:
        run_sides(model, [6, 9])
        with torch._dynamo.config.patch(error_on_recompile=True):
            run_sides(model, [14, 32, 7])
    finally:
        torch._dynamo.reset()


# ------------------------------------------------------------------ host reads per step (GPU syncs)
SYNCING_OPS = {"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique", "_unique2", "unique_dim",
               "unique_consecutive", "bincount", "equal", "is_nonzero", "allclose", "repeat_interleave"}


def synchronising_ops_of_recipe_steps(tmp_path, monkeypatch, overrides: dict) -> dict:
    """Every aten op that reads device values on the host (`.item()`, `bool()`, `nonzero`, a boolean-mask index...)
    during steady steps 3-6 of the ARC recipe on the CPU, keyed by (op, the innermost repository function): on a GPU
    each one waits for all queued work, and the host cannot run ahead of the GPU past it."""
    import json
    import traceback
    from collections import Counter

    from torch.utils._python_dispatch import TorchDispatchMode
    from transformers import TrainerCallback

    from vision_trm.train_scripts import run_multimodal

    training = [{"id": f"train{i}", "train": [{"input": [[i % 10, 1]], "output": [[1, i % 10]]}] * 2,
                 "test": [{"input": [[2, 3]], "output": [[3, 2]]}]} for i in range(3)]
    evaluation = [{"id": "eval0", "train": [{"input": [[4, 5]], "output": [[5, 4]]}],
                   "test": [{"input": [[6, 7]], "output": [[7, 6]]}]}]
    monkeypatch.setattr(run_multimodal, "load_arc_tasks", lambda version: (training, evaluation))
    found, counting = Counter(), [False]
    root = Path(run_multimodal.__file__).resolve().parents[1]
    package = tuple(str(root / folder) for folder in ("configuration", "processing", "modeling_trm", "train_scripts"))

    def syncs(func, args):
        name = func._overloadpacket.__name__
        if name in ("index", "index_put", "index_put_", "_index_put_impl_"):
            return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] or []))
        if name == "repeat_interleave":  # a tensor of repeats, not an int, needs its sum on the host
            return isinstance(args[1] if len(args) > 1 else None, torch.Tensor)
        return name in SYNCING_OPS

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if counting[0] and syncs(func, args):
                ours = [f.name for f in traceback.extract_stack() if f.filename.startswith(package)]
                found[(func._overloadpacket.__name__, ours[-1] if ours else "?")] += 1
            return func(*args, **(kwargs or {}))

    class CountSteps(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            counting[0] = state.global_step >= 2

        def on_step_end(self, args, state, control, **kwargs):
            counting[0] = False

    class CountingTrainer(run_multimodal.TRMTrainer):
        def __init__(self, *args, callbacks=None, **kwargs):
            super().__init__(*args, callbacks=list(callbacks or []) + [CountSteps()], **kwargs)

    monkeypatch.setattr(run_multimodal, "TRMTrainer", CountingTrainer)
    with Watch():
        run_multimodal.main(["--recipe", "arc", "--output_dir", str(tmp_path / "run"), "--per_device_train_batch_size",
                             "2", "--max_steps", "6", "--save_steps", "100", "--logging_steps", "100",
                             "--max_train_minutes", "0", "--use_cpu", "True", "--skip_final_eval", "True",
                             "--config_overrides", json.dumps({"hidden_size": 16, "num_attention_heads": 2,
                                                               **overrides})])
    return {key: count / 4 for key, count in found.items()}


def test_an_arc_recipe_step_never_waits_for_the_device(tmp_path, monkeypatch):
    """With recursion off (the ARC headline's arm) a steady step makes no read of device values at all, except the
    NaN guard's verdict of the micro-batch before, which on a GPU is a pinned host copy read after its own event
    (2 reads here, where the CPU holds it). Once ~144 reads a step, then ~14, left an H200 idle half of each step."""
    found = synchronising_ops_of_recipe_steps(tmp_path, monkeypatch, {"H_cycles": 1, "L_cycles": 1,
                                                                      "deep_supervision_steps": 1})
    assert found == {("_local_scalar_dense", "check_deferred_non_finite"): 2.0}, found


def test_with_deep_supervision_only_the_halting_exit_reads_the_device(tmp_path, monkeypatch):
    """Two supervision steps: one more read, whether every sample has halted after the first (it saves the second
    step's compute at inference; after the last step it is not asked)."""
    found = synchronising_ops_of_recipe_steps(tmp_path, monkeypatch, {})
    assert found == {("_local_scalar_dense", "check_deferred_non_finite"): 2.0,
                     ("_local_scalar_dense", "forward"): 1.0}, found
