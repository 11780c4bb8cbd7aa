"""ARC evaluation by voting over views, and test-time training (TTT) on a task never seen.

The model tests use `arc-tiny` shrunk to a 16 px canvas (8 x 8 cells, grids up to 6 x 6) so that training on the CPU
takes seconds: once per session it is pre-trained on copying random grids (`benchmarks/bench_copy.py`'s batch
builder), then TTT must teach it a recolouring it has never seen.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from file_modules import REPO, load_file_module
from vision_trm.configuration import MODALITY_GRID, TRMConfig
from vision_trm.modeling_trm import TRMForMultitaskReasoning, TRMModel
from vision_trm.processing import TRMProcessor
from vision_trm.processing.grids import pad_grid
from vision_trm.processing.transforms import inverse_transform_grid, transform_grid
from vision_trm.train_scripts import evaluate_arc
from vision_trm.train_scripts.arc_voting import predict_test_inputs, vote, voting_views
from vision_trm.train_scripts.evaluate_arc import evaluate_arc_tasks
from vision_trm.train_scripts.test_time_training import demonstration_batch, fitting_view_parts, solve_arc_task

SIDE = 6  # the largest grid of the shrunk config
PRETRAIN_STEPS, PRETRAIN_BATCH = 150, 8


@contextlib.contextmanager
def one_thread():
    """The shrunk model's ops are tiny: on a shared 2-core machine one thread is faster and far steadier."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def shrunk_config() -> TRMConfig:
    return TRMConfig.from_preset("arc-tiny", image_size=16, max_grid_size=SIDE, num_task_ids=4)


def random_grid(rng, height, width, colours=(0, 0, 1, 3, 4)) -> list[list[int]]:
    return rng.choice(colours, size=(height, width)).tolist()


def recolour_task(seed: int, pairs: int = 3) -> dict:
    """An unseen rule: colour 1 becomes colour 2 (every grid holds some 1s)."""
    rng = np.random.default_rng(seed)

    def pair(height, width):
        grid = np.array(random_grid(rng, height, width))
        grid[0, 0] = 1
        return {"input": grid.tolist(), "output": np.where(grid == 1, 2, grid).tolist()}

    return {"id": f"recolour-{seed}", "train": [pair(*rng.integers(3, SIDE + 1, 2)) for _ in range(pairs)],
            "test": [pair(5, 4)]}


