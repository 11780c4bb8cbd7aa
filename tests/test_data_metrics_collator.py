"""The repo's local `evaluate` modules compute known values offline; the mixed-batch collator's shapes."""

import json
import math

import numpy as np
import pytest
import torch
from transformers import EvalPrediction

from vision_trm.configuration import IGNORE_INDEX, LABEL_NAMES, MODEL_INPUT_NAMES
from vision_trm.configuration.conventions import IDENTITY_AUGMENTATION, MODALITY_GRID
from vision_trm.configuration.configuration_trm import TRMConfig
from vision_trm.processing import TRMProcessor
from vision_trm.train_scripts.collator import MultimodalCollator
from vision_trm.train_scripts.data_arc import transform_grid
from vision_trm.train_scripts.data_sources import build_composite
from vision_trm.train_scripts.evaluation import compute_metrics
from vision_trm.train_scripts.evaluation import load_metric as load


def test_accuracy_metric():
    assert load("accuracy").compute(predictions=[0, 1, 1, 2], references=[0, 1, 0, 2])["accuracy"] == 0.75


def test_perplexity_metric():
    result = load("perplexity").compute(nll_sums=[2 * math.log(4), math.log(4)], token_counts=[2, 1])
    assert result["perplexity"] == pytest.approx(4.0)
    assert result["bits_per_token"] == pytest.approx(2.0)
    assert result["num_tokens"] == 3


def test_arc_exact_match_pass_at_k_and_cells():
    metric = load("arc_exact_match")
    predictions = [json.dumps([[[1]], [[2]]]),  # task a: second attempt right
                   json.dumps([[1, 3]]),  # task b test 0: one grid, half the cells right
                   json.dumps([[[5]]]),  # task b test 1: right
                   json.dumps([[[7, 7], [7, 7]]])]  # task c: right
    references = [json.dumps([[2]]), json.dumps([[1, 2]]), json.dumps([[5]]), json.dumps([[7, 7], [7, 7]])]
    result = metric.compute(predictions=predictions, references=references, task_ids=["a", "b", "b", "c"])
    assert result["num_tasks"] == 3 and result["num_test_inputs"] == 4
    assert result["pass@1"] == pytest.approx(1 / 3)  # only c; b needs both test outputs right
    assert result["pass@2"] == pytest.approx(2 / 3)  # a and c
    assert result["exact_match"] == pytest.approx(0.5)
    assert result["per_cell_accuracy"] == pytest.approx((0 + 0.5 + 1 + 1) / 4)
    assert "per_input_cell_accuracy" not in result  # only on request: Trainer logs take scalars
    per_input = metric.compute(predictions=predictions, references=references, per_input=True)
    assert per_input["per_input_cell_accuracy"] == pytest.approx([0, 0.5, 1, 1])
    wrong_shape = metric.compute(predictions=[json.dumps([[1, 1, 1]])], references=[json.dumps([[1], [1]])])
    assert wrong_shape["exact_match"] == 0.0 and wrong_shape["per_cell_accuracy"] == pytest.approx(0.5)
    # 1 cell right of a union of 4 (target 2, answer 3, overlap 1): the extra answer cells count as wrong
    assert wrong_shape["per_cell_accuracy_over_union"] == pytest.approx(1 / 4)


def test_per_cell_accuracy_over_the_union_charges_an_answer_larger_than_its_target():
    metric = load("arc_exact_match")
    target = [[1, 2], [3, 4]]
    too_large = [[1, 2, 0], [3, 4, 0], [0, 0, 0]]  # every target cell right, 5 cells too many
    too_small = [[1]]
    result = metric.compute(predictions=[json.dumps(too_large), json.dumps(too_small), json.dumps(target)],
                            references=[json.dumps(target)] * 3, per_input=True)
    assert result["per_input_cell_accuracy"] == pytest.approx([1.0, 0.25, 1.0])  # the plain score is fooled
    assert result["per_input_cell_accuracy_over_union"] == pytest.approx([4 / 9, 0.25, 1.0])
    assert result["per_cell_accuracy_over_union"] == pytest.approx((4 / 9 + 0.25 + 1) / 3)


