"""Tests of the reasoning blocks: TRM core and halting, capsules, concept vocabulary, planner and task heads.

The loss terms these blocks are trained with (`modeling_trm/losses.py`) are tested in `test_losses.py`.
"""

import pytest
import torch
import torch.nn.functional as F

from vision_trm.configuration import IGNORE_INDEX
from vision_trm.configuration.configuration_trm import TRMConfig
from vision_trm.modeling_trm.capsules import CapsulePooling
from vision_trm.modeling_trm.concepts import ConceptVocabulary
from vision_trm.modeling_trm.heads import ClassificationHead, GridHead, TextDecoderHead, decode_grid_logits
from vision_trm.modeling_trm.losses import concept_loss
from vision_trm.modeling_trm.planner import LatentPlanner
from vision_trm.modeling_trm.recursion import HaltingHead, TRMReasoningCore, should_halt
from tiny_models import make_grid_labels

HIDDEN = 32


def tiny_config(**overrides):
    return TRMConfig.from_preset("tiny", hidden_size=HIDDEN, **overrides)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------------------------------------------------------
# Recursion and halting
# ---------------------------------------------------------------------------------------------------------------


def test_core_shapes_and_initial_carry():
    core = TRMReasoningCore(tiny_config(H_cycles=2, L_cycles=2))
    x = torch.randn(3, 5, HIDDEN)
    y, z = core.initial_carry(x)
    assert y.shape == z.shape == x.shape
    assert torch.equal(y[0, 0], core.y_init.detach()) and torch.equal(z[2, 4], core.z_init.detach())
    y, z = core(x, y, z)
    assert y.shape == z.shape == x.shape and torch.isfinite(y).all()


def test_only_last_h_cycle_builds_a_graph():
    H, L = 3, 2
    core = TRMReasoningCore(tiny_config(H_cycles=H, L_cycles=L))
    grad_enabled_calls = []
    core.net.register_forward_hook(lambda *args: grad_enabled_calls.append(torch.is_grad_enabled()))
    x = torch.randn(2, 4, HIDDEN, requires_grad=True)
    y, z = core(x, *core.initial_carry(x))
    assert len(grad_enabled_calls) == H * (L + 1)
    assert sum(grad_enabled_calls) == L + 1  # only the last cycle's L z-updates and one y-update
    y.sum().backward()
    grad_full = x.grad.clone()

    # The same gradient must come from one graph-building cycle started at the carry after H - 1 silent cycles.
    x.grad = None
    y0, z0 = core.initial_carry(x)
    with torch.no_grad():
        for _ in range(H - 1):
            y0, z0 = core._cycle(x, y0, z0)
    one_step = TRMReasoningCore(tiny_config(H_cycles=1, L_cycles=L))
    one_step.load_state_dict(core.state_dict())
    y1, _ = one_step(x, y0, z0)
    assert torch.allclose(y1, y, atol=1e-6)
    y1.sum().backward()
    assert torch.allclose(x.grad, grad_full, atol=1e-6)


def test_halting_head_init_does_not_halt():
    head = HaltingHead(tiny_config())
    q = head(torch.randn(8, HIDDEN))
    assert q.shape == (8, 2)
    assert not should_halt(q).any()
    assert torch.allclose(q[:, 0], torch.full((8,), -5.0), atol=0.5)


def test_should_halt():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-2.0, -3.0]])
    assert should_halt(q).tolist() == [True, False, True]


# ---------------------------------------------------------------------------------------------------------------
# Capsules and concept vocabulary
# ---------------------------------------------------------------------------------------------------------------


def test_capsule_pooling_shape_and_mask():
    config = tiny_config(num_capsules=5)
    pooling = CapsulePooling(config).eval()
    tokens = torch.randn(2, 7, HIDDEN)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[:, 5:] = False
    capsules = pooling(tokens, mask)
    assert capsules.shape == (2, 5, HIDDEN)
    changed = tokens.clone()
    changed[:, 5:] += 10.0
    assert torch.allclose(pooling(changed, mask), capsules, atol=1e-5)  # padded tokens are invisible
    assert not torch.allclose(pooling(changed), capsules, atol=1e-3)