@pytest.fixture(scope="session")
def copy_model():
    """`(model, processor)`: the shrunk arc-tiny model after PRETRAIN_STEPS AdamW steps of copying random grids."""
    bench_copy = load_file_module("bench_copy_for_ttt_tests", REPO / "benchmarks" / "bench_copy.py")
    config = shrunk_config()
    processor = TRMProcessor.from_config(config)
    with one_thread():
        torch.manual_seed(0)
        model = TRMForMultitaskReasoning(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
        generator = torch.Generator().manual_seed(0)
        for step in range(PRETRAIN_STEPS):
            cell_maps = bench_copy.random_cell_maps(PRETRAIN_BATCH, config.num_patches_per_side, 1, SIDE, generator)
            for group in optimizer.param_groups:
                group["lr"] = 3e-3 * bench_copy.learning_rate_factor(step / PRETRAIN_STEPS, step, 20)
            loss = model(pixel_values=processor.image_processor.render_cell_labels(cell_maps), cell_labels=cell_maps,
                         modality_ids=torch.full((PRETRAIN_BATCH,), MODALITY_GRID)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return model.eval(), processor


# ------------------------------------------------------------------------------------------------ views, voting
def test_voting_views_are_the_dihedral_transforms_times_colour_permutations_identity_first():
    views = voting_views(32, seed=0)
    assert len(views) == 32 and views[0] == (0, None)
    assert [d for d, _ in views] == list(range(8)) * 4
    permutations = [tuple(range(10)) if p is None else tuple(p.tolist()) for _, p in views[::8]]
    assert len(set(permutations)) == 4 and all(p[0] == 0 for p in permutations)
    assert all(v[0] == w[0] and np.array_equal(v[1], w[1]) for v, w in zip(views[8:], voting_views(32, seed=0)[8:]))
    assert not np.array_equal(views[8][1], voting_views(32, seed=1)[8][1])
    assert voting_views(5) == views[:5]
    with pytest.raises(ValueError, match="num_views must be an int >= 1"):
        voting_views(0)


def test_every_view_round_trips_and_reaches_the_model_as_augmentation_ids():
    grid = np.array([[1, 2, 3], [4, 5, 6]])  # no symmetry: every view draws it differently
    processor = TRMProcessor.from_config(shrunk_config())
    views = voting_views(32)
    batch = processor([grid] * 32, augmentations=views)
    drawn = [processor.decode_grid(pixels) for pixels in batch["pixel_values"]]
    assert len({json.dumps(g.tolist()) for g in drawn}) == 32
    for (d, p), ids, picture in zip(views, batch["augmentation_ids"].tolist(), drawn):
        assert ids == [d, *(range(10) if p is None else p.tolist())]
        assert np.array_equal(picture, transform_grid(grid, d, p))
        assert np.array_equal(inverse_transform_grid(picture, d, p), grid)


class CannedModel(nn.Module):
    """A stand-in for the model: it reads the grid drawn on each canvas and the view it is told
    (`augmentation_ids`), looks the canonical grid up in `answers` (canonical input -> function of the view's
    dihedral index -> answer, default: the input itself), and draws that answer in the view, as a model that
    respects the augmentation would. EMIT confidence 0.5 everywhere."""

    def __init__(self, processor, answers=None):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(heads=["grid"], num_task_ids=4)
        self.processor, self.answers, self.seen_views = processor, answers or {}, []

    def forward(self, pixel_values, modality_ids=None, task_ids=None, augmentation_ids=None):
        assert augmentation_ids is not None, "the evaluation must tell the model the view"
        predictions = []
        for pixels, view in zip(pixel_values, augmentation_ids.tolist()):
            self.seen_views.append(view)
            dihedral, permutation = view[0], np.array(view[1:])
            canonical = inverse_transform_grid(self.processor.decode_grid(pixels), dihedral, permutation)
            answer = self.answers.get(json.dumps(canonical.tolist()), lambda d: canonical)(dihedral)
            predictions.append(pad_grid(transform_grid(answer, dihedral, permutation), SIDE))
        batch = len(predictions)
        return SimpleNamespace(grid_predictions=torch.tensor(np.stack(predictions)),
                               halting_logits=torch.zeros(batch, 1, 2), halting_steps=torch.ones(batch, dtype=torch.long))


def test_voting_maps_every_view_back_to_the_grid_of_a_copy_model():
    processor = TRMProcessor.from_config(shrunk_config())
    copier = CannedModel(processor)
    grids = [[[1, 2, 3], [4, 5, 6]], [[7, 0], [0, 8], [9, 9]]]
    candidates = predict_test_inputs(copier, processor, grids, task_id=1, views=voting_views(32), batch_size=20)
    for grid, ranked in zip(grids, candidates):
        assert len(ranked) == 1 and ranked[0].grid == grid and ranked[0].votes == 32
    assert len(copier.seen_views) == 64  # both inputs, every view, in batches of 20 rows


def test_ties_in_votes_go_to_the_higher_emit_confidence():
    a, b = [[1]], [[2]]
    assert [c.grid for c in vote([(a, 0.1), (b, 0.9), (a, 0.2), (b, 0.3)])] == [b, a]
    assert [c.grid for c in vote([(a, 0.1), (a, 0.1), (b, 0.9)])] == [a, b]  # more votes first


def test_pass_at_1_and_pass_at_2_count_a_task_only_when_all_its_test_inputs_are_right():
    processor = TRMProcessor.from_config(shrunk_config())
    right, wrong = [[1, 2, 3], [4, 5, 6]], [[1, 2, 3], [4, 5, 0]]  # 5 of 6 cells right
    inputs = {name: grid for name, grid in zip("pqrs", ([[1]], [[2]], [[3]], [[4]]))}
    # Per input and dihedral index: p always right; q wrong in 5 of 8 dihedral views (20 of 32 votes), right
    # in 3 (attempt 2); s always wrong.
    answers = {json.dumps(inputs["p"]): lambda d: right, json.dumps(inputs["q"]): lambda d: wrong if d < 5 else right,
               json.dumps(inputs["r"]): lambda d: right, json.dumps(inputs["s"]): lambda d: wrong}
    model = CannedModel(processor, answers)
    demo = [{"input": [[0]], "output": [[0]]}]
    tasks = [
        {"id": "two-inputs-pass@2", "train": demo, "test": [{"input": inputs["p"], "output": right},
                                                            {"input": inputs["q"], "output": right}]},
        {"id": "one-input-pass@1", "train": demo, "test": [{"input": inputs["r"], "output": right}]},
        {"id": "two-inputs-one-wrong", "train": demo, "test": [{"input": inputs["p"], "output": right},
                                                               {"input": inputs["s"], "output": right}]},
    ]
    summary, per_task = evaluate_arc_tasks(model, processor, tasks, num_views=32, batch_size=48, show_progress=False)
    assert summary["pass@1"] == pytest.approx(1 / 3) and summary["pass@2"] == pytest.approx(2 / 3)
    assert summary["exact_match"] == pytest.approx(3 / 5)
    assert summary["per_cell_accuracy"] == pytest.approx((1 + 5 / 6 + 1 + 1 + 5 / 6) / 5)
    assert (summary["num_tasks"], summary["num_test_inputs"], summary["num_views"]) == (3, 5, 32)
    second = per_task["two-inputs-pass@2"]["test_inputs"][1]
    assert second["attempts"] == [wrong, right] and second["votes"] == [20, 12] and second["correct"] == [False, True]
    assert [(t["pass@1"], t["pass@2"]) for t in per_task.values()] == [(False, True), (True, True), (False, False)]
    assert per_task["two-inputs-one-wrong"]["test_inputs"][1]["correct"] == [False]
    json.dumps(per_task)  # the per-task report is written as JSON


def test_evaluation_refuses_a_test_input_without_its_output():
    processor = TRMProcessor.from_config(shrunk_config())
    task = {"id": "t", "train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1]]}]}
    with pytest.raises(ValueError, match="task t test input 0 has no 'output'"):
        evaluate_arc_tasks(CannedModel(processor), processor, [task], show_progress=False)


# ---------------------------------------------------------------------------------------------- test-time training
def test_the_copy_model_copies_under_all_32_views(copy_model):
    model, processor = copy_model
    rng = np.random.default_rng(3)
    grid = random_grid(rng, 4, 5, colours=range(10))
    task = {"id": "copy", "train": [{"input": grid, "output": grid}], "test": [{"input": grid, "output": grid}]}
    summary, per_task = evaluate_arc_tasks(model, processor, [task], num_views=32, show_progress=False)
    assert summary["pass@1"] == 1.0 and per_task["copy"]["test_inputs"][0]["votes"] == [32]


def test_ttt_solves_an_unseen_recolouring_that_the_model_does_not_solve_without_it(copy_model):
    """Fitted with LoRA (r=4) under dihedral views only: a model pre-trained on copying has never learned to read
    the colour permutation from its augmentation tokens, so colour-permuted views would contradict a colour rule,
    and its task embedding alone cannot rewire it (the next test shows that much)."""
    model, processor = copy_model
    for seed in (0, 1):
        task = recolour_task(seed)
        options = dict(num_views=8, colour_permutations=False, seed=seed)
        before = solve_arc_task(model, processor, task, steps=0, **options)
        after = solve_arc_task(model, processor, task, steps=60, lora_r=4, lora_learning_rate=3e-3, **options)
        assert before.correct == [[False]] and before.attempts[0][0] == task["test"][0]["input"]  # it copies
        assert after.correct[0][0], (after.attempts, after.loss_curve[-5:])
        assert after.attempts[0][0] == task["test"][0]["output"] and after.votes[0][0] == 8
        assert after.loss_curve[-1] < 0.1 * after.loss_curve[0]


def test_ttt_of_the_task_embedding_alone_lowers_the_demonstration_loss(copy_model):
    model, processor = copy_model
    result = solve_arc_task(model, processor, recolour_task(0), steps=40, num_views=1, learning_rate=3e-2)
    first, last = np.mean(result.loss_curve[:5]), np.mean(result.loss_curve[-5:])
    assert last < 0.93 * first, result.loss_curve
    assert result.start == "zero"  # the copy model trained no task row, so the mean has nothing to average


def snapshot(model) -> dict:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def test_ttt_never_changes_the_callers_model(copy_model):
    model, processor = copy.deepcopy(copy_model[0]), copy_model[1]
    model.trm.task_embeddings.weight.data[2] = 0.5  # a "trained" row, to start from
    before, flags = snapshot(model), {n: p.requires_grad for n, p in model.named_parameters()}
    result = solve_arc_task(model, processor, recolour_task(0), steps=3, num_views=2, lora_r=2, start_from_task_id=2)
    assert result.steps == 3 and result.start == "task row 2"
    after = snapshot(model)
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters()) and not model.training
    assert not any("lora" in name for name in after)


def test_ttt_starts_a_new_task_from_the_mean_of_the_trained_rows(copy_model):
    model, processor = copy_model
    fitted = copy.deepcopy(model)
    fitted.trm.task_embeddings.weight.data[1:3] = torch.tensor([1.0, 3.0])[:, None]
    zero = solve_arc_task(fitted, processor, recolour_task(0), steps=0, num_views=1, initial_embedding="zero")
    mean = solve_arc_task(fitted, processor, recolour_task(0), steps=0, num_views=1)
    assert (zero.start, mean.start) == ("zero", "mean of 2 trained rows")
    with pytest.raises(ValueError, match=r"start_from_task_id must be None or a trained task id in \[1, 4\)"):
        solve_arc_task(fitted, processor, recolour_task(0), start_from_task_id=4)
    with pytest.raises(ValueError, match="num_views=32: views that draw only .* give 8 distinct"):
        solve_arc_task(fitted, processor, recolour_task(0), colour_permutations=False)


def test_ttt_stops_at_its_time_bound(copy_model):
    """The bound holds between steps: fitting ends at most one step after `max_seconds`."""
    model, processor = copy_model
    calls = []
    started = time.perf_counter()
    result = solve_arc_task(model, processor, recolour_task(0), steps=100_000, num_views=4, max_seconds=1.0,
                            progress=lambda fraction, message: calls.append((fraction, message)))
    elapsed = time.perf_counter() - started
    assert result.stopped_at_time_bound and 0 < result.steps < 100_000
    step_seconds = result.fit_seconds / result.steps
    assert 1.0 <= result.fit_seconds <= 1.0 + 3 * step_seconds + 0.25
    assert elapsed == pytest.approx(result.seconds, abs=0.5)
    fractions = [fraction for fraction, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert calls[0][1].startswith("test-time training: step 1/100000") and "voting over 4 views" in calls[-1][1]
    untrained = solve_arc_task(model, processor, recolour_task(0), steps=10, num_views=1, max_seconds=0)
    assert untrained.steps == 0 and untrained.stopped_at_time_bound


def test_evaluate_arc_cli_runs_ttt_per_task(copy_model, tmp_path, monkeypatch):
    model, processor = copy_model
    model.trm.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    tasks = [recolour_task(0), recolour_task(1)]
    monkeypatch.setattr(evaluate_arc, "load_arc_tasks", lambda version: ([], tasks))
    summary = evaluate_arc.main(["--model_name_or_path", str(tmp_path / "model"), "--num_views", "4", "--device",
                                 "cpu", "--ttt_steps", "2", "--ttt_max_seconds", "30",
                                 "--output_json", str(tmp_path / "attempts.json")])
    assert (summary["num_tasks"], summary["ttt_steps"], summary["num_views"]) == (2, 2, 4)
    report = json.loads((tmp_path / "attempts.json").read_text())["tasks"]
    assert [report[t["id"]]["ttt"]["steps"] for t in tasks] == [2, 2]
    # Without a vocabulary in the processor, the ARC vocabulary numbers the tasks 1, 2: each starts from its row.
    assert [report[t["id"]]["ttt"]["start"] for t in tasks] == ["task row 1", "task row 2"]


def test_a_model_trained_without_colour_permutations_is_voted_and_fitted_without_them(copy_model, tmp_path,
                                                                                       monkeypatch):
    """`config.arc_view_parts` without "colours": `evaluate_arc.py` refuses more views than the 8 dihedral transforms
    (naming the field), votes over those 8, and test-time training fits under the identity colours."""
    model, processor = copy_model
    model.trm.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    config_file = tmp_path / "model" / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "arc_view_parts": ["dihedral", "translation"]}))
    monkeypatch.setattr(evaluate_arc, "load_arc_tasks", lambda version: ([], [recolour_task(0)]))
    common = ["--model_name_or_path", str(tmp_path / "model"), "--device", "cpu",
              "--output_json", str(tmp_path / "attempts.json")]
    for ttt in ([], ["--ttt_steps", "1"]):
        with pytest.raises(ValueError, match=r"num_views=16: .*config.arc_view_parts"):
            evaluate_arc.main(common + ttt + ["--num_views", "16"])
        assert evaluate_arc.main(common + ttt + ["--num_views", "8"])["num_views"] == 8
    trained = TRMModel.from_pretrained(tmp_path / "model")
    parts = fitting_view_parts(trained.config.arc_view_parts, None)
    inputs, _ = demonstration_batch(processor, [(g["input"], g["output"]) for g in recolour_task(0)["train"]] * 4,
                                    16, np.random.default_rng(0), parts, "cpu")
    views = inputs["augmentation_ids"]
    assert (views[:, 1:] == torch.arange(10)).all() and len(set(views[:, 0].tolist())) > 1
    with pytest.raises(ValueError, match="trained without colour permutations"):
        fitting_view_parts(trained.config.arc_view_parts, True)


