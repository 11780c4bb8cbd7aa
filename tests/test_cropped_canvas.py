"""Cropped cell canvases (`TRMConfig.crop_cell_canvas`): each ARC task is read on its largest known grid + frame
instead of the full 32 x 32 token grid. The rule, the processor's crop, the model's top-left position embeddings, the
recipe's batches and sampler, evaluation and test-time training must all agree on it."""

import json

import numpy as np
import pytest
import torch

from vision_trm.configuration import TRMConfig
from vision_trm.modeling_trm import TRMForMultitaskReasoning
from vision_trm.modeling_trm.rotary import GridRotaryEmbedding
from vision_trm.processing import TRMProcessor, task_canvas_cells
from vision_trm.train_scripts import run_multimodal
from vision_trm.train_scripts.arc_batches import ArcPairBank, SimilarCanvasSampler
from vision_trm.train_scripts.evaluate_arc import evaluate_arc_tasks
from vision_trm.train_scripts.test_time_training import solve_arc_task

TASK = {"id": "t1", "train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3, 1], [2, 1, 1]]}],
        "test": [{"input": [[5, 6, 7, 8]], "output": [[0] * 9] * 9}]}


@pytest.fixture(scope="module")
def crop_config():
    return TRMConfig.from_preset("arc-tiny", num_task_ids=4, hidden_size=32, num_attention_heads=2,
                                 crop_cell_canvas=True)


def test_task_canvas_is_its_largest_known_grid_plus_the_frame():
    # Known before answering: the demonstration (2 x 2 -> 2 x 3) and the 1 x 4 test input; the 9 x 9 test output
    # is never looked at, so the canvas is 4 + 2 cells, whatever the answer is.
    assert task_canvas_cells(TASK, 32) == 6
    assert task_canvas_cells({"train": [{"input": [[0] * 30] * 30, "output": [[1]]}], "test": []}, 32) == 32
    with pytest.raises(ValueError, match="at least one grid"):
        task_canvas_cells({"train": [], "test": []}, 32)


def test_processor_crop_is_the_top_left_corner_of_the_full_canvas(crop_config):
    processor = TRMProcessor.from_config(crop_config)
    grid, target = [[1, 2], [3, 4]], [[4, 3, 1], [2, 1, 1]]
    full = processor([grid], grid_targets=[target])
    cropped = processor([grid], grid_targets=[target], canvas_cells=6)
    assert cropped["pixel_values"].shape == (1, 3, 12, 12) and cropped["cell_labels"].shape == (1, 6, 6)
    assert torch.equal(cropped["pixel_values"], full["pixel_values"][..., :12, :12])
    assert torch.equal(cropped["cell_labels"], full["cell_labels"][:, :6, :6])
    assert torch.equal(cropped["grid_labels"], full["grid_labels"])
    unanswered = dict(TASK, test=[{"input": pair["input"]} for pair in TASK["test"]])
    assert processor([unanswered], canvas_cells="task")["pixel_values"].shape[-1] == 12
    with pytest.raises(ValueError, match=r"\(9, 9\)\] with their frame do not fit a canvas of 6 x 6"):
        processor([TASK], canvas_cells="task")  # a task's own test output is its target: too large for its crop
    # Random placement stays inside the crop: the 2 x 3 target and its frame (4 x 5) in 6 x 6 cells.
    for seed in range(20):
        placed = processor([grid], grid_targets=[target], canvas_cells=6, random_placement=True, seed=seed)
        assert (placed["cell_labels"] != 11).sum() == 4 * 5  # 11 = background: the frame and the grid are all in


@pytest.mark.parametrize("inputs, cells, problem", [
    (["some text"], 6, "not a grid or task"),
    ([[[1] * 10]], 6, "do not fit"),
    ([[[1]]], 2, r"int in \[3, 32\]"),
    ([[[1]]], 40, r"int in \[3, 32\]"),
    ([[[1]]], True, r"int in \[3, 32\]"),
])
def test_processor_refuses_what_a_crop_cannot_hold(crop_config, inputs, cells, problem):
    with pytest.raises(ValueError, match=problem):
        TRMProcessor.from_config(crop_config)(inputs, canvas_cells=cells)


