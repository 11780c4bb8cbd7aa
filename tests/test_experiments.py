"""The experiment runner (train_scripts/run_experiments.py), its statistics and verdicts, and the model variants
and data that the claims need (two-modality fusion strategies, the cross-modal transform task, the listings)."""

import json
import math
import threading
import time

import numpy as np
import pytest
import torch

from vision_trm.configuration import TRMConfig
from vision_trm.modeling_trm.multimodal_fusion import FUSION_STRATEGIES, TwoModalityClassifier
from vision_trm.processing import TRMProcessor
from vision_trm.processing.transforms import dihedral_transform
from vision_trm.train_scripts import run_experiments
from vision_trm.train_scripts.experiments import EXPERIMENTS
from vision_trm.train_scripts.experiments.claims_crossmodal import (
    HELD_OUT_TRANSFORM,
    TransformCanvases,
    all_patterns,
    pattern_id,
    trivial_baselines,
)
from vision_trm.train_scripts.experiments.claims_fusion import TEXT_ONLY_CEILING, listing_captions
from vision_trm.train_scripts.experiments.core import (
    Arm, Comparison, Experiment, RunResult, Scale, difference_ci, format_summary_markdown, mean_ci, seed_everything,
    summarise, t_quantile_975, train_loop, verdict)


# ------------------------------------------------------------------------------------------------ the runner
def test_runner_end_to_end_on_a_tiny_configuration(tmp_path, monkeypatch, capsys):
    """One command trains every arm x seed, writes one JSON per run, a summary with mean ± CI and a verdict per
    comparison, and a plot; each record carries its command, seeds, hardware and date."""
    monkeypatch.setenv("VISION_TRM_DATA_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "results"
    code = run_experiments.main(["--experiment", "planner", "--seeds", "0,1", "--scale", "test",
                                 "--arms", "soft,off", "--output_dir", str(out)])
    assert code == 0
    folder = out / "test" / "planner"
    for arm in ("soft", "off"):
        for seed in (0, 1):
            record = json.loads((folder / f"{arm}_seed{seed}.json").read_text())
            assert record["seed"] == seed and record["arm"] == arm
            assert 0.0 <= record["result"]["metrics"]["image_accuracy"] <= 1.0
            assert record["result"]["parameters"]["trainable"] > 0
            assert record["result"]["stability"]["steps_run"] == 3
    summary = json.loads((folder / "summary.json").read_text())
    assert "--experiment planner" in summary["command"] and summary["seeds"] == [0, 1]
    assert summary["hardware"] and summary["date"]
    accuracy = summary["arms"]["soft"]["metrics"]["image_accuracy"]
    assert accuracy["n"] == 2 and len(accuracy["values"]) == 2
    # The soft planner has more parameters than no planner: the arms really differ.
    assert summary["arms"]["soft"]["parameters"]["total"] > summary["arms"]["off"]["parameters"]["total"]
    assert "planner_entropy_final" in summary["arms"]["soft"]["metrics"]
    assert {c["verdict"] for c in summary["comparisons"]} <= {
        "supported", "refuted", "inconclusive", "supported (smaller effect than claimed)",
        "refuted (claimed effect excluded; no effect detected)"}
    assert (folder / "plot.png").stat().st_size > 1000
    assert "| soft |" in (folder / "summary.md").read_text()
    # --reuse keeps what is written (same numbers, no new training).
    before = (folder / "soft_seed0.json").read_text()
    assert run_experiments.main(["--experiment", "planner", "--seeds", "0,1", "--scale", "test", "--arms",
                                 "soft,off", "--output_dir", str(out), "--reuse"]) == 0
    assert (folder / "soft_seed0.json").read_text() == before
    # Runs brought back from another machine: the summary names where they ran, not where it was summarised.
    for path in folder.glob("*_seed*.json"):
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "hardware": "NVIDIA H200 x1"}))
    assert run_experiments.main(["--experiment", "planner", "--seeds", "0,1", "--scale", "test", "--arms",
                                 "soft,off", "--output_dir", str(out), "--reuse"]) == 0
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["hardware"] == "NVIDIA H200 x1" and summary["summarised_on"] != "NVIDIA H200 x1"
    assert "Hardware: NVIDIA H200 x1;" in (folder / "summary.md").read_text()
    capsys.readouterr()