def test_concepts_use_many_codes_and_quantize_to_codebook_rows():
    vq = ConceptVocabulary(tiny_config(concept_vocab_size=16)).train()
    assert not vq.initialized
    for _ in range(4):
        capsules = torch.randn(4, 6, HIDDEN)
        quantized, ids, codes = vq(capsules)
    assert vq.initialized
    assert ids.shape == (4, 6) and ids.dtype == torch.long
    assert torch.allclose(quantized, vq.codebook[ids], atol=1e-6)
    assert torch.equal(codes, vq.codebook[ids])
    loss = concept_loss(capsules, codes, commitment_cost=0.25)
    assert loss.ndim == 0 and loss > 0
    stats = vq.usage_statistics()
    assert stats["codes_used"] > 1 and stats["perplexity"] > 1.0
    assert stats["fraction_used"] == stats["codes_used"] / 16
    assert vq.code_usage.sum() == 4 * 4 * 6
    # The init flag and the dead-code clocks are saved with the weights, so a resumed run keeps them.
    assert {"codebook", "initialized", "code_usage", "steps_since_used"} <= vq.state_dict().keys()
    vq.reset_usage()
    assert vq.usage_statistics() == {"codes_used": 0, "fraction_used": 0.0, "perplexity": 0.0}


def test_concepts_straight_through_and_codebook_gradients():
    vq = ConceptVocabulary(tiny_config(concept_vocab_size=8)).train()
    capsules = torch.randn(2, 3, HIDDEN, requires_grad=True)
    quantized, _, codes = vq(capsules)
    quantized.sum().backward(retain_graph=True)
    assert torch.equal(capsules.grad, torch.ones_like(capsules))  # identity gradient through the quantiser
    assert vq.codebook.grad is None  # ... which does not touch the codebook
    codes.sum().backward()
    assert vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0  # the codes carry the codebook's


def test_concepts_eval_does_not_update_usage_and_is_deterministic():
    vq = ConceptVocabulary(tiny_config(concept_vocab_size=8)).eval()
    vq(torch.randn(2, 3, HIDDEN))
    assert vq.code_usage.sum() == 0 and not vq.initialized

    def trained_codebook():
        torch.manual_seed(1)
        model = ConceptVocabulary(tiny_config(concept_vocab_size=8)).train()
        model(torch.randn(2, 3, HIDDEN))
        return model.codebook.detach().clone()

    assert torch.equal(trained_codebook(), trained_codebook())


def test_dead_codes_are_reset_to_current_vectors():
    vq = ConceptVocabulary(tiny_config(concept_vocab_size=8), dead_code_steps=1).train()
    vq(torch.randn(4, 3, HIDDEN))
    with torch.no_grad():
        vq.codebook[1:] = 1000.0  # push every code but 0 out of reach: they die
    _, ids, _ = vq(torch.randn(4, 3, HIDDEN))
    assert (ids == 0).all()
    _, ids, _ = vq(torch.randn(4, 3, HIDDEN))  # dead codes are reset at the start of this update
    assert vq.codebook[1:].abs().max() < 100.0
    assert ids.unique().numel() > 1


# ---------------------------------------------------------------------------------------------------------------
# Planner
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("selection", ["soft", "gumbel"])
def test_planner_weights_and_memory(selection):
    config = tiny_config(num_capsules=4, planner_num_paths=3, planner_num_thoughts=2, planner_selection=selection)
    planner = LatentPlanner(config).train()
    capsules = torch.randn(5, 4, HIDDEN, requires_grad=True)
    memory, weights = planner(capsules)
    assert memory.shape == (5, 4 + 2, HIDDEN) and weights.shape == (5, 3)
    assert torch.allclose(weights.sum(-1), torch.ones(5), atol=1e-5)
    assert torch.equal(memory[:, :4], capsules)
    if selection == "gumbel":
        assert ((weights == 0) | (weights == 1)).all()  # hard one-hot forward in training
    memory.sum().backward()
    assert planner.scorer.weight.grad.abs().sum() > 0  # soft / straight-through gradient reaches the scorer

    planner.eval()
    _, weights = planner(capsules)
    assert torch.allclose(weights.sum(-1), torch.ones(5), atol=1e-5)
    assert ((weights > 0) & (weights < 1)).all()  # plain softmax at eval


def test_planner_num_thoughts_changes_memory_length():
    for thoughts in (1, 3):
        planner = LatentPlanner(tiny_config(num_capsules=4, planner_num_paths=2, planner_num_thoughts=thoughts))
        memory, _ = planner(torch.randn(2, 4, HIDDEN))
        assert memory.shape == (2, 4 + thoughts, HIDDEN)