@pytest.mark.parametrize("position_encoding", ["learned", "rope_2d"])
def test_model_reads_a_crop_with_the_corner_positions(crop_config, position_encoding):
    # A crop's tokens are the full canvas's top-left corner: the corner of the learned table, or (rope_2d) the
    # rotations of rows and columns 0..5.
    config = TRMConfig.from_dict({**crop_config.to_dict(), "position_encoding": position_encoding})
    model = TRMForMultitaskReasoning(config).eval()
    batch = TRMProcessor.from_config(config)([[[1, 2], [3, 4]]], canvas_cells=6)
    outputs = model(**batch)
    assert outputs.cell_logits.shape == (1, 6, 6, 12)
    vit = model.trm.trainable_vit
    tokens = vit.patch_embedding(batch["pixel_values"]).flatten(2).transpose(1, 2)
    if position_encoding == "learned":
        corner = vit.position_embeddings.view(1, 32, 32, -1)[:, :6, :6].reshape(1, 36, -1)
        expected = vit.encoder(tokens + corner)
    else:
        expected = vit.encoder(tokens, rotary=GridRotaryEmbedding(config)(6))
    assert torch.allclose(vit(batch["pixel_values"]), expected, atol=1e-6)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        model(pixel_values=torch.zeros(1, 3, 13, 13))


def test_crop_needs_the_cell_head_and_no_tower():
    with pytest.raises(ValueError, match="crop_cell_canvas needs the cell head"):
        TRMConfig.from_preset("arc-tower", crop_cell_canvas=True)
    with pytest.raises(ValueError, match="crop_cell_canvas needs the cell head"):
        TRMConfig.from_preset("tiny", crop_cell_canvas=True)
    full = TRMForMultitaskReasoning(TRMConfig.from_preset("arc-tiny", hidden_size=32, num_attention_heads=2))
    with pytest.raises(ValueError, match="pixel_values must have shape"):
        full(pixel_values=torch.zeros(1, 3, 12, 12))


def test_bank_batches_fit_the_largest_pair_plus_at_most_the_slack(crop_config):
    pairs = [{"task_name": "t1", "input": [[1] * 3] * 2, "output": [[2]]},
             {"task_name": "t2", "input": [[1] * 9] * 9, "output": [[2] * 12] * 4}]
    bank = ArcPairBank(pairs, {"t1": 1, "t2": 2}, 30, task_canvas_cells={"t1": 4, "t2": 11})
    assert bank.canvas_cells.tolist() == [5, 14]  # t1's task canvas is too small for this pair: grown to 3 + 2
    image_processor = TRMProcessor.from_config(crop_config).image_processor
    sides = set()
    for seed in range(30):
        batch = bank.batch(torch.tensor([0, 1]), image_processor, torch.Generator().manual_seed(seed), canvas_slack=3)
        side = batch["cell_labels"].shape[-1]
        assert batch["pixel_values"].shape[-1] == 2 * side
        sides.add(side)
    assert sides == {14, 15, 16, 17}
    alone = bank.batch(torch.tensor([0]), image_processor, torch.Generator().manual_seed(0), augment=False)
    assert alone["cell_labels"].shape[-1] == 5