def test_voting_views_stay_within_the_trained_view_parts():
    assert voting_views(8, view_parts=("dihedral", "translation")) == voting_views(8)
    assert voting_views(1, view_parts=()) == [(0, None)]
    colours_only = voting_views(3, view_parts=("colours",))
    assert [d for d, _ in colours_only] == [0, 0, 0] and colours_only[1][1] is not None
    with pytest.raises(ValueError, match="give 1 distinct view"):
        voting_views(2, view_parts=("translation",))


def test_evaluate_arc_cli_scores_the_training_split_on_request(copy_model, tmp_path, monkeypatch):
    """`--split training` scores the training tasks' test pairs (the fit), never the evaluation tasks."""
    model, processor = copy_model
    model.trm.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    training, evaluation = [recolour_task(0)], [recolour_task(1), recolour_task(2)]
    monkeypatch.setattr(evaluate_arc, "load_arc_tasks", lambda version: (training, evaluation))
    common = ["--model_name_or_path", str(tmp_path / "model"), "--num_views", "1", "--device", "cpu"]
    fit = evaluate_arc.main(common + ["--split", "training", "--output_json", str(tmp_path / "fit.json")])
    held_out = evaluate_arc.main(common + ["--output_json", str(tmp_path / "held_out.json")])
    assert (fit["split"], fit["num_tasks"]) == ("training", 1) and (held_out["split"], held_out["num_tasks"]) == (
        "evaluation", 2)
    assert list(json.loads((tmp_path / "fit.json").read_text())["tasks"]) == [training[0]["id"]]


