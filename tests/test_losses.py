"""The training objective (`modeling_trm/losses.py`): each loss term, and `TRMMultitaskLoss`'s deep supervision,
halting targets, multi-task weighting and label checks."""

import math

import pytest
import torch
import torch.nn.functional as F

from vision_trm.configuration import IGNORE_INDEX
from vision_trm.modeling_trm import TRMForMultitaskReasoning, TRMModelOutput, TRMMultitaskLoss
from vision_trm.modeling_trm.losses import (
    concept_loss,
    grid_loss,
    grid_targets,
    halting_loss,
    shifted_text_cross_entropy,
)
from tiny_models import make_grid_labels


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def logits_for(labels, strength=50.0):
    """Logits that predict `labels` (and their size) with the given confidence."""
    heights, widths, _ = grid_targets(labels, 10)
    cells = F.one_hot(labels.clamp_min(0), 10).float() * strength
    height_logits = F.one_hot((heights - 1).clamp_min(0), 30).float() * strength
    width_logits = F.one_hot((widths - 1).clamp_min(0), 30).float() * strength
    return cells, height_logits, width_logits


# -------------------------------------------------------------------------------------------------- grid terms


def test_grid_targets_derivation():
    labels = make_grid_labels([(3, 4), (0, 0), (30, 30), (1, 7)])
    heights, widths, has_grid = grid_targets(labels, 10)
    assert heights.tolist() == [3, 0, 30, 1]
    assert widths.tolist() == [4, 0, 30, 7]
    assert has_grid.tolist() == [True, False, True, True]


def test_grid_targets_rejects_bad_colour():
    labels = make_grid_labels([(2, 2)])
    labels[0, 1, 1] = 10
    with pytest.raises(ValueError, match="colour"):
        grid_targets(labels, 10)
    labels[0, 1, 1] = -1
    with pytest.raises(ValueError, match="colour"):
        grid_targets(labels, 10)
    labels[0, :2, :2] = torch.tensor([[0, 1], [2, 7]])
    with pytest.raises(ValueError, match=r"hold values \[7\].*colour in \[0, 5\)"):
        grid_targets(labels, 5)  # the number of colours comes from the config


@pytest.mark.parametrize("cell, value", [((1, 1), IGNORE_INDEX), ((0, 2), IGNORE_INDEX), ((3, 0), 4)])
def test_grid_targets_rejects_non_rectangle(cell, value):
    labels = make_grid_labels([(2, 3), (3, 3)])
    labels[1][cell] = value  # a hole inside the grid, a missing corner, or a stray cell below it
    with pytest.raises(ValueError, match=r"samples \[1\].*rectangle"):
        grid_targets(labels, 10)


def test_grid_targets_rejects_offset_rectangle():
    labels = torch.full((1, 30, 30), IGNORE_INDEX)
    labels[0, 2:4, 1:3] = 5
    with pytest.raises(ValueError, match="rectangle"):
        grid_targets(labels, 10)


def test_grid_loss_small_when_right_and_masked_without_target():
    labels = make_grid_labels([(3, 4), (0, 0)])
    targets = grid_targets(labels, 10)
    cells, heights, widths = logits_for(labels)
    loss = grid_loss(cells, heights, widths, labels, *targets)
    assert loss.shape == (2,)
    assert loss[0] < 1e-3 and loss[1] == 0
    wrong = grid_loss(cells.roll(1, dims=-1), heights, widths, labels, *targets)
    assert wrong[0] > 10 and wrong[1] == 0
    # Cells outside the target are ignored: garbage there must not change the loss.
    cells[0, 10:, 10:] = torch.randn(20, 20, 10) * 100
    assert torch.allclose(grid_loss(cells, heights, widths, labels, *targets), loss)
    # A wrong size costs its cross-entropy even when every cell is right.
    wider = F.one_hot(torch.tensor([4, 0]), 30).float() * 50  # width 5 instead of 4
    assert grid_loss(cells, heights, wider, labels, *targets)[0] > 10


# ------------------------------------------------------------------------------------------- text and halting