def test_summarise_only_runs_nothing_and_accepts_a_folder_of_copied_records(tmp_path, capsys, monkeypatch):
    made = tmp_path / "made"
    assert run_experiments.main(["--experiment", "planner", "--seeds", "0", "--scale", "test", "--arms", "soft,off",
                                 "--output_dir", str(made)]) == 0
    # The records alone, copied back as from a GPU machine (no marker, no summary).
    copied = tmp_path / "copied" / "test" / "planner"
    copied.mkdir(parents=True)
    for path in (made / "test" / "planner").glob("*_seed*.json"):
        (copied / path.name).write_text(path.read_text())
    monkeypatch.setattr(run_experiments.EXPERIMENTS["planner"], "run",
                        lambda *args: pytest.fail("--summarise must not train"))
    assert run_experiments.main(["--experiment", "planner", "--seeds", "0", "--scale", "test", "--output_dir",
                                 str(tmp_path / "copied"), "--summarise"]) == 0
    summary = json.loads((copied / "summary.json").read_text())
    assert set(summary["arms"]) == {"soft", "off"}  # the arms with records; `gumbel` has none and is left out
    # A seed with no record anywhere: nothing to summarise, said so.
    with pytest.raises(FileNotFoundError, match="no arm with a record for every seed"):
        run_experiments.main(["--experiment", "planner", "--seeds", "5", "--scale", "test", "--output_dir",
                              str(tmp_path / "copied"), "--summarise"])
    # Another experiment's records are not this tool's folder for this experiment.
    other = tmp_path / "other" / "test" / "fusion_gate"
    other.mkdir(parents=True)
    (other / "soft_seed0.json").write_text((copied / "soft_seed0.json").read_text())
    with pytest.raises(ValueError, match="not run records of fusion_gate: soft_seed0.json"):
        run_experiments.main(["--experiment", "fusion_gate", "--seeds", "0", "--scale", "test", "--output_dir",
                              str(tmp_path / "other"), "--summarise"])
    capsys.readouterr()


def test_runner_never_writes_into_a_folder_it_did_not_create(tmp_path):
    folder = tmp_path / "test" / "planner"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not written by run_experiments.py"):
        run_experiments.run_experiment("planner", [0], "test", tmp_path)
    assert (folder / "notes.txt").read_text() == "mine"


def test_a_pending_experiment_says_what_it_waits_for(monkeypatch, capsys):
    import dataclasses

    waiting = dataclasses.replace(EXPERIMENTS["planner"], pending="needs a GPU-sized planner head")
    monkeypatch.setitem(run_experiments.EXPERIMENTS, "planner", waiting)
    assert run_experiments.main(["--experiment", "planner"]) == run_experiments.PENDING_EXIT_CODE
    assert "needs a GPU-sized planner head" in capsys.readouterr().err


def test_recursion_refines_arc_runs_the_arc_recipe_and_scores_every_supervision_step(tmp_path, capsys):
    from vision_trm.train_scripts.experiments.composite_runs import composite_arguments

    summary = run_experiments.run_experiment("recursion_refines_arc", [0], "test", tmp_path)
    folder = tmp_path / "test" / "recursion_refines_arc"
    for arm in ("H1L5", "H2L2", "H3L1"):
        record = json.loads((folder / f"{arm}_seed0.json").read_text())["result"]
        metrics = record["metrics"]
        steps = [metrics[f"arc_per_cell_step{k}"] for k in (1, 2, 3)]
        assert all(0.0 <= value <= 1.0 for value in steps) and "arc_per_cell_step4" not in metrics, arm
        assert metrics["arc_per_cell_accuracy"] == pytest.approx(steps[-1], abs=1e-6)  # halting off: the last step
        assert "--recipe arc" in record["extra"]["command"] and "image_accuracy" not in metrics
    argv = composite_arguments(EXPERIMENTS["recursion_refines_arc"].arm("H3L1"), 0,
                               EXPERIMENTS["recursion_refines_arc"].scales["cpu"], tmp_path)
    assert argv[:4] == ["--recipe", "arc", "--preset", "arc-tiny"] and "--sources" not in argv
    overrides = json.loads(argv[argv.index("--config_overrides") + 1])
    assert overrides == {"deep_supervision_steps": 3, "use_halting": False, "crop_cell_canvas": True,
                         "H_cycles": 3, "L_cycles": 1}
    assert {c["metric"] for c in summary["comparisons"]} == {"arc_per_cell_step2", "arc_per_cell_step3",
                                                             "arc_per_cell_accuracy"}
    capsys.readouterr()