# ---------------------------------------------------------------------------------------------------------- Space
@pytest.fixture(scope="module")
def space_app(copy_model, tmp_path_factory):
    model, processor = copy_model
    folder = tmp_path_factory.mktemp("ttt_checkpoint")
    model.trm.save_pretrained(folder)
    processor.save_pretrained(folder)
    saved = os.environ.get("MODEL_ID")
    os.environ["MODEL_ID"] = str(folder)
    try:
        return load_file_module("trm_space_app_for_ttt", REPO / "spaces_app" / "app.py")
    finally:
        if saved is None:
            os.environ.pop("MODEL_ID")
        else:
            os.environ["MODEL_ID"] = saved


def test_space_solves_a_pasted_task_within_its_time_bound(space_app):
    app = space_app
    task = recolour_task(0)
    task["test"].append({"input": [[1, 0], [0, 1]]})  # a second test input, without an expected output
    calls = []
    started = time.perf_counter()
    status, gallery, details = app.solve_arc("", json.dumps(task), 1000, 1, 8,
                                             progress=lambda fraction, desc=None: calls.append((fraction, desc)))
    elapsed = time.perf_counter() - started
    assert details["stopped_at_time_bound"] and details["steps"] < 1000
    assert f"of 1000 steps in {details['fit_seconds']:.1f} s** (stopped at the time bound of 1 s" in status
    assert "Voting over 8 views" in status and elapsed < 1 + 5
    assert details["correct"] is None  # one test input has no expected output
    assert "Answer sizes from the demonstrations, per test input: 5 x 4, 2 x 2." in status  # recolouring keeps sizes
    assert [np.asarray(a[0]).shape for a in details["attempts"]] == [(5, 4), (2, 2)]
    draw = app.PROCESSOR.draw_grid
    assert [caption for _, caption in gallery] == [
        f"test input 0 → attempt 1 ({details['votes'][0][0]} votes)" + "".join(
            f" → attempt 2 ({n} votes)" for n in details["votes"][0][1:]) + " → expected",
        f"test input 1 → attempt 1 ({details['votes'][1][0]} votes)" + "".join(
            f" → attempt 2 ({n} votes)" for n in details["votes"][1][1:])]
    image, shown_input, shown_attempt = gallery[1][0], draw([[1, 0], [0, 1]], 150), draw(details["attempts"][1][0], 150)
    assert np.array_equal(image[: shown_input.shape[0], : shown_input.shape[1]], shown_input)
    left = shown_input.shape[1] + 24
    assert np.array_equal(image[: shown_attempt.shape[0], left: left + shown_attempt.shape[1]], shown_attempt)
    assert calls[-1][0] == 1.0 and [f for f, _ in calls] == sorted(f for f, _ in calls)


def test_space_refuses_a_fractional_step_count(space_app):
    app = space_app
    with pytest.raises(app.gr.Error, match="Steps must be a whole number, got 2.5"):
        app.solve_arc("", json.dumps(recolour_task(0)), 2.5, 5, 8, progress=lambda *a, **k: None)
    with pytest.raises(app.gr.Error, match="time bound must lie in"):
        app.solve_arc("", json.dumps(recolour_task(0)), 2, 0, 8, progress=lambda *a, **k: None)