def test_shifted_text_cross_entropy_shift():
    labels = torch.tensor([[3, 1, 4, 1, 5], [IGNORE_INDEX] * 5, [IGNORE_INDEX, 2, 7, IGNORE_INDEX, IGNORE_INDEX]])
    # logits[:, t] predicts labels[:, t + 1] confidently.
    next_tokens = torch.cat([labels[:, 1:], torch.zeros(3, 1, dtype=torch.long)], dim=1).clamp_min(0)
    logits = F.one_hot(next_tokens, 10).float() * 50
    nll, counts = shifted_text_cross_entropy(logits, labels)
    assert nll.shape == counts.shape == (3,)
    assert counts.tolist() == [4, 0, 2]  # labels[:, 1:] that are not IGNORE_INDEX
    assert nll[0] < 1e-3 and nll[1] == 0 and nll[2] < 1e-3
    unshifted = F.one_hot(labels.clamp_min(0), 10).float() * 50
    assert (shifted_text_cross_entropy(unshifted, labels)[0][[0, 2]] > 10).all()
    # Summed over the scored tokens: one wrong token of sample 0 costs its full cross-entropy (50).
    logits[0, 0] = F.one_hot(torch.tensor(9), 10).float() * 50
    assert torch.allclose(shifted_text_cross_entropy(logits, labels)[0][0], torch.tensor(50.0), atol=1e-3)


def test_halting_loss_targets():
    q = torch.tensor([[0.0, 0.0], [2.0, -1.0]], requires_grad=True)
    correct = torch.tensor([True, False])
    loss = halting_loss(q, correct, None)
    expected_emit = torch.tensor([math.log(2.0), F.softplus(torch.tensor(2.0)).item()])
    assert loss.shape == (2,) and torch.allclose(loss, expected_emit, atol=1e-6)

    next_q = torch.tensor([[3.0, -1.0], [-2.0, 0.5]], requires_grad=True)
    loss = halting_loss(q, correct, next_q)
    target = torch.sigmoid(torch.tensor([3.0, 0.5]))
    expected_expand = F.binary_cross_entropy_with_logits(q[:, 1].detach(), target, reduction="none")
    assert torch.allclose(loss, expected_emit + expected_expand, atol=1e-6)
    loss.sum().backward()
    assert q.grad is not None and next_q.grad is None  # the bootstrapped target is detached


def test_concept_loss_codebook_and_commitment_terms():
    capsules = torch.randn(2, 3, 8, requires_grad=True)
    codes = torch.randn(2, 3, 8, requires_grad=True)
    loss = concept_loss(capsules, codes, commitment_cost=0.25)
    mse = F.mse_loss(capsules, codes)
    torch.testing.assert_close(loss, 1.25 * mse)
    loss.backward()
    # The codebook term moves the codes to the capsules; the commitment term (weighted) moves the capsules.
    scale = 2 / capsules.numel()
    torch.testing.assert_close(codes.grad, scale * (codes - capsules).detach())
    torch.testing.assert_close(capsules.grad, 0.25 * scale * (capsules - codes).detach())


# ---------------------------------------------------------------------------------------------- the objective


def class_only_outputs(halting_steps, class_logits, halting_logits) -> TRMModelOutput:
    """A base-model output of a classification-only model, as the loss reads it."""
    return TRMModelOutput(step_class_logits=class_logits, halting_logits=halting_logits, halting_steps=halting_steps)