def test_unified_vs_separate_arc_runs_the_main_job_and_its_arc_only_twins(tmp_path, monkeypatch, capsys):
    """Each arm is a run of `run_multimodal.py`: the unified one on all three sources, the ARC-only ones on ARC
    alone with 40% of the steps or of the batch; every arm reports the ARC figures, only the unified one images."""
    from vision_trm.train_scripts.experiments.composite_runs import composite_arguments

    monkeypatch.setenv("VISION_TRM_DATA_CACHE", str(tmp_path / "cache"))
    summary = run_experiments.run_experiment("unified_vs_separate_arc", [0], "test", tmp_path)
    folder = tmp_path / "test" / "unified_vs_separate_arc"
    records = {arm: json.loads((folder / f"{arm}_seed0.json").read_text())["result"]
               for arm in ("unified", "arc_only", "arc_only_same_steps")}
    for arm, record in records.items():
        metrics = record["metrics"]
        assert 0.0 <= metrics["arc_per_cell_accuracy"] <= 1.0 and "arc_per_cell_at_demonstrated_size" in metrics, arm
        assert record["parameters"]["trainable"] > 0
    assert "image_accuracy" in records["unified"]["metrics"] and "image_accuracy" not in records["arc_only"]["metrics"]
    assert records["arc_only"]["parameters"] == records["unified"]["parameters"]   # the same model size
    experiment = EXPERIMENTS["unified_vs_separate_arc"]
    cpu = experiment.scales["cpu"]
    arguments = {arm.name: composite_arguments(arm, 1, cpu, tmp_path) for arm in experiment.arms}
    flag = lambda argv, name: argv[argv.index(name) + 1]  # noqa: E731
    assert [flag(arguments[a], "--max_steps") for a in ("unified", "arc_only", "arc_only_same_steps")] == [
        "1600", "640", "1600"]
    assert flag(arguments["arc_only_same_steps"], "--per_device_train_batch_size") == "6"
    assert flag(arguments["arc_only"], "--sources") == "arc" and flag(arguments["unified"], "--sources") == (
        "arc,fashion_mnist,kjv")
    assert {c["metric"] for c in summary["comparisons"]} == {"arc_per_cell_accuracy",
                                                             "arc_per_cell_at_demonstrated_size"}
    capsys.readouterr()


@pytest.mark.parametrize("argv, message", [
    (["--experiment", "no_such_claim"], "unknown"),
    (["--experiment", "planner", "--seeds", "0,x"], "integers"),
    (["--experiment", "planner", "--seeds", "1,1"], "each once"),
])
def test_bad_arguments_name_the_flag(argv, message, capsys):
    with pytest.raises((SystemExit, ValueError)) as error:
        run_experiments.main(argv)
    text = str(error.value) + capsys.readouterr().err
    assert message in text


def test_every_experiment_has_three_scales_and_comparisons_that_name_its_arms():
    for name, experiment in EXPERIMENTS.items():
        assert set(experiment.scales) == {"test", "cpu", "gpu"}, name
        arms = {arm.name for arm in experiment.arms}
        for comparison in experiment.comparisons:
            assert {comparison.better, comparison.worse} <= arms, (name, comparison)


def test_paired_comparisons_hold_for_lora_tower_arms_of_one_seed(tmp_path, monkeypatch):
    """`lora_tower` compares its arms paired by seed. That holds only if a seed gives every arm the same
    initialisation and batches: with the same seed, the frozen and the LoRA model (its adapters start at zero) must
    give the same outputs on the same first batch, and a wrong seed must not."""
    from vision_trm.train_scripts.experiments.data import MixedBatches, load_pools
    from vision_trm.train_scripts.experiments.trm_runs import arm_config, build_trm

    monkeypatch.setenv("VISION_TRM_DATA_CACHE", str(tmp_path / "cache"))
    experiment = EXPERIMENTS["lora_tower"]
    scale = experiment.scales["test"]
    assert all(comparison.paired for comparison in experiment.comparisons)
    pools = load_pools(scale.pool_samples, scale.pool_eval_samples)
    logits = {}
    for arm_name, seed in (("frozen", 0), ("lora_r8", 0), ("frozen", 1)):
        arm = next(arm for arm in experiment.arms if arm.name == arm_name)
        seed_everything(seed)
        preset, overrides = arm_config(scale, arm)
        model = build_trm(preset, overrides, lora=arm.options.get("lora", False)).eval()
        batch = MixedBatches(TRMProcessor.from_config(model.config), pools, 4, 0, image_fraction=1.0)(0)
        with torch.no_grad():
            logits[arm_name, seed] = model(pixel_values=batch["pixel_values"]).class_logits
    torch.testing.assert_close(logits["lora_r8", 0], logits["frozen", 0])
    assert not torch.allclose(logits["frozen", 1], logits["frozen", 0])