def test_planner_paths_are_independent_of_batch_folding():
    planner = LatentPlanner(tiny_config(num_capsules=4, planner_num_paths=3)).eval()
    capsules = torch.randn(3, 4, HIDDEN)
    memory, weights = planner(capsules)
    single_memory, single_weights = planner(capsules[1:2])
    assert torch.allclose(single_memory, memory[1:2], atol=1e-5)
    assert torch.allclose(single_weights, weights[1:2], atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Grid head
# ---------------------------------------------------------------------------------------------------------------


def logits_for(labels, strength=50.0):
    """Logits that predict `labels` (and their size) with the given confidence."""
    valid = labels != IGNORE_INDEX
    heights, widths = valid.any(dim=2).sum(dim=1), valid.any(dim=1).sum(dim=1)
    cells = F.one_hot(labels.clamp_min(0), 10).float() * strength
    height_logits = F.one_hot((heights - 1).clamp_min(0), 30).float() * strength
    width_logits = F.one_hot((widths - 1).clamp_min(0), 30).float() * strength
    return cells, height_logits, width_logits


def exact_match(grids, labels):
    """Both pad with IGNORE_INDEX outside the grid, so comparing the whole canvas also compares the sizes."""
    return (grids == labels).flatten(1).all(1)


def test_grid_head_shapes():
    head = GridHead(tiny_config())
    memory = torch.randn(2, 6, HIDDEN)
    cells, heights, widths = head(memory, memory_mask=torch.ones(2, 6, dtype=torch.bool))
    assert cells.shape == (2, 30, 30, 10) and heights.shape == (2, 30) and widths.shape == (2, 30)


def test_decode_grid_logits_and_exact_match():
    labels = make_grid_labels([(3, 4), (2, 2), (0, 0)])
    cells, heights, widths = logits_for(labels)
    grids = decode_grid_logits(cells, heights, widths)
    assert grids.dtype == torch.long and grids.shape == (3, 30, 30)
    assert (grids[0, 3:] == IGNORE_INDEX).all() and (grids[0, :, 4:] == IGNORE_INDEX).all()
    assert (grids[0, :3, :4] >= 0).all() and (grids[1, :2, :2] >= 0).all()
    assert torch.equal(grids[0, :3, :4], labels[0, :3, :4])
    # A row without a target decodes to its argmax size (1x1 here), which cannot match the all-padding label.
    assert (grids[2] != IGNORE_INDEX).sum() == 1
    assert exact_match(grids, labels).tolist() == [True, True, False]

    wrong_cell = grids.clone()
    wrong_cell[0, 0, 0] = (wrong_cell[0, 0, 0] + 1) % 10
    assert exact_match(wrong_cell, labels).tolist() == [False, True, False]
    wider = heights.clone(), F.one_hot(torch.tensor([4, 1, 0]), 30).float() * 50  # width 5 instead of 4
    assert exact_match(decode_grid_logits(cells, *wider), labels).tolist() == [False, True, False]


def test_decode_grid_logits_keeps_leading_axes():
    """The model decodes every supervision step at once: `[batch, steps, S, S, colours]` -> `[batch, steps, S, S]`,
    each step with its own size."""
    labels = make_grid_labels([(3, 4), (2, 5)])
    cells, heights, widths = logits_for(labels)
    per_step = decode_grid_logits(cells.flip(0)[None], heights.flip(0)[None], widths.flip(0)[None])
    assert per_step.shape == (1, 2, 30, 30)
    assert torch.equal(per_step[0], decode_grid_logits(cells, heights, widths).flip(0))


# ---------------------------------------------------------------------------------------------------------------
# Classification and text heads
# ---------------------------------------------------------------------------------------------------------------


def test_classification_head_shape():
    head = ClassificationHead(tiny_config(num_labels=7))
    assert head(torch.randn(3, 5, HIDDEN)).shape == (3, 7)


def test_text_decoder_is_causal_and_validates():
    config = tiny_config(text_vocab_size=50, max_text_length=12)
    decoder = TextDecoderHead(config).eval()
    memory = torch.randn(2, 6, HIDDEN)
    ids = torch.randint(0, 50, (2, 10))
    logits = decoder(ids, memory)
    assert logits.shape == (2, 10, 50)
    changed = ids.clone()
    changed[:, 6] = (changed[:, 6] + 1) % 50
    changed_logits = decoder(changed, memory)
    assert torch.allclose(changed_logits[:, :6], logits[:, :6], atol=1e-5)
    assert not torch.allclose(changed_logits[:, 6], logits[:, 6], atol=1e-4)

    with pytest.raises(ValueError, match="max_text_length"):
        decoder(torch.zeros(2, 13, dtype=torch.long), memory)
    with pytest.raises(ValueError, match=r"\[0, 50\)"):
        decoder(torch.full((2, 4), 50), memory)
    with pytest.raises(ValueError, match=r"\[0, 50\)"):
        decoder(torch.full((2, 4), -100), memory)


def test_text_decoder_padding_mask_and_empty_rows():
    decoder = TextDecoderHead(tiny_config(text_vocab_size=50)).eval()
    memory = torch.randn(2, 6, HIDDEN)
    ids = torch.randint(0, 50, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[0, 5:] = 0
    mask[1] = 0  # a sample without text
    logits = decoder(ids, memory, attention_mask=mask)
    assert torch.isfinite(logits).all()
    assert torch.allclose(decoder(ids[:1, :5], memory[:1]), logits[:1, :5], atol=1e-5)
