"""Training script reliability on CPU: learning, kill-and-resume, NaN guard, LoRA adapter round trip."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import vision_trm.train_scripts.run_multimodal as run_multimodal
from vision_trm.train_scripts.run_multimodal import main

ROOT = Path(__file__).resolve().parent.parent

TINY = json.dumps({"concept_vocab_size": 32, "planner_num_paths": 2, "vit_num_layers": 1, "adapter_num_layers": 1})


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("composite")


def args(output_dir, cache, *extra, steps=8, preset="tiny"):
    return ["--preset", preset, "--config_overrides", TINY, "--output_dir", str(output_dir),
            "--data_cache_dir", str(cache), "--max_samples_per_source", "48", "--max_eval_samples", "8",
            "--arc_augmentations", "1", "--max_train_minutes", "0", "--skip_final_eval",
            "--per_device_train_batch_size", "8", "--max_steps", str(steps), "--logging_steps", "1",
            "--save_steps", "4", "--disable_tqdm", "True", "--seed", "7", *extra]


def losses(output_dir):
    history = json.loads((Path(output_dir) / "log_history.json").read_text())
    return {e["step"]: e["loss"] for e in history if "loss" in e}


def test_loss_decreases(tmp_path, cache):
    out = tmp_path / "run"
    main(args(out, cache, "--learning_rate", "3e-3", steps=16))
    by_step = losses(out)
    first, last = [by_step[s] for s in sorted(by_step)[:4]], [by_step[s] for s in sorted(by_step)[-4:]]
    assert sum(last) / 4 < sum(first) / 4, by_step
    assert (out / "model.safetensors").is_file() and (out / "processor_config.json").is_file()
    assert (out / "training_curves.png").is_file()


# The killed run: steps after checkpoint-4 take seconds, so the kill lands after that checkpoint is complete and
# long before the run could finish on its own.
SLOW_AFTER_CHECKPOINT = textwrap.dedent(
    """
    import sys, time
    import vision_trm.train_scripts.run_multimodal as run_multimodal

    class SlowAfterCheckpoint(run_multimodal.TRMTrainer):
        def training_step(self, *args, **kwargs):
            if self.state.global_step >= 4:
                time.sleep(5)
            return super().training_step(*args, **kwargs)

    run_multimodal.TRMTrainer = SlowAfterCheckpoint
    run_multimodal.main(sys.argv[1:])
    """
)


def wait_for_complete_checkpoint(process, checkpoint: Path, step: int, timeout_s: float = 180) -> bool:
    """True once `checkpoint`'s trainer_state.json (the last file Trainer writes) holds `step` in full."""
    deadline = time.time() + timeout_s
    while time.time() < deadline and process.poll() is None:
        try:
            if json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == step:
                return True
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.1)
    return False


class StepRecorder(run_multimodal.TRMTrainer):
    """Records the global step each training step starts from."""

    started_at: list[int] = []

    def training_step(self, *args, **kwargs):
        StepRecorder.started_at.append(self.state.global_step)
        return super().training_step(*args, **kwargs)


def test_kill_and_resume_matches_uninterrupted_run(tmp_path, cache, monkeypatch):
    full = tmp_path / "full"
    main(args(full, cache))
    reference = losses(full)

    killed = tmp_path / "killed"
    checkpoint = killed / "checkpoint-4"
    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-c", SLOW_AFTER_CHECKPOINT, *args(killed, cache)], cwd=ROOT,
                                   stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        checkpoint_complete = wait_for_complete_checkpoint(process, checkpoint, step=4)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    child_log = (tmp_path / "killed.log").read_text()[-3000:]
    assert checkpoint_complete, f"checkpoint-4 never completed before the child ended:\n{child_log}"
    assert process.returncode == -signal.SIGKILL, f"the child was not killed (exit {process.returncode}):\n{child_log}"
    assert not (killed / "checkpoint-8").exists() and not (killed / "model.safetensors").exists()

    StepRecorder.started_at = []
    monkeypatch.setattr(run_multimodal, "TRMTrainer", StepRecorder)
    main(args(killed, cache, "--resume_from_checkpoint", str(checkpoint)))
    assert StepRecorder.started_at == [4, 5, 6, 7]  # resumed from the checkpoint's step, not from step 0
    resumed = losses(killed)
    assert 8 in resumed and 5 in resumed
    for step in (5, 6, 7, 8):
        assert resumed[step] == pytest.approx(reference[step], rel=1e-4, abs=1e-4), (step, resumed, reference)