# ------------------------------------------------------------------------------------------ the training loop
class _Regression(torch.nn.Module):
    """y = w x with a loss that turns NaN once `x` is NaN: enough of a model to drive `train_loop`."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, y):
        return type("Output", (), {"loss": ((self.weight * x - y) ** 2).mean()})


class _RecordingBatches:
    """A seeded batch source that records each call: the step asked for, the thread it ran on, and whether an
    evaluation was running at the time."""

    def __init__(self, nan_from: int | None = None):
        self.rng = np.random.default_rng(0)
        self.calls, self.threads, self.evaluating, self.overlapped = [], set(), False, False
        self.nan_from = nan_from

    def __call__(self, step):
        self.calls.append(step)
        self.threads.add(threading.current_thread().name)
        time.sleep(0.005)  # a draw that takes a while, so that one still in flight when an evaluation starts is seen
        self.overlapped |= self.evaluating
        x = torch.from_numpy(self.rng.normal(size=8)).float()
        if self.nan_from is not None and step >= self.nan_from:
            x = x * float("nan")
        return {"x": x, "y": 3 * x}

    def evaluate(self, model):
        self.evaluating = True
        time.sleep(0.02)
        self.evaluating = False
        return {"weight": float(model.weight)}


def test_train_loop_draws_each_batch_once_in_order_a_step_ahead_and_never_during_an_evaluation():
    scale = Scale(steps=12, batch_size=8, learning_rate=0.1, warmup_steps=1, eval_every=4)
    batches = _RecordingBatches()
    torch.manual_seed(0)
    log = train_loop(_Regression(), batches, scale, seed=0, evaluate=batches.evaluate)
    assert batches.calls == list(range(12))
    assert threading.current_thread().name not in batches.threads  # drawn on the worker, beside the training
    assert not batches.overlapped
    assert [step for step, _ in log.curves["weight"]] == [4, 8, 12]
    # The same batches as drawing them in the loop itself: the losses equal a plain loop's over a fresh source.
    plain, model = _RecordingBatches(), _Regression()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.01)
    losses = []
    for step in range(12):
        loss = model(**plain(step)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(model.parameters()), 1.0)
        losses.append(float(loss.detach()))
        optimizer.step()
        optimizer.zero_grad()
    assert log.losses == pytest.approx(losses)


def test_train_loop_that_diverges_stops_and_leaves_no_batch_in_flight():
    scale = Scale(steps=20, batch_size=8, warmup_steps=1)
    batches = _RecordingBatches(nan_from=3)
    log = train_loop(_Regression(), batches, scale, seed=0)
    assert log.diverged_at == 3 and len(log.losses) == 3
    assert batches.calls == [0, 1, 2, 3, 4]  # one batch ahead of the step that diverged, no more
    assert not any(thread.name.startswith("next_batch") for thread in threading.enumerate())


class _LinearRecordingDtype(torch.nn.Module):
    """A linear model that records the dtype its matmul computes in, in training and in evaluation."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 1)
        self.dtypes = {"train": set(), "eval": set()}

    def forward(self, x, y):
        prediction = self.linear(x[None])
        self.dtypes["train" if self.training else "eval"].add(prediction.dtype)
        return type("Output", (), {"loss": ((prediction.float().squeeze() - y.sum()) ** 2)})


@pytest.mark.parametrize("bf16, expected", [(True, torch.bfloat16), (False, torch.float32)])
def test_train_loop_runs_forward_and_evaluation_in_bf16_only_when_the_scale_asks(bf16, expected):
    scale = Scale(steps=3, batch_size=8, warmup_steps=1, bf16=bf16)
    batches, model = _RecordingBatches(), _LinearRecordingDtype()
    train_loop(model, batches, scale, seed=0,
               evaluate=lambda trained: {"seen": float(trained(**batches(0)).loss)})
    assert model.dtypes == {"train": {expected}, "eval": {expected}}
    assert model.linear.weight.dtype == torch.float32  # autocast: the weights and the optimiser stay fp32