def test_sampler_batches_pairs_of_one_canvas_size_and_reshuffles_each_epoch():
    sides = torch.tensor([5, 20] * 8)
    sampler = SimilarCanvasSampler(sides, batch_size=4, seed=1)
    first = list(sampler)
    assert sorted(first) == list(range(16))
    assert all(len(set(sides[first[i:i + 4]].tolist())) == 1 for i in range(0, 16, 4))
    assert list(sampler) == first  # the same epoch draws the same order (a resumed run)
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_recipe_evaluation_and_ttt_run_on_cropped_canvases(tmp_path, monkeypatch, crop_config):
    training = [{"id": f"train{i}", "train": [{"input": [[i % 10, 1]], "output": [[1, i % 10]]}] * 2,
                 "test": [{"input": [[2, 3]], "output": [[3, 2]]}]} for i in range(3)]
    evaluation = [{"id": "eval0", "train": [{"input": [[4, 5]], "output": [[5, 4]]}],
                   "test": [{"input": [[6, 7]], "output": [[7, 6]]}]}]
    monkeypatch.setattr(run_multimodal, "load_arc_tasks", lambda version: (training, evaluation))
    results = run_multimodal.main([
        "--recipe", "arc", "--output_dir", str(tmp_path / "run"), "--per_device_train_batch_size", "2",
        "--max_steps", "2", "--save_steps", "2", "--logging_steps", "1", "--max_train_minutes", "0",
        "--use_cpu", "True", "--config_overrides",
        json.dumps({"hidden_size": 16, "num_attention_heads": 2, "crop_cell_canvas": True})])
    assert results["train"]["arc"]["steps_run"] == 2
    assert 0.0 <= results["arc"]["model"]["per_cell_accuracy"] <= 1.0
    model = TRMForMultitaskReasoning.from_pretrained(tmp_path / "run").eval()
    processor = TRMProcessor.from_pretrained(tmp_path / "run")
    assert model.config.crop_cell_canvas
    summary, _ = evaluate_arc_tasks(model, processor, evaluation, num_views=4, batch_size=3)
    assert summary["num_test_inputs"] == 1
    solved = solve_arc_task(model, processor, evaluation[0], steps=2, num_views=2)
    assert solved.steps == 2 and len(solved.attempts[0]) >= 1


def test_a_token_of_several_cells_writes_the_cells_it_reads():
    """`cells_per_token=4` (64 px canvas, 8 px patches, 2 px cells): the processor draws 32 x 32 cells, the head writes
    32 x 32 cell logits, and token (r, c) alone decides cells (4r..4r+3, 4c..4c+3), the cells its patch shows."""
    config = TRMConfig.from_preset("tiny", heads=["grid"], grid_head_type="cells", cells_per_token=4)
    processor = TRMProcessor.from_config(config)
    assert processor.image_processor.tokens_per_side == 32 and processor.image_processor.cell_px == 2
    model = TRMForMultitaskReasoning(config).eval()
    batch = processor([[[1, 2], [3, 4]]], grid_targets=[[[4, 3], [2, 1]]])
    outputs = model(**batch)
    assert outputs.cell_logits.shape == (1, 32, 32, 12) and outputs.loss.isfinite()
    head = model.trm.cell_head
    state = torch.randn(1, 5 + 64, config.hidden_size)
    moved = state.clone()
    moved[:, 5 + 2 * 8 + 3] += 1.0  # token (2, 3)
    changed = (head(moved) - head(state)).abs().sum(-1)[0] > 0
    expected = torch.zeros(32, 32, dtype=torch.bool)
    expected[8:12, 12:16] = True
    assert torch.equal(changed, expected)


@pytest.mark.parametrize("overrides, problem", [
    (dict(cells_per_token=3), "dividing patch_size=8"),
    (dict(cells_per_token=2), "16 cells per side cannot hold"),
])
def test_cells_per_token_must_tile_the_patch_and_hold_a_grid(overrides, problem):
    with pytest.raises(ValueError, match=problem):
        TRMConfig.from_preset("tiny", heads=["grid"], grid_head_type="cells", **overrides)
    with pytest.raises(ValueError, match="needs cells_per_token=1"):
        TRMConfig.from_preset("arc-tiny", cells_per_token=2, crop_cell_canvas=True)


def test_views_of_several_canvas_sizes_come_back_in_their_order(crop_config):
    """`predict_views` batches items by canvas size; each answer must still be its own item's (batch of 2 splits
    each size group, so order, grouping and batching all matter)."""
    from vision_trm.train_scripts.arc_voting import predict_views

    torch.manual_seed(0)
    model = TRMForMultitaskReasoning(crop_config).eval()
    processor = TRMProcessor.from_config(crop_config)
    rng = np.random.default_rng(0)
    grids = [rng.integers(0, 10, (side, side)).tolist() for side in (2, 7, 3, 7, 2)]
    items = [(grid, 1, (d, None), len(grid) + 2 + extra) for d, (grid, extra) in enumerate(zip(grids, (0, 1, 4, 0, 2)))]
    together = predict_views(model, processor, items, batch_size=2)
    alone = [predict_views(model, processor, [item])[0] for item in items]
    for (grid_a, score_a), (grid_b, score_b) in zip(together, alone):
        assert np.array_equal(grid_a, grid_b) and score_a == pytest.approx(score_b, abs=1e-5)