def make_loss_nan(module, args, output):
    output["loss"] = output["loss"] * float("nan")
    return output


class DivergesAtStepSix(run_multimodal.TRMTrainer):
    """Simulates a diverging batch: at optimizer step 6 a forward hook turns the model's loss into NaN (NaN pixels
    would not do: the model refuses non-finite inputs before computing anything)."""

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.state.global_step + 1 != 6:
            return super().training_step(model, inputs, num_items_in_batch)
        hook = model.register_forward_hook(make_loss_nan)
        try:
            return super().training_step(model, inputs, num_items_in_batch)
        finally:
            hook.remove()


def test_nan_loss_stops_with_step_and_batch_and_writes_no_nan_weights(tmp_path, cache, capsys, monkeypatch):
    monkeypatch.setattr(run_multimodal, "TRMTrainer", DivergesAtStepSix)
    out = tmp_path / "nan"
    result = main(args(out, cache, "--save_steps", "2"))
    message = result["error"]
    assert "non-finite loss" in message and "optimizer step 6" in message and "micro-batch" in message
    assert "no NaN weights" in message
    assert "NaN guard" in capsys.readouterr().err
    assert not (out / "model.safetensors").exists()  # the final model is not written
    from safetensors.torch import load_file

    checkpoints = sorted(out.glob("checkpoint-*"))
    assert checkpoints and checkpoints[-1].name == "checkpoint-4"
    for checkpoint in checkpoints:
        weights = load_file(checkpoint / "model.safetensors")
        assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())


def test_inject_nan_hook_is_not_a_command_line_flag():
    with pytest.raises(ValueError, match="inject_nan_at_step"):
        run_multimodal.parse_arguments(["--inject_nan_at_step", "6"])


def test_lora_adapter_save_load_merge_round_trip(tmp_path, cache):
    import peft
    from safetensors.torch import load_file
    from vision_trm.modeling_trm import TRMModel

    out = tmp_path / "lora"
    main(args(out, cache, "--lora_backbone", "--learning_rate", "1e-2", steps=3, preset="tiny-efficientnet"))
    adapter = out / "lora_adapter"
    assert (adapter / "adapter_config.json").is_file()
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert "pretrained_tower" in str(config["target_modules"])

    from vision_trm.train_scripts.training import prepare_tower_for_lora

    base = prepare_tower_for_lora(TRMModel.from_pretrained(out / "lora_base"))
    loaded = peft.PeftModel.from_pretrained(base, adapter)
    lora_keys = [n for n, _ in loaded.named_parameters() if "lora_" in n]
    assert lora_keys and all("pretrained_tower.backbone" in n for n in lora_keys)
    merged = loaded.merge_and_unload()
    saved = load_file(out / "model.safetensors")
    state = merged.state_dict()
    tower_changed = False
    base_state = TRMModel.from_pretrained(out / "lora_base").state_dict()
    assert saved and all(name.startswith("trm.") for name in saved)  # saved by TRMForMultitaskReasoning
    for name, tensor in saved.items():
        name = name.removeprefix("trm.")  # the base model's names: the adapter applies to what AutoModel loads
        assert torch.allclose(state[name], tensor, atol=1e-5), name
        if name.startswith("pretrained_tower.backbone") and not torch.equal(tensor, base_state[name]):
            tower_changed = True
    assert tower_changed  # the merged LoRA update reached the tower's weights


def test_measured_throughput_counts_the_steps_that_ran_not_max_steps():
    """A time-capped run (max_steps 100000, 3 steps ran in 2 s): the Trainer's own figure assumes 100000 steps."""
    from vision_trm.train_scripts.training import measured_throughput

    trainer_metrics = {"train_runtime": 2.0, "train_samples_per_second": 800000.0, "train_steps_per_second": 50000.0}
    measured = measured_throughput(trainer_metrics, steps=3, samples_per_step=16)
    assert measured["train_samples_per_second"] == 24.0 == measured["measured_train_samples_per_second"]
    assert measured["train_steps_per_second"] == 1.5 and measured["steps_run"] == 3
    assert measured["train_samples"] == 48
    assert trainer_metrics["train_samples_per_second"] == 800000.0  # the caller's dict is left as it was