# ------------------------------------------------------------------------------------------------ statistics
def test_mean_ci_is_the_student_t_interval():
    summary = mean_ci([1.0, 2.0, 3.0])
    assert summary["mean"] == 2.0 and summary["std"] == 1.0
    assert summary["ci95"] == pytest.approx(4.303 / math.sqrt(3))
    assert t_quantile_975(2) == 4.303 and t_quantile_975(2.9) == 4.303 and t_quantile_975(100) == 1.96


def test_difference_ci_paired_and_welch():
    paired = difference_ci([2.0, 3.0, 4.5], [1.0, 2.0, 3.0], paired=True)
    assert paired["difference"] == pytest.approx(7 / 6)
    assert paired["low"] > 0  # differences 1, 1, 1.5: consistently positive
    welch = difference_ci([2.0, 3.0, 4.5], [1.0, 2.0, 3.0])
    assert welch["low"] < 0 < welch["high"]  # the same numbers unpaired: the spread between seeds dominates


def test_verdicts():
    assert verdict({"low": 0.01, "high": 0.2}) == "supported"
    assert verdict({"low": 0.01, "high": 0.05}, claimed=0.12) == "supported (smaller effect than claimed)"
    assert verdict({"low": -0.2, "high": -0.01}) == "refuted"
    assert verdict({"low": -0.02, "high": 0.03}, claimed=0.12).startswith("refuted (claimed effect excluded")
    assert verdict({"low": -0.02, "high": 0.3}, claimed=0.12) == "inconclusive"
    assert verdict({"low": float("nan"), "high": float("nan")}) == "inconclusive (no interval: fewer than 2 seeds)"


def test_one_seed_summary_says_it_has_no_interval():
    experiment = Experiment(name="one_seed", claim="c", source="s", hypothesis="h", arms=[Arm("a"), Arm("b")],
                            scales={}, run=None, comparisons=[Comparison("m", "a", "b")])
    results = {name: {0: RunResult(metrics={"m": value}, curves={}, parameters={"total": 1, "trainable": 1},
                                   stability={}, wall_time_s=1.0)} for name, value in (("a", 0.6), ("b", 0.5))}
    summary = summarise(experiment, results)
    assert summary["comparisons"][0]["verdict"].startswith("inconclusive (no interval")
    table = format_summary_markdown(experiment, summary, {"command": "x", "hardware": "y", "date": "z",
                                                          "seeds": [0], "scale": "gpu"})
    assert "+0.1000 (no interval: 1 seed)" in table and "nan" not in table


# ------------------------------------------------------------------------------- the two-modality fusion flag
def _fusion_config():
    return TRMConfig.from_preset("tiny", image_size=32, patch_size=8, hidden_size=32, num_attention_heads=2,
                                 vit_num_layers=1)


def _pair(batch=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, 32, 32, generator=generator), torch.randn(batch, 3, 32, 32, generator=generator)


@pytest.mark.parametrize("strategy", FUSION_STRATEGIES)
def test_each_strategy_classifies_and_learns(strategy):
    torch.manual_seed(0)
    model = TwoModalityClassifier(_fusion_config(), strategy, num_labels=4)
    image, text = _pair()
    labels = torch.tensor([0, 1, 2])
    output = model(image_pixel_values=image, text_pixel_values=text, labels=labels)
    assert output.logits.shape == (3, 4) and torch.isfinite(output.loss)
    output.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert (output.gate is not None) == (strategy == "gated")


@pytest.mark.parametrize("strategy", ["early", "late", "gated", "attention"])
def test_fused_strategies_read_both_modalities_and_drop_changes_the_answer(strategy):
    torch.manual_seed(0)
    model = TwoModalityClassifier(_fusion_config(), strategy, num_labels=4).eval()
    image, text = _pair()
    other_text = torch.randn_like(text)
    both = model(image_pixel_values=image, text_pixel_values=text).logits
    assert not torch.allclose(both, model(image_pixel_values=image, text_pixel_values=other_text).logits)
    assert not torch.allclose(both, model(image_pixel_values=torch.randn_like(image), text_pixel_values=text).logits)
    without_text = model(image_pixel_values=image, text_pixel_values=text, drop="text").logits
    assert not torch.allclose(both, without_text)
    # Dropped inside the fusion, the text no longer matters at all.
    assert torch.allclose(without_text, model(image_pixel_values=image, text_pixel_values=other_text,
                                              drop="text").logits, atol=1e-6)