def upscaling_task(seed: int) -> dict:
    """Every output is its 3 x 3 input with each cell made a 2 x 2 block (6 x 6, the shrunk config's largest grid)."""
    rng = np.random.default_rng(seed)

    def pair():
        grid = np.asarray(random_grid(rng, 3, 3, colours=range(10)))
        return {"input": grid.tolist(), "output": np.kron(grid, np.ones((2, 2), int)).tolist()}

    return {"id": f"upscale-{seed}", "train": [pair(), pair()], "test": [pair()]}


def test_a_model_trained_on_aligned_inputs_reads_them_in_voting_fitting_and_the_space(copy_model, space_app,
                                                                                       monkeypatch):
    """The copy model answers an upscaling task with its 3 x 3 input; told it was trained on aligned inputs
    (`arc_input_alignment`), voting, test-time training and the Space hand it the upscaled input, which it copies:
    exact. The baselines stay those of the task as given."""
    model, processor = copy_model
    task = upscaling_task(0)
    summary, per_task = evaluate_arc_tasks(model, processor, [task], num_views=8, show_progress=False)
    assert summary["pass@1"] == 0.0
    assert per_task[task["id"]]["test_inputs"][0]["attempts"][0] == task["test"][0]["input"]
    monkeypatch.setattr(model.config, "arc_input_alignment", True)
    summary, per_task = evaluate_arc_tasks(model, processor, [task], num_views=8, show_progress=False)
    assert summary["pass@1"] == 1.0 and per_task[task["id"]]["test_inputs"][0]["votes"] == [8]
    assert summary["baselines"]["copy_input"]["exact_match"] == 0.0
    assert summary["baselines"]["copy_scaled_or_tiled"]["exact_match"] == 1.0
    assert (summary["by_output_size"]["changed_size_inputs"], summary["by_output_size"]["changed_size_right"]) == (1, 1)
    assert solve_arc_task(model, processor, task, steps=0, num_views=8).correct == [[True]]
    assert task == upscaling_task(0)  # the caller's task is not changed
    app = space_app
    assert app.predict_arc(app.MODEL, app.PROCESSOR, task, 0)["prediction"].shape == (3, 3)
    monkeypatch.setattr(app.MODEL.config, "arc_input_alignment", True)
    assert app.predict_arc(app.MODEL, app.PROCESSOR, task, 0)["prediction"].tolist() == task["test"][0]["output"]


def test_the_main_jobs_arc_table_copies_the_given_input_beside_the_aligned_one(copy_model):
    """Rows of an aligned composite show the model the upscaled input; copy-the-input is still scored on the input
    the task gives, and the scaled-or-tiled copy beside it."""
    import datasets

    from vision_trm.train_scripts import evaluation
    from vision_trm.train_scripts.collator import MultimodalCollator

    model, processor = copy_model
    pair = upscaling_task(1)["test"][0]
    row = {"modality": MODALITY_GRID, "task_id": 1, "input_grid": pair["output"], "output_grid": pair["output"],
           "given_input_grid": pair["input"], "scaled_or_tiled_grid": pair["output"], "output_size": [6, 6],
           "source": "arc-eval:upscale:0"}
    results = evaluation.evaluate_arc_heldout(model, MultimodalCollator(processor), datasets.Dataset.from_list([row]))
    assert results["model"]["exact_match"] == results["copy_scaled_or_tiled"]["exact_match"] == 1.0
    assert results["copy_input"]["exact_match"] == 0.0 and results["copy_input"]["per_cell_accuracy"] < 0.25
    table = evaluation.format_table({"arc": results})
    assert "copied, upscaled or tiled input 100.0% |" in table
    assert "| the same, cells right over the union of answer and target | 100.0% |" in table


def test_against_a_baseline_over_the_union_copying_a_larger_input_gets_no_free_cells():
    bench = load_file_module("arc_attempts_summary", REPO / "benchmarks" / "arc_attempts_summary.py")
    given, target = [[1, 2, 0], [3, 4, 0], [0, 0, 0]], [[1, 2], [3, 4]]  # the answer is the input's corner
    tasks = [{"id": name, "train": [], "test": [{"input": given, "output": target}]} for name in ("a", "b")]
    per_task = {name: {"test_inputs": [{"attempts": [target]}]} for name in ("a", "b")}  # both exact
    plain = bench.against_baseline(tasks, per_task, "copy_input")
    over_union = bench.against_baseline(tasks, per_task, "copy_input", over_union=True)
    assert plain["baseline_per_cell"] == 1.0 and plain["model_minus_baseline"] == 0.0  # copying looks perfect
    assert over_union["baseline_per_cell"] == pytest.approx(4 / 9)
    assert over_union["model_minus_baseline"] == pytest.approx(5 / 9)


def test_the_size_breakdown_sets_attempt_one_beside_copying():
    from vision_trm.train_scripts.evaluate_arc import size_breakdown

    tasks = [{"id": "kept", "test": [{"input": [[1, 2], [3, 4]], "output": [[1, 2], [3, 9]]},   # copy: 3 of 4 cells
                                     {"input": [[5]], "output": [[6]]}]},                      # answered too big
             {"id": "changed", "test": [{"input": [[1, 2]], "output": [[1], [2]]},
                                        {"input": [[7, 7]], "output": [[7]]}]}]
    per_task = {"kept": {"test_inputs": [{"attempts": [[[1, 2], [3, 9]], [[0, 0], [0, 0]]]},
                                         {"attempts": [[[6, 6]]]}]},
                "changed": {"test_inputs": [{"attempts": [[[1], [2]]]}, {"attempts": [[[7, 7]]]}]}}
    assert size_breakdown(tasks, per_task) == {
        "kept_size_inputs": 2, "changed_size_inputs": 2, "kept_size_right": 1, "changed_size_right": 1,
        "kept_size_cells_right": 1.0, "kept_size_cells_right_by_copying": 0.75,
        "kept_size_cells_edited_right": 1, "kept_size_cells_edited_wrong": 0, "kept_size_cells_the_answers_change": 1,
    }


