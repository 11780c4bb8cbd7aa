"""Training script reliability on CPU: learning, kill-and-resume, NaN guard, LoRA adapter round trip."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from train_scripts.run_multimodal import main  # noqa: E402

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


def test_kill_and_resume_matches_uninterrupted_run(tmp_path, cache):
    full = tmp_path / "full"
    main(args(full, cache))
    reference = losses(full)

    killed = tmp_path / "killed"
    code = ("import sys; sys.path.insert(0, %r); from train_scripts.run_multimodal import main; main(%r)"
            % (str(ROOT), args(killed, cache)))
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    checkpoint = killed / "checkpoint-4"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if (checkpoint / "trainer_state.json").is_file() and (checkpoint / "rng_state.pth").is_file():
            time.sleep(0.5)
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.2)
    process.wait(timeout=60)
    assert checkpoint.is_dir()
    for leftover in (killed / "checkpoint-8", killed / "model.safetensors"):  # in case it finished first
        if leftover.is_dir():
            import shutil

            shutil.rmtree(leftover)
        elif leftover.exists():
            leftover.unlink()

    main(args(killed, cache, "--resume_from_checkpoint", str(checkpoint)))
    resumed = losses(killed)
    assert 8 in resumed and 5 in resumed
    for step in (5, 6, 7, 8):
        assert resumed[step] == pytest.approx(reference[step], rel=1e-4, abs=1e-4), (step, resumed, reference)


def test_nan_loss_stops_with_step_and_batch_and_writes_no_nan_weights(tmp_path, cache, capsys):
    out = tmp_path / "nan"
    result = main(args(out, cache, "--inject_nan_at_step", "6", "--save_steps", "2"))
    message = result["error"]
    assert "optimizer step 6" in message and "micro-batch" in message and "no NaN weights" in message
    assert "NaN guard" in capsys.readouterr().err
    assert not (out / "model.safetensors").exists()  # the final model is not written
    from safetensors.torch import load_file

    checkpoints = sorted(out.glob("checkpoint-*"))
    assert checkpoints and checkpoints[-1].name == "checkpoint-4"
    for checkpoint in checkpoints:
        weights = load_file(checkpoint / "model.safetensors")
        assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())


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

    from train_scripts.training import prepare_tower_for_lora

    base = prepare_tower_for_lora(TRMModel.from_pretrained(out / "lora_base"))
    loaded = peft.PeftModel.from_pretrained(base, adapter)
    lora_keys = [n for n, _ in loaded.named_parameters() if "lora_" in n]
    assert lora_keys and all("pretrained_tower.backbone" in n for n in lora_keys)
    merged = loaded.merge_and_unload()
    saved = load_file(out / "model.safetensors")
    state = merged.state_dict()
    tower_changed = False
    base_state = TRMModel.from_pretrained(out / "lora_base").state_dict()
    for name, tensor in saved.items():
        assert torch.allclose(state[name], tensor, atol=1e-5), name
        if name.startswith("pretrained_tower.backbone") and not torch.equal(tensor, base_state[name]):
            tower_changed = True
    assert tower_changed  # the merged LoRA update reached the tower's weights