def test_late_fusion_adds_the_logits_of_its_two_experts():
    torch.manual_seed(0)
    model = TwoModalityClassifier(_fusion_config(), "late", num_labels=4).eval()
    image, text = _pair()
    inputs = dict(image_pixel_values=image, text_pixel_values=text)
    total = model(**inputs).logits
    assert torch.allclose(total, model(**inputs, drop="text").logits + model(**inputs, drop="image").logits,
                          atol=1e-5)


def test_unimodal_strategy_ignores_the_other_modality_and_bad_values_are_refused():
    torch.manual_seed(0)
    model = TwoModalityClassifier(_fusion_config(), "image", num_labels=4).eval()
    image, text = _pair()
    assert torch.allclose(model(image_pixel_values=image, text_pixel_values=text).logits,
                          model(image_pixel_values=image).logits)
    assert "text" not in model.encoders
    with pytest.raises(ValueError, match="cannot drop its only modality"):
        model(image_pixel_values=image, drop="image")
    with pytest.raises(ValueError, match="needs image_pixel_values"):
        model(text_pixel_values=text)
    with pytest.raises(ValueError, match="strategy='sum' is not one of"):
        TwoModalityClassifier(_fusion_config(), "sum", num_labels=4)
    with pytest.raises(ValueError, match="drop must be"):
        TwoModalityClassifier(_fusion_config(), "early", num_labels=4)(image, text, drop="audio")


def test_gated_drop_forces_the_gate_to_the_kept_stream():
    torch.manual_seed(0)
    model = TwoModalityClassifier(_fusion_config(), "gated", num_labels=4).eval()
    image, text = _pair()
    assert torch.all(model(image, text, drop="text").gate == 1.0)
    assert torch.all(model(image, text, drop="image").gate == 0.0)
    assert 0.0 < float(model(image, text).gate.detach().mean()) < 1.0


# ----------------------------------------------------------------------------------------------------- the data
def test_listing_captions_carry_the_condition_only_the_text_knows():
    garments = np.arange(10).repeat(50)
    captions, conditions = listing_captions(garments, seed=0, split="train")
    assert all(c.split()[0] == ("new", "used")[k] for c, k in zip(captions, conditions))
    assert 0.3 < conditions.mean() < 0.7
    again, _ = listing_captions(garments, seed=0, split="train")
    assert again == captions and listing_captions(garments, seed=0, split="test")[0] != captions
    # A named group is the garment's own group.
    for caption, garment in zip(captions, garments):
        word = caption.split()[1].rstrip(",")
        assert word == "item" or (word == "shoe") == (garment in (5, 7, 9))
    assert TEXT_ONLY_CEILING == pytest.approx(0.2)


def test_crossmodal_task_shows_one_sample_in_two_modalities_with_the_same_answer():
    processor = TRMProcessor.from_config(TRMConfig.from_preset("tiny"))
    canvases = TransformCanvases(processor)
    grid = np.array([[1, 0], [0, 0]])
    rng = np.random.default_rng(0)
    batch = canvases.batch([("text", HELD_OUT_TRANSFORM, grid), ("grid", HELD_OUT_TRANSFORM, grid)], rng)
    assert not torch.equal(batch["pixel_values"][0], batch["pixel_values"][1])
    assert batch["modality_ids"].tolist() == [0, 2]
    # rot90 (counter-clockwise) moves the top-left cell to the bottom-left: pattern 0b0010.
    assert batch["labels"].tolist() == [pattern_id(dihedral_transform(grid, HELD_OUT_TRANSFORM))] * 2 == [2, 2]
    # The instruction is part of the input: another transform of the same grid draws a different canvas.
    other = canvases.batch([("text", 2, grid)], rng)
    assert not torch.equal(other["pixel_values"][0], batch["pixel_values"][0])
    patterns = all_patterns()
    assert len({pattern_id(g) for g in patterns}) == 16
    baselines = trivial_baselines(patterns)
    assert baselines["baseline_copy_input"] == pytest.approx(2 / 16)  # only the two plain grids survive rot90
    assert baselines["baseline_best_other_transform"] == pytest.approx(4 / 16)  # rot270 on rot180-symmetric ones