def test_answers_take_the_size_the_demonstrations_agree_on_when_asked(copy_model):
    """The copy model answers a 5 x 4 input with a 5 x 4 grid; told the demonstrations' fixed 2 x 3 size, every
    attempt, voted over views that transpose the grid and views that do not, is 2 x 3, and so is test-time training's."""
    model, processor = copy_model
    rng = np.random.default_rng(5)
    demos = [{"input": random_grid(rng, 4, 4), "output": random_grid(rng, 2, 3)},
             {"input": random_grid(rng, 6, 5), "output": random_grid(rng, 2, 3)}]
    task = {"id": "fixed-size", "train": demos, "test": [{"input": random_grid(rng, 5, 4), "output": [[0] * 3] * 2}]}
    _, free = evaluate_arc_tasks(model, processor, [task], num_views=8, show_progress=False)
    _, held = evaluate_arc_tasks(model, processor, [task], num_views=8, show_progress=False,
                                 size_from_demonstrations=True)
    assert np.asarray(free["fixed-size"]["test_inputs"][0]["attempts"][0]).shape == (5, 4)
    assert {np.asarray(a).shape for a in held["fixed-size"]["test_inputs"][0]["attempts"]} == {(2, 3)}
    solved = solve_arc_task(model, processor, task, steps=1, num_views=8, size_from_demonstrations=True)
    assert {np.asarray(a).shape for a in solved.attempts[0]} == {(2, 3)}


def test_evaluate_arc_cli_scores_the_evaluation_demonstrations_on_request(copy_model, tmp_path, monkeypatch):
    """`--split evaluation_demonstrations` asks each evaluation task's demonstrations back, under its own id."""
    model, processor = copy_model
    model.trm.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    evaluation = [recolour_task(1, pairs=3), recolour_task(2, pairs=2)]
    monkeypatch.setattr(evaluate_arc, "load_arc_tasks", lambda version: ([recolour_task(0)], evaluation))
    summary = evaluate_arc.main(["--model_name_or_path", str(tmp_path / "model"), "--num_views", "1", "--device",
                                 "cpu", "--split", "evaluation_demonstrations", "--output_json", str(tmp_path / "d.json")])
    assert (summary["num_tasks"], summary["num_test_inputs"]) == (2, 5)
    scored = json.loads((tmp_path / "d.json").read_text())["tasks"]["recolour-2"]["test_inputs"]
    assert [np.asarray(t["attempts"][0]).shape for t in scored] == [np.asarray(p["input"]).shape
                                                                   for p in evaluation[1]["train"]]


def test_the_main_jobs_arc_table_scores_answers_at_the_demonstrated_size(copy_model, monkeypatch):
    """`evaluate_arc_heldout` adds the decoding at the demonstrations' size when the rows carry it (a row without a
    size scores as the model does), and leaves it out when they do not."""
    import datasets

    from vision_trm.train_scripts import evaluation
    from vision_trm.train_scripts.collator import MultimodalCollator

    answers = []   # (attempts, reference) in the order the metrics see them: model, copy, majority, at size per row
    real_load_metric = evaluation.load_metric

    def recording_metric(name):
        metric = real_load_metric(name)
        add = metric.add
        metric.add = lambda predictions, references: (answers.append(json.loads(predictions)[0]),
                                                      add(predictions=predictions, references=references))
        return metric

    monkeypatch.setattr(evaluation, "load_metric", recording_metric)
    model, processor = copy_model
    rng = np.random.default_rng(8)
    copy_grid, given = random_grid(rng, 3, 3), random_grid(rng, 5, 4)
    rows = [{"modality": MODALITY_GRID, "task_id": 1, "input_grid": copy_grid, "output_grid": copy_grid,
             "output_size": [], "source": "arc-eval:copy:0"},
            {"modality": MODALITY_GRID, "task_id": 1, "input_grid": given, "output_grid": [r[:3] for r in given[:2]],
             "output_size": [2, 3], "source": "arc-eval:crop:0"}]
    results = evaluation.evaluate_arc_heldout(model, MultimodalCollator(processor), datasets.Dataset.from_list(rows))
    (free_a, _, _, held_a), (free_b, _, _, held_b) = answers[:4], answers[4:]
    assert free_a == held_a == copy_grid                              # no size: the model's own answer
    assert np.asarray(free_b).shape == (5, 4) and np.asarray(held_b).shape == (2, 3)
    assert results["model"]["exact_match"] == 0.5 and "model_size_from_demonstrations" in results
    assert "answers at the size the demonstrations agree on |" in evaluation.format_table({"arc": results})
    answers.clear()
    without = evaluation.evaluate_arc_heldout(model, MultimodalCollator(processor), datasets.Dataset.from_list(
        [{k: v for k, v in r.items() if k != "output_size"} for r in rows]))
    assert "model_size_from_demonstrations" not in without and len(answers) == 6


def test_near_misses_count_answers_close_to_exact_and_solved_tasks_by_size():
    """Attempt 1 of three test inputs: exact, 2 cells off of 25, wrong size; the solved task keeps its size."""
    from vision_trm.train_scripts.evaluate_arc import near_misses

    grid = [[1] * 5 for _ in range(5)]
    off = [row[:] for row in grid]
    off[0][0] = off[4][4] = 2
    tasks = [{"id": "a", "test": [{"input": grid, "output": grid}]},
             {"id": "b", "test": [{"input": grid, "output": grid}, {"input": grid, "output": [[1, 1]]}]}]
    per_task = {"a": {"pass@2": True, "test_inputs": [{"attempts": [grid]}]},
                "b": {"pass@2": False, "test_inputs": [{"attempts": [off]}, {"attempts": [grid]}]}}
    assert near_misses(tasks, per_task) == {
        "attempt_1_right_size": 2, "one_to_three_cells_wrong": 1, "at_least_95_percent_cells_right": 1,
        "solved_tasks_keeping_size": 1, "solved_tasks_changing_size": 0}