@pytest.mark.parametrize("class_weight, halting_weight", [(1.0, 0.5), (2.0, 0.25)])
def test_deep_supervision_counts_every_step_each_sample_ran(small_model_config, class_weight, halting_weight):
    """The loss by its definition, written as loops: the mean over the (step, sample) pairs at which the sample was
    still running (steps 1 .. its halting step) of the weighted task loss plus the weighted halting loss, whose EMIT
    target is whether the sample's answer at that step is right."""
    config = small_model_config(heads=["classification"], concept_vocab_size=0, classification_loss_weight=class_weight,
                                halting_loss_weight=halting_weight)
    steps, halting_steps = 3, torch.tensor([1, 3, 2])
    class_logits = torch.randn(3, steps, 5)
    class_logits[0, 0, 2] = 20.0  # sample 0 is right at its only step
    class_logits[2, 1, 4] = 20.0  # sample 2 is right at its last step
    halting_logits = torch.randn(3, steps, 2)
    labels = torch.tensor([2, IGNORE_INDEX, 4])
    terms = TRMMultitaskLoss(config)(class_only_outputs(halting_steps, class_logits, halting_logits), labels=labels)

    task_sum = halt_sum = pairs = 0.0
    for b in range(3):
        for s in range(int(halting_steps[b])):
            has_label = bool(labels[b] != IGNORE_INDEX)
            ce = F.cross_entropy(class_logits[b, s], labels[b]).item() if has_label else 0.0
            right = has_label and int(class_logits[b, s].argmax()) == int(labels[b])
            halt = F.binary_cross_entropy_with_logits(halting_logits[b, s, 0], torch.tensor(float(right))).item()
            if s + 1 < steps:
                target = torch.sigmoid(halting_logits[b, s + 1].max())
                halt += F.binary_cross_entropy_with_logits(halting_logits[b, s, 1], target).item()
            task_sum, halt_sum, pairs = task_sum + class_weight * ce, halt_sum + halt, pairs + 1
    assert terms["loss"].item() == pytest.approx(task_sum / pairs + halting_weight * halt_sum / pairs, rel=1e-5)
    assert terms["halting_loss"].item() == pytest.approx(halt_sum / pairs, rel=1e-5)
    # The logged term: per step, the mean over the samples that have a label (0 and 2), then the mean over steps.
    per_step = [F.cross_entropy(class_logits[[0, 2], s], labels[[0, 2]]).item() for s in range(steps)]
    assert terms["classification_loss"].item() == pytest.approx(sum(per_step) / steps, rel=1e-5)
    assert set(terms) == {"loss", "halting_loss", "classification_loss"}  # no concept vocabulary, no other target


def test_samples_without_a_label_do_not_change_the_loss(small_model_config):
    config = small_model_config(heads=["classification"], concept_vocab_size=0)
    halting_steps, halting_logits = torch.tensor([2, 2]), torch.zeros(2, 2, 2)
    class_logits = torch.randn(2, 2, 5)
    labels = torch.tensor([1, IGNORE_INDEX])
    loss = TRMMultitaskLoss(config)(class_only_outputs(halting_steps, class_logits, halting_logits), labels=labels)
    class_logits[1] = torch.randn(2, 5) * 100
    again = TRMMultitaskLoss(config)(class_only_outputs(halting_steps, class_logits, halting_logits), labels=labels)
    torch.testing.assert_close(again["classification_loss"], loss["classification_loss"])
    torch.testing.assert_close(again["loss"], loss["loss"])


def test_model_loss_is_the_loss_module_on_the_base_outputs(small_model_config, model_batch):
    config = small_model_config()
    model = TRMForMultitaskReasoning(config).eval()
    inputs, labels = model_batch(config)
    with torch.no_grad():
        outputs = model(**inputs, **labels)
        terms = TRMMultitaskLoss(config)(model.trm(**inputs), **labels)
    assert set(terms) == {"loss", "grid_loss", "classification_loss", "text_loss", "halting_loss", "concept_loss"}
    for name, value in terms.items():
        torch.testing.assert_close(getattr(outputs, name), value, rtol=0, atol=0, msg=name)
    # Each label array contributes: dropping one changes the loss and removes its term.
    with torch.no_grad():
        without_text = model(**inputs, labels=labels["labels"], grid_labels=labels["grid_labels"])
    assert without_text.text_loss is None and without_text.loss != outputs.loss
    with torch.no_grad():
        assert model(**inputs).loss is None  # no labels, no loss


def test_loss_module_needs_a_target_and_the_head_it_scores(small_model_config, model_batch):
    config = small_model_config(heads=["grid"])
    model = TRMForMultitaskReasoning(config).eval()
    inputs, labels = model_batch(config)
    with torch.no_grad():
        outputs = model.trm(**inputs)
    with pytest.raises(ValueError, match="at least one of labels, grid_labels, text_labels and cell_labels"):
        model.loss_head(outputs)
    with pytest.raises(ValueError, match="no classification head"):
        model.loss_head(outputs, labels=labels["labels"])
    with pytest.raises(ValueError, match="text_labels were given without decoder_input_ids, or this config has no"):
        model.loss_head(outputs, text_labels=labels["text_labels"])
    assert torch.isfinite(model.loss_head(outputs, grid_labels=labels["grid_labels"])["loss"])