def test_collator_shapes(tmp_path):
    data, vocabulary = build_composite(cache_dir=tmp_path, max_samples_per_source=30, max_eval_samples=8,
                                       arc_augmentations=1, seed=0)
    config = TRMConfig.from_preset("tiny", num_task_ids=len(vocabulary) + 1)
    processor = TRMProcessor.from_config(config, task_vocabulary=vocabulary)
    collator = MultimodalCollator(processor, keep_sources=True, random_placement=True)
    rows = [data["train"][i] for i in range(12)]
    assert {r["modality"] for r in rows} == {0, 1, 2}, "the test needs every modality in its batch"
    batch = collator(rows)
    # The model's inputs and labels (and the sources the NaN guard names), no processor bookkeeping.
    # `cell_labels` belong to the one-token-per-cell layout only (the arc-cells presets), not to this preset's;
    # ARC rows name their view, so the batch says which view each row shows (`augmentation_ids`).
    assert set(batch) == set(MODEL_INPUT_NAMES) | set(LABEL_NAMES) - {"cell_labels"} | {"row_sources"}
    s = config.image_size
    assert batch["pixel_values"].shape == (12, 3, s, s)
    assert batch["modality_ids"].tolist() == [r["modality"] for r in rows]
    assert batch["task_ids"].tolist() == [r["task_id"] for r in rows]
    assert batch["grid_labels"].shape == (12, 30, 30)
    assert batch["labels"].tolist() == [r["label"] for r in rows]
    for i, row in enumerate(rows):
        if row["modality"] == 2:
            h, w = len(row["output_grid"]), len(row["output_grid"][0])
            assert (batch["grid_labels"][i, :h, :w] >= 0).all() and (batch["grid_labels"][i, h:, :] == -100).all()
        else:
            assert (batch["grid_labels"][i] == -100).all()
        has_text = row["modality"] == 0
        assert bool((batch["text_labels"][i] != -100).any()) == has_text
    assert batch["decoder_input_ids"].shape == batch["text_labels"].shape
    assert batch["decoder_input_ids"].shape[1] <= config.max_text_length
    assert len(batch["row_sources"]) == 12
    assert batch["row_sources"] == [r["source"] for r in rows]
    identity = list(IDENTITY_AUGMENTATION)
    assert batch["augmentation_ids"].tolist() == [r["augmentation"] or identity for r in rows]
    # N2N pre-training keeps only the canvases.
    assert set(MultimodalCollator(processor, names=("pixel_values",))(rows)) == {"pixel_values"}


def test_trainer_compute_metrics_gives_known_values():
    grid_labels = np.full((3, 30, 30), IGNORE_INDEX)
    grid_labels[0, :2, :2] = [[1, 2], [3, 4]]
    grid_labels[1, :1, :3] = [[5, 5, 5]]
    # As the model's grid_predictions: IGNORE_INDEX outside the predicted size.
    grid_predictions = np.full((3, 30, 30), IGNORE_INDEX)
    grid_predictions[0, :2, :2] = [[1, 2], [3, 4]]  # exact
    grid_predictions[1, :1, :3] = [[5, 0, 5]]  # 2 of 3 cells
    prediction = EvalPrediction(
        predictions=(np.array([1, 0, 2]), grid_predictions, np.array([0.0, 0.0, 2 * math.log(4)]), np.array([0, 0, 2])),
        label_ids=(np.array([-100, 0, 1]), grid_labels),
    )
    metrics = compute_metrics(prediction)
    assert metrics["accuracy"] == 0.5  # rows 1 and 2 have labels; row 1 right, row 2 wrong
    assert metrics["arc_exact_match"] == 0.5
    assert abs(metrics["arc_per_cell_accuracy"] - (1.0 + 2 / 3) / 2) < 1e-9  # mean over grids
    assert abs(metrics["perplexity"] - 4.0) < 1e-9