def test_a_saved_attempts_file_is_rescored_without_the_model(tmp_path):
    import gzip

    bench = load_file_module("arc_attempts_summary", REPO / "benchmarks" / "arc_attempts_summary.py")
    grid = [[3, 4], [5, 6]]
    task = {"id": "t", "train": [{"input": grid, "output": grid}], "test": [{"input": grid, "output": grid}]}
    saved = {"summary": {"split": "evaluation", "arc_version": "1"},
             "tasks": {"t": {"pass@1": True, "pass@2": True, "test_inputs": [{"attempts": [grid, grid]}]}}}
    path = tmp_path / "attempts.json.gz"
    with gzip.open(path, "wt") as handle:
        json.dump(saved, handle)
    summary = bench.summarise_attempts(bench.load_attempts(path), [], [task])
    assert summary["pass@2"] == 1.0 and summary["near_misses"]["solved_tasks_keeping_size"] == 1
    with pytest.raises(ValueError, match="not in the evaluation split"):
        bench.summarise_attempts(saved, [], [])


def test_several_attempts_files_are_averaged_per_size_rule(tmp_path, monkeypatch):
    bench = load_file_module("arc_attempts_summary", REPO / "benchmarks" / "arc_attempts_summary.py")
    grid = [[3, 4], [5, 6]]
    task = {"id": "t", "train": [{"input": grid, "output": grid}], "test": [{"input": grid, "output": grid}]}
    monkeypatch.setattr(bench, "load_arc_tasks", lambda version: ([], [task]))
    paths = []
    for index, attempt in enumerate((grid, [[3, 4], [0, 0]])):  # all 4 cells right, then 2
        paths.append(tmp_path / f"seed{index}.json")
        paths[-1].write_text(json.dumps({"summary": {"split": "evaluation"}, "tasks": {"t": {
            "pass@1": index == 0, "pass@2": index == 0, "test_inputs": [{"attempts": [attempt]}]}}}))
    summary = bench.main([str(path) for path in paths])
    assert [run["pass@2"] for run in summary["runs"].values()] == [1.0, 0.0]
    assert summary["mean_by_size_rule"]["keeps_size"]["model"] == pytest.approx(0.75)
    assert summary["mean_by_size_rule"]["keeps_size"]["test_inputs"] == 1
    assert summary["mean_by_size_rule"]["no_known_size"]["model"] is None  # no input of that rule
    compared = bench.main([str(path) for path in paths] + ["--against_baselines"])["against_baselines_over_runs"]
    copying = compared["against_baselines_over_union"]["copy_input"]  # the copy is the answer: 1.0 every run
    assert copying["model_minus_baseline"] == pytest.approx((0.0 - 0.5) / 2) and copying["runs"] == 2
    assert copying["low"] < -0.25 < copying["high"]


def test_attempts_are_compared_with_copying_the_input_per_test_input():
    bench = load_file_module("arc_attempts_summary", REPO / "benchmarks" / "arc_attempts_summary.py")
    given, target = [[1, 1], [1, 1]], [[1, 2], [2, 2]]  # copying gets 1 of 4 cells
    tasks = [{"id": "a", "train": [], "test": [{"input": given, "output": target}]},
             {"id": "b", "train": [], "test": [{"input": given, "output": target}]}]
    per_task = {"a": {"test_inputs": [{"attempts": [[[1, 2], [2, 1]]]}]},   # 3 of 4: +0.5 over copying
                "b": {"test_inputs": [{"attempts": [[[1, 2], [3, 1]]]}]}}   # 2 of 4: +0.25
    compared = bench.against_copy(tasks, per_task)
    assert compared["model_minus_copy"] == pytest.approx(0.375) and compared["test_inputs"] == 2
    assert compared["copy_per_cell"] == pytest.approx(0.25) and compared["model_per_cell"] == pytest.approx(0.625)
    assert compared["low"] < 0.375 < compared["high"]
    # a edits two cells, both right; b edits two, one right and one to a colour the answer does not have. The
    # answer changes 3 cells of each input.
    from vision_trm.train_scripts.evaluate_arc import size_breakdown

    breakdown = size_breakdown(tasks, per_task)
    assert (breakdown["kept_size_cells_edited_right"], breakdown["kept_size_cells_edited_wrong"],
            breakdown["kept_size_cells_the_answers_change"]) == (3, 1, 6)


def test_the_scaled_or_tiled_copy_baseline_picks_the_rule_the_demonstrations_follow():
    from vision_trm.train_scripts.evaluation import copy_scaled_or_tiled_grid

    upscaling = [{"input": [[1, 2]], "output": [[1, 1, 2, 2], [1, 1, 2, 2]]},
                 {"input": [[3], [4]], "output": [[3, 3], [3, 3], [4, 4], [4, 4]]}]
    assert copy_scaled_or_tiled_grid(upscaling, [[5, 6]]) == [[5, 5, 6, 6], [5, 5, 6, 6]]
    tiling = [{"input": [[1, 2]], "output": [[1, 2, 1, 2], [1, 2, 1, 2]]},
              {"input": [[3], [4]], "output": [[3, 3], [4, 4], [3, 3], [4, 4]]}]
    assert copy_scaled_or_tiled_grid(tiling, [[5, 6]]) == [[5, 6, 5, 6], [5, 6, 5, 6]]
    # Kept size, or no size the demonstrations agree on, or none at all: the plain copy.
    keeping = [{"input": [[1, 2]], "output": [[2, 1]]}]
    assert copy_scaled_or_tiled_grid(keeping, [[5, 6]]) == [[5, 6]]
    disagreeing = [{"input": [[1]], "output": [[1, 1]]}, {"input": [[1]], "output": [[1], [1], [1]]}]
    assert copy_scaled_or_tiled_grid(disagreeing, [[7]]) == [[7]]
    assert copy_scaled_or_tiled_grid([], [[7, 8]]) == [[7, 8]]
    # A fixed output size the input does not divide: neither rule applies, the copy is kept (and scored by overlap).
    fixed = [{"input": [[1, 2]], "output": [[0, 0, 0]]}, {"input": [[3]], "output": [[0, 0, 0]]}]
    assert copy_scaled_or_tiled_grid(fixed, [[5, 6]]) == [[5, 6]]


