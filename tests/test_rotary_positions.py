"""Two-dimensional rotary positions (`TRMConfig.position_encoding="rope_2d"`): attention between two cells depends on
their offset alone, the prefix tokens are not turned, no absolute position table exists, and the weights round-trip."""

import pytest
import torch

from vision_trm.configuration import TRMConfig
from vision_trm.modeling_trm import TRMForMultitaskReasoning
from vision_trm.modeling_trm.rotary import GridRotaryEmbedding, apply_grid_rotary
from vision_trm.processing import TRMProcessor

SIDE, PREFIX = 5, 3


def rope_config(**overrides):
    return TRMConfig.from_preset("arc-tiny", **{"hidden_size": 32, "num_attention_heads": 2, "num_task_ids": 3,
                                                "position_encoding": "rope_2d", **overrides})


def scores(config, query, key):
    """`[L, L]` attention logits of one head with the same query and key vector at every position."""
    cos, sin = GridRotaryEmbedding(config)(SIDE, PREFIX)
    length = PREFIX + SIDE * SIDE
    turned_q = apply_grid_rotary(query.expand(1, 1, length, -1), cos, sin)[0, 0]
    turned_k = apply_grid_rotary(key.expand(1, 1, length, -1), cos, sin)[0, 0]
    return turned_q @ turned_k.T


def cell(row, column):
    return PREFIX + row * SIDE + column


def test_attention_between_cells_depends_on_their_offset_only():
    config = rope_config()
    generator = torch.Generator().manual_seed(0)
    query, key = torch.randn(2, 16, generator=generator)
    score = scores(config, query, key)
    # The same offset (+1 row, +2 columns) anywhere on the grid scores the same...
    same_offset = [score[cell(r, c), cell(r + 1, c + 2)] for r, c in ((0, 0), (2, 1), (3, 2))]
    assert torch.allclose(torch.stack(same_offset), same_offset[0].expand(3), atol=1e-5)
    # ...and a row offset is not the column offset (the two halves of a head turn with different axes).
    assert not torch.isclose(score[cell(0, 0), cell(1, 0)], score[cell(0, 0), cell(0, 1)], atol=1e-4)
    # Prefix tokens are not turned: a prefix query scores a prefix key as without rotary positions.
    assert torch.allclose(score[0, 1], query @ key, atol=1e-5)


def test_rope_model_has_no_position_table_and_round_trips(tmp_path):
    config = rope_config(crop_cell_canvas=True)
    model = TRMForMultitaskReasoning(config).eval()
    names = [name for name, _ in model.named_parameters()]
    assert not any("position_embeddings" in name for name in names)
    assert any("position_embeddings" in name
               for name, _ in TRMForMultitaskReasoning(rope_config(position_encoding="learned")).named_parameters())
    processor = TRMProcessor.from_config(config)
    inputs = processor([[[1, 2, 0], [3, 4, 5]]], canvas_cells=6, return_tensors="pt")
    inputs = {key: inputs[key] for key in ("pixel_values", "modality_ids")}
    model.save_pretrained(tmp_path)
    loaded = TRMForMultitaskReasoning.from_pretrained(tmp_path).eval()
    assert loaded.config.position_encoding == "rope_2d"
    with torch.no_grad():
        assert torch.equal(model(**inputs).cell_logits, loaded(**inputs).cell_logits)


def test_every_self_attention_of_the_vit_and_the_recursion_is_turned(monkeypatch):
    # arc-tiny: 1 ViT layer; the recursion's 1-layer net runs H_cycles x (L_cycles + 1) = 4 times per supervision
    # step, 2 steps. Each self-attention turns its queries and its keys.
    from vision_trm.modeling_trm import attention

    lengths = []
    original = attention.apply_grid_rotary

    def counting(states, cos, sin):
        lengths.append(states.shape[2])
        return original(states, cos, sin)

    monkeypatch.setattr(attention, "apply_grid_rotary", counting)
    config = rope_config()
    model = TRMForMultitaskReasoning(config).eval()
    batch = TRMProcessor.from_config(config)([[[1, 2], [3, 4]]], return_tensors="pt")
    with torch.no_grad():
        model(pixel_values=batch["pixel_values"], modality_ids=batch["modality_ids"])
    tokens = config.num_patches
    prefix = config.num_task_prefix_tokens + 11  # task positions + the view's tokens
    assert lengths == [tokens] * 2 + [prefix + tokens] * 2 * 4 * 2


@pytest.mark.parametrize("fields, message", [
    (dict(position_encoding="sinusoidal"), r"position_encoding='sinusoidal' is not one of \('learned', 'rope_2d'\)"),
    (dict(position_encoding="rope_2d", hidden_size=24, num_attention_heads=4), "6 is not a multiple of 4"),
    (dict(position_encoding="rope_2d", rope_theta=1.0), r"rope_theta=1.0 is out of range"),
])
def test_bad_position_settings_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        TRMConfig.from_preset("arc-tiny", **fields)


def test_a_cross_attention_refuses_rotary_positions():
    from vision_trm.modeling_trm.attention import TRMAttention

    attention = TRMAttention(16, 2)
    rotary = GridRotaryEmbedding(rope_config(hidden_size=16))(2)
    with pytest.raises(ValueError, match="self-attention only"):
        attention(torch.zeros(1, 4, 16), key_value_states=torch.zeros(1, 4, 16), rotary=rotary)