@pytest.fixture(scope="module")
def viewed_arc_rows(tmp_path_factory):
    """A cell-layout processor and 4 composite ARC rows whose views are neither the identity transform nor the
    identity permutation."""
    data, vocabulary = build_composite(cache_dir=tmp_path_factory.mktemp("composite"), max_samples_per_source=40,
                                       max_eval_samples=8, arc_augmentations=4, seed=0)
    config = TRMConfig.from_preset("arc-cells-tiny", num_task_ids=len(vocabulary) + 1)
    processor = TRMProcessor.from_config(config, task_vocabulary=vocabulary)
    rows = [row for row in data["train"] if row["modality"] == MODALITY_GRID]
    rows = [row for row in rows if row["augmentation"][0] != 0 and row["augmentation"][1:] != list(range(10))][:4]
    assert len(rows) == 4, "the tests need ARC rows in views other than the identity"
    return processor, rows


def test_collator_draws_each_arc_row_in_its_view_and_tells_the_model(viewed_arc_rows):
    """Composite ARC rows keep the pair as it is and name their view; the batch must show the pair in that view
    (input and target alike) and say which view it is, or a model with augmentation tokens is told the identity
    for a rotated, recoloured pair (all views of a pair share one task id)."""
    processor, rows = viewed_arc_rows
    batch = MultimodalCollator(processor)(rows)
    assert batch["augmentation_ids"].tolist() == [row["augmentation"] for row in rows]
    as_stored = processor([row["input_grid"] for row in rows], grid_targets=[row["output_grid"] for row in rows],
                          return_tensors="pt")
    assert not torch.equal(batch["cell_labels"], as_stored["cell_labels"])
    for i, row in enumerate(rows):
        dihedral, permutation = row["augmentation"][0], np.array(row["augmentation"][1:])
        viewed_input = transform_grid(row["input_grid"], dihedral, permutation)
        viewed_output = transform_grid(row["output_grid"], dihedral, permutation)
        expected = processor(viewed_input, grid_targets=viewed_output, return_tensors="pt")
        assert torch.equal(batch["cell_labels"][i], expected["cell_labels"][0])
        assert torch.equal(batch["pixel_values"][i], expected["pixel_values"][0])


def test_placement_seed_hashes_the_grid_as_shown():
    """The random placement is seeded from what the batch shows: a pair stored in its view and the same pair stored
    as is with the view named get one seed (so a default run reproduces its weights across the row layouts), and a
    different view gets another."""
    collator = MultimodalCollator(processor=None, random_placement=True)
    grid, view = [[1, 2, 0], [3, 4, 0]], [5, 0, 3, 1, 2, 4, 5, 6, 7, 8, 9]
    shown = transform_grid(grid, view[0], np.array(view[1:])).tolist()
    stored_in_view = {"modality": MODALITY_GRID, "source": "arc:t", "input_grid": shown, "augmentation": []}
    view_named = {"modality": MODALITY_GRID, "source": "arc:t", "input_grid": grid, "augmentation": view}
    other_view = dict(view_named, augmentation=[1] + view[1:])
    seed = collator._placement([stored_in_view])["seed"]
    assert collator._placement([view_named])["seed"] == seed
    assert collator._placement([other_view])["seed"] != seed


def test_collator_shows_only_the_view_parts_the_model_is_trained_on(viewed_arc_rows):
    """`TRMConfig.arc_view_parts` reaches the main job's rows too: without "colours" the rows keep their dihedral
    transform and lose their colour permutation, without "dihedral" the reverse, and without "translation" the
    grids are not placed at random."""
    processor, rows = viewed_arc_rows
    identity = list(range(10))
    no_colours = MultimodalCollator(processor, view_parts=("dihedral", "translation"))(rows)["augmentation_ids"]
    assert no_colours.tolist() == [[row["augmentation"][0], *identity] for row in rows]
    no_dihedral = MultimodalCollator(processor, view_parts=("colours",))(rows)["augmentation_ids"]
    assert no_dihedral.tolist() == [[0, *row["augmentation"][1:]] for row in rows]
    assert MultimodalCollator(processor, random_placement=True)._placement(rows)["random_placement"]
    assert MultimodalCollator(processor, random_placement=True, view_parts=("dihedral",))._placement(rows) == {}