def test_the_copy_at_the_demonstrated_size_is_cut_or_padded_to_that_size():
    from vision_trm.train_scripts.evaluation import copy_at_demonstrated_size_grid, copy_at_size

    assert copy_at_size([[1, 2, 3], [4, 5, 6]], (1, 2)) == [[1, 2]]  # cut, top-left kept
    assert copy_at_size([[7, 7], [7, 1]], (3, 3)) == [[7, 7, 7], [7, 1, 7], [7, 7, 7]]  # padded with its commonest colour
    assert copy_at_size([[1, 2]], None) == copy_at_size([[1, 2]], ()) == [[1, 2]]
    crop = [{"input": [[1, 2, 3], [4, 5, 6]], "output": [[1, 2]]}, {"input": [[5, 5, 5]], "output": [[5, 5]]}]
    assert copy_at_demonstrated_size_grid(crop, [[8, 9, 0], [0, 0, 0]]) == [[8, 9]]  # every answer is 1 x 2
    tiling = [{"input": [[1, 2]], "output": [[1, 2, 1, 2]]}]
    assert copy_at_demonstrated_size_grid(tiling, [[3, 4]]) == [[3, 4, 3, 4]]  # resized first, then already its size
    no_size = [{"input": [[1]], "output": [[1, 1]]}, {"input": [[1]], "output": [[1], [1], [1]]}]
    assert copy_at_demonstrated_size_grid(no_size, [[7, 8]]) == [[7, 8]]  # no size named: the input as given


def test_trivial_baselines_are_scored_as_the_model_is():
    from vision_trm.train_scripts.evaluate_arc import trivial_baselines

    demonstrations = [{"input": [[1, 2]], "output": [[1, 2, 1, 2]]}]
    tasks = [{"id": "tile", "train": demonstrations, "test": [{"input": [[3, 3]], "output": [[3, 3, 3, 3]]}]},
             {"id": "flip", "train": [{"input": [[1, 2]], "output": [[2, 1]]}],
              "test": [{"input": [[4, 5]], "output": [[5, 4]]}]}]
    baselines = trivial_baselines(tasks)
    assert set(baselines) == {"copy_input", "majority_colour", "copy_scaled_or_tiled", "copy_at_demonstrated_size"}
    # Tiling solves the first task; copying gets half of its cells (the overlap) and none of the flip's.
    assert baselines["copy_scaled_or_tiled"] == {"pass@1": 0.5, "exact_match": 0.5, "per_cell_accuracy": 0.5,
                                                 "per_cell_accuracy_over_union": 0.5}
    assert baselines["copy_input"]["per_cell_accuracy"] == pytest.approx(0.25)
    assert baselines["copy_input"]["pass@1"] == 0.0


def test_the_size_rule_breakdown_groups_inputs_by_what_the_demonstrations_name():
    from vision_trm.train_scripts.evaluate_arc import size_rule_breakdown, size_rule_of

    tasks = [
        {"id": "keep", "train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[3, 4]], "output": [[4, 3]]}]},
        {"id": "tile", "train": [{"input": [[1, 2]], "output": [[1, 2, 1, 2]]}],
         "test": [{"input": [[3, 4]], "output": [[3, 4, 3, 4]]}]},
        {"id": "fixed", "train": [{"input": [[1, 2, 3]], "output": [[1, 1]]}, {"input": [[1]], "output": [[1, 1]]}],
         "test": [{"input": [[5, 6, 7]], "output": [[5, 5]]}]},
        {"id": "none", "train": [{"input": [[1]], "output": [[1, 1]]}, {"input": [[1]], "output": [[1], [1], [1]]}],
         "test": [{"input": [[7, 8]], "output": [[7]]}]},
    ]
    assert [size_rule_of(t, t["test"][0]["input"]) for t in tasks] == ["keeps_size", "scaled_or_tiled",
                                                                       "other_known_size", "no_known_size"]
    answers = {"keep": [[4, 3]], "tile": [[3, 4]], "fixed": [[5, 5]], "none": [[9]]}
    per_task = {name: {"test_inputs": [{"attempts": [answer]}]} for name, answer in answers.items()}
    groups = size_rule_breakdown(tasks, per_task)
    assert {rule: g["test_inputs"] for rule, g in groups.items()} == dict.fromkeys(groups, 1)
    assert groups["keeps_size"]["model"] == 1.0 and groups["keeps_size"]["copy_input"] == 0.0
    assert groups["scaled_or_tiled"]["model"] == 0.5 and groups["scaled_or_tiled"]["copy_scaled_or_tiled"] == 1.0
    assert groups["no_known_size"]["single_cell_answers"] == 1 and groups["no_known_size"]["model"] == 0.0
    assert groups["no_known_size"]["copy_input"] == 1.0  # [[7, 8]] overlaps the one-cell answer [[7]]
    assert groups["no_known_size"]["copy_input_over_union"] == 0.5  # ... but is one cell too wide
    assert groups["scaled_or_tiled"]["model_over_union"] == 0.5 and groups["keeps_size"]["model_over_union"] == 1.0
