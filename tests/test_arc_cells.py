"""The one-token-per-cell ARC path: cell-aligned layout, per-token cell head, exact box decoding, its loss, and the
copy benchmark (the cell head must learn to copy where the query head cannot)."""

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vision_trm.configuration import (
    BACKGROUND_CLASS,
    BORDER_CLASS,
    IGNORE_INDEX,
    LABEL_NAMES,
    NUM_CELL_CLASSES,
    TRMConfig,
)
from vision_trm.modeling_trm import TRMForMultitaskReasoning, TRMModel, TRMMultitaskLoss, TRMModelOutput
from vision_trm.modeling_trm.cell_head import cell_labels_to_grids, decode_cell_logits
from vision_trm.processing import TRMImageProcessor, TRMProcessor, decode_canvas, grid_placement
from vision_trm.processing.grids import cell_label_map

REPO = Path(__file__).resolve().parents[1]
TOKENS = 32  # the arc-cells presets: 64 px canvas, 2 px patches


def random_grid(rng, height, width):
    return rng.integers(0, 10, size=(height, width))


def confident_logits(cell_labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Logits that favour each token's true class by 4 nats over noise of std 0.5."""
    noise = torch.randn(*cell_labels.shape, NUM_CELL_CLASSES, generator=torch.Generator().manual_seed(seed))
    return 0.5 * noise + 4.0 * torch.nn.functional.one_hot(cell_labels, NUM_CELL_CLASSES)


# ------------------------------------------------------------------------------------------------ decoding
EDGE_CASES = [
    (1, 1, (0, 0)), (1, 1, (TOKENS - 3, TOKENS - 3)), (30, 30, (0, 0)), (30, 1, (0, TOKENS - 3)),
    (1, 30, (TOKENS - 3, 0)), (5, 7, (TOKENS - 7, TOKENS - 9)), (12, 3, (9, 4)),
]


@pytest.mark.parametrize("height, width, offset", EDGE_CASES)
def test_decoding_returns_the_grid_drawn_at_a_known_offset(height, width, offset):
    grid = random_grid(np.random.default_rng(height * 31 + width), height, width)
    cell_labels = torch.from_numpy(cell_label_map(grid, TOKENS, offset))[None]
    grids, boxes = decode_cell_logits(confident_logits(cell_labels), max_grid_size=30)
    assert boxes[0].tolist() == [offset[0], offset[1], height, width]
    expected = np.full((30, 30), IGNORE_INDEX)
    expected[:height, :width] = grid
    np.testing.assert_array_equal(grids[0].numpy(), expected)


def brute_force_box(log_probs: torch.Tensor, max_size: int) -> tuple:
    """The best (top, left, h, w) by scoring every box token by token."""
    side = log_probs.shape[0]
    best_colour = log_probs[..., :10].max(-1).values
    scores = {}
    for top, left, h, w in itertools.product(range(side), range(side), range(1, max_size + 1), range(1, max_size + 1)):
        if top + h + 2 > side or left + w + 2 > side:
            continue
        per_token = log_probs[..., BACKGROUND_CLASS].clone()
        per_token[top : top + h + 2, left : left + w + 2] = log_probs[top : top + h + 2, left : left + w + 2, BORDER_CLASS]
        per_token[top + 1 : top + 1 + h, left + 1 : left + 1 + w] = best_colour[top + 1 : top + 1 + h, left + 1 : left + 1 + w]
        scores[(top, left, h, w)] = per_token.sum().item()
    return max(scores, key=scores.get)


def test_decoding_finds_the_best_box_exactly_on_random_logits():
    logits = torch.randn(6, 8, 8, NUM_CELL_CLASSES, generator=torch.Generator().manual_seed(1)) * 3
    _, boxes = decode_cell_logits(logits, max_grid_size=5)
    for sample in range(6):
        assert tuple(boxes[sample].tolist()) == brute_force_box(logits[sample].double().log_softmax(-1), 5)


def test_decoding_keeps_leading_axes_and_rejects_bad_shapes():
    logits = torch.randn(3, 2, TOKENS, TOKENS, NUM_CELL_CLASSES)
    grids, boxes = decode_cell_logits(logits, 30)
    assert grids.shape == (3, 2, 30, 30) and boxes.shape == (3, 2, 4)
    with pytest.raises(ValueError, match="cell_logits must have shape"):
        decode_cell_logits(torch.randn(2, TOKENS, TOKENS, 10), 30)


def test_cell_labels_to_grids_reads_targets_and_rejects_malformed_layouts():
    rng = np.random.default_rng(0)
    grid = random_grid(rng, 4, 6)
    labels = torch.from_numpy(np.stack([cell_label_map(grid, TOKENS, (3, 20)), np.full((TOKENS, TOKENS), IGNORE_INDEX)]))
    grids, has_grid = cell_labels_to_grids(labels, 30)
    assert has_grid.tolist() == [True, False]
    np.testing.assert_array_equal(grids[0, :4, :6].numpy(), grid)
    assert (grids[0, 4:] == IGNORE_INDEX).all() and (grids[1] == IGNORE_INDEX).all()
    broken = labels.clone()
    broken[0, 0, 0] = 3  # a colour outside the frame
    with pytest.raises(ValueError, match=r"samples \[0\] are not one grid layout"):
        cell_labels_to_grids(broken, 30)
    partial = labels.clone()
    partial[1, 0, 0] = BACKGROUND_CLASS
    with pytest.raises(ValueError, match=r"samples \[1\] are partly -100"):
        cell_labels_to_grids(partial, 30)


# -------------------------------------------------------------------------------------------- processing
def cells_processor() -> TRMProcessor:
    return TRMProcessor.from_config(TRMConfig.from_preset("arc-cells-tiny"))


def test_cells_layout_draws_one_cell_per_token_and_the_target_where_the_input_is():
    processor = cells_processor()
    rng = np.random.default_rng(3)
    grid_in, grid_out = random_grid(rng, 3, 9), random_grid(rng, 7, 2)
    batch = processor([grid_in, "no target"], grid_targets=[grid_out, None], random_placement=True, seed=5,
                      return_bookkeeping=True)
    top, left = batch["cell_offsets"][0].tolist()
    assert batch["cell_offsets"][1].tolist() == [-1, -1]
    canvas = processor.image_processor.denormalize_to_canvas(batch["pixel_values"][0])
    assert grid_placement(canvas) == (2, (2 * top, 2 * left))  # 2 px per cell, a whole-cell offset
    np.testing.assert_array_equal(decode_canvas(canvas), grid_in)
    np.testing.assert_array_equal(batch["cell_labels"][0].numpy(), cell_label_map(grid_out, TOKENS, (top, left)))
    assert (batch["cell_labels"][1] == IGNORE_INDEX).all()
    np.testing.assert_array_equal(batch["grid_labels"][0, :7, :2].numpy(), grid_out)


def test_cells_placement_fits_input_and_target_and_defaults_to_the_corner():
    processor = cells_processor()
    small, large = np.zeros((1, 1), dtype=int), np.ones((30, 30), dtype=int)
    offsets = set()
    for seed in range(20):
        batch = processor([small], grid_targets=[large], random_placement=True, seed=seed, return_bookkeeping=True)
        assert batch["cell_offsets"][0].tolist() == [0, 0]  # only the corner holds the 30 x 30 target
        batch = processor([small], grid_targets=[small], random_placement=True, seed=seed, return_bookkeeping=True)
        offsets.add(tuple(batch["cell_offsets"][0].tolist()))
    assert len(offsets) > 10 and all(0 <= v <= TOKENS - 3 for offset in offsets for v in offset)
    fixed = processor([small], grid_targets=[small], return_bookkeeping=True)
    assert fixed["cell_offsets"][0].tolist() == [0, 0]


def test_render_cell_labels_draws_the_processors_pixels():
    processor = cells_processor()
    grid = random_grid(np.random.default_rng(4), 11, 5)
    batch = processor([grid], grid_targets=[grid], random_placement=True, seed=1)
    torch.testing.assert_close(processor.image_processor.render_cell_labels(batch["cell_labels"]), batch["pixel_values"])


def test_cells_layout_is_saved_and_loaded_and_stays_opt_in(tmp_path):
    processor = cells_processor()
    processor.save_pretrained(tmp_path)
    loaded = TRMProcessor.from_pretrained(tmp_path)
    assert (loaded.image_processor.grid_layout, loaded.image_processor.cell_px) == ("cells", 2)
    default = TRMProcessor.from_config(TRMConfig.from_preset("tiny"))
    assert default.image_processor.grid_layout == "scaled"
    assert "cell_labels" not in default([[[1, 2]]], grid_targets=[[[3]]])
    assert "cell_labels" in LABEL_NAMES


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(grid_layout="cell"), "grid_layout must be one of"),
        (dict(grid_layout="cells", cell_px=0), "cell_px must be an int >= 1"),
        (dict(grid_layout="cells", canvas_size=60), "cannot hold a 30-cell grid"),
        (dict(grid_layout="cells", canvas_size=65), "not a multiple of cell_px"),
    ],
)
def test_image_processor_rejects_a_bad_cells_layout(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TRMImageProcessor(**{"canvas_size": 64, **kwargs})


def test_cells_layout_refuses_off_grid_placement():
    image_processor = cells_processor().image_processor
    with pytest.raises(ValueError, match="multiple of 2 px"):
        image_processor.render_grid([[1]], offset=(1, 0))
    with pytest.raises(ValueError, match="every cell 2 px wide"):
        image_processor.render_grid([[1]], scale=3)


# ----------------------------------------------------------------------------------------------- config
def test_config_validates_the_grid_head_type():
    assert TRMConfig.from_preset("tiny").grid_head_type == "queries"
    with pytest.raises(ValueError, match="grid_head_type='cell' is not one of"):
        TRMConfig(grid_head_type="cell")
    with pytest.raises(ValueError, match="16 cells per side cannot hold a max_grid_size=30 grid"):
        TRMConfig.from_preset("arc-cells-tiny", patch_size=4)
    with pytest.raises(ValueError, match="cell_background_loss_weight=-1"):
        TRMConfig.from_preset("arc-cells-tiny", cell_background_loss_weight=-1)


def test_arc_cells_preset_is_about_ten_million_parameters():
    config = TRMConfig.from_preset("arc-cells")
    with torch.device("meta"):
        model = TRMModel(config)
    trainable = sum(p.numel() for p in model.parameters())
    assert 8e6 < trainable < 12e6 and model.grid_head is None and model.cell_head is not None


# ------------------------------------------------------------------------------------------------ model
@pytest.fixture(scope="module")
def cells_model():
    torch.manual_seed(0)
    return TRMForMultitaskReasoning(TRMConfig.from_preset("arc-cells-tiny")).eval()


@pytest.fixture(scope="module")
def cells_batch():
    rng = np.random.default_rng(0)
    grids = [random_grid(rng, 2, 3), random_grid(rng, 30, 30)]
    return cells_processor()(grids + ["text"], grid_targets=[grids[1], grids[0], None], random_placement=True, seed=0)


def test_cell_head_outputs_and_decoded_predictions(cells_model, cells_batch):
    with torch.no_grad():
        outputs = cells_model(**cells_batch)
    steps = outputs.halting_logits.shape[1]
    assert outputs.cell_logits.shape == (3, TOKENS, TOKENS, NUM_CELL_CLASSES)
    assert outputs.step_cell_logits.shape == (3, steps, TOKENS, TOKENS, NUM_CELL_CLASSES)
    assert outputs.grid_logits is None and outputs.step_grid_logits is None
    expected, _ = decode_cell_logits(outputs.step_cell_logits, 30)
    torch.testing.assert_close(outputs.step_grid_predictions, expected)
    rows = torch.arange(3)
    torch.testing.assert_close(outputs.grid_predictions, expected[rows, outputs.halting_steps - 1])
    assert len(cells_processor().post_process_grid(outputs.grid_predictions)) == 3
    assert torch.isfinite(outputs.loss) and outputs.grid_loss > 0


def test_cell_loss_trains_the_cell_head(cells_batch):
    torch.manual_seed(0)
    model = TRMForMultitaskReasoning(TRMConfig.from_preset("arc-cells-tiny"))
    model(**cells_batch).loss.backward()
    assert model.trm.cell_head.classifier.weight.grad.abs().sum() > 0
    assert model.trm.trainable_vit.patch_embedding.weight.grad.abs().sum() > 0


def test_loss_rejects_labels_that_do_not_fit_the_head(cells_model, cells_batch):
    inputs = {key: cells_batch[key] for key in ("pixel_values", "modality_ids")}
    with pytest.raises(ValueError, match="trains on cell_labels"):
        cells_model(**inputs, grid_labels=cells_batch["grid_labels"])
    swapped = cells_batch["grid_labels"][[1, 0, 2]]
    with pytest.raises(ValueError, match=r"samples \[0, 1\] are not the same grids"):
        cells_model(**inputs, grid_labels=swapped, cell_labels=cells_batch["cell_labels"])
    with pytest.raises(ValueError, match="cell_labels must have shape"):
        cells_model(**inputs, cell_labels=cells_batch["cell_labels"][:, :8, :8])
    with pytest.raises(ValueError, match="no cell head"):
        tiny = TRMForMultitaskReasoning(TRMConfig.from_preset("tiny"))
        tiny(torch.randn(1, 3, 64, 64), cell_labels=torch.full((1, 8, 8), BACKGROUND_CLASS))


def synthetic_outputs(cell_logits: torch.Tensor, emit_logit: float) -> TRMModelOutput:
    """One supervision step's outputs around given cell logits, with a fixed halting EMIT logit."""
    grids, _ = decode_cell_logits(cell_logits[:, None], 30)
    batch = cell_logits.shape[0]
    return TRMModelOutput(
        step_cell_logits=cell_logits[:, None], step_grid_predictions=grids,
        halting_logits=torch.tensor([[[emit_logit, 0.0]]]).expand(batch, 1, 2), halting_steps=torch.ones(batch, dtype=torch.long),
    )


def test_cell_loss_counts_background_by_its_weight_and_halting_learns_exact_grids():
    grid = random_grid(np.random.default_rng(2), 6, 4)
    labels = torch.from_numpy(cell_label_map(grid, TOKENS, (2, 2)))[None]
    logits = 30.0 * torch.nn.functional.one_hot(labels, NUM_CELL_CLASSES).float()
    wrong_background = logits.clone()
    wrong_background[labels == BACKGROUND_CLASS] = 30.0 * torch.nn.functional.one_hot(
        torch.tensor(BORDER_CLASS), NUM_CELL_CLASSES).float()  # a frame everywhere outside the grid
    config = TRMConfig.from_preset("arc-cells-tiny", halting_loss_weight=0.0)
    perfect = TRMMultitaskLoss(config)(synthetic_outputs(logits, 10.0), cell_labels=labels)
    assert perfect["grid_loss"] < 1e-4 and perfect["halting_loss"] < 1e-3  # right grid: EMIT is right
    unweighted = TRMMultitaskLoss(config)(synthetic_outputs(wrong_background, 10.0), cell_labels=labels)
    assert unweighted["grid_loss"] > 1.0 and unweighted["halting_loss"] > 5.0  # wrong grid: EMIT is wrong
    no_background = TRMConfig.from_preset("arc-cells-tiny", cell_background_loss_weight=0.0)
    ignored = TRMMultitaskLoss(no_background)(synthetic_outputs(wrong_background, 10.0), cell_labels=labels)
    assert ignored["grid_loss"] < 1e-4


def test_an_untrained_model_does_not_halt_at_the_first_step():
    torch.manual_seed(0)
    model = TRMModel(TRMConfig.from_preset("tiny")).eval()
    assert model.halting_head.q_proj.bias.tolist() == [-5.0, 0.0]
    with torch.no_grad():
        outputs = model(torch.randn(8, 3, 64, 64))
    assert (outputs.halting_steps == model.config.deep_supervision_steps).all()


# -------------------------------------------------------------------------------------------- benchmark
def test_copy_benchmark_cell_head_learns_to_copy(tmp_path):
    """A few dozen CPU seconds on small grids: the cell head copies (the query head stays near 0% here)."""
    result_path = tmp_path / "copy.json"
    command = [
        sys.executable, str(REPO / "benchmarks" / "bench_copy.py"), "--preset", "arc-cells-tiny",
        "--set", "image_size=16", "--set", "max_grid_size=6", "--set", "hidden_size=32", "--max_side", "5",
        "--max_steps", "150", "--batch_size", "16", "--lr", "3e-3", "--warmup_steps", "20", "--eval_samples", "200",
        "--json", str(result_path),
    ]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
    result = json.loads(result_path.read_text())
    assert result["head"] == "cells" and result["steps"] == 150 and result["eval_samples"] == 200
    assert result["per_cell_accuracy"] > 0.95 and result["exact_copy_rate"] > 0.9, result
