"""The assembled TRMModel: shapes, gradient flow, ablation flags, halting, bad input, loading."""

import pytest
import torch
from transformers import CLIPVisionConfig

from vision_trm.configuration import TRMConfig
from vision_trm.modeling_trm import TRMForImageClassification, TRMModel

SIDE = 30


def tiny_config(**overrides) -> TRMConfig:
    values = dict(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_attention_heads=2,
        vit_num_layers=1,
        adapter_num_layers=1,
        concept_vocab_size=16,
        num_capsules=4,
        planner_num_paths=3,
        planner_num_thoughts=2,
        max_text_length=16,
        num_labels=5,
        num_task_ids=4,
        deep_supervision_steps=2,
    )
    values.update(overrides)
    return TRMConfig.from_preset("tiny", **values)


def tiny_clip_config(**overrides) -> TRMConfig:
    clip = CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8
    )
    return tiny_config(pretrained_tower="clip", vision_config=clip.to_dict(), **overrides)


def make_batch(config: TRMConfig, batch: int = 3, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    grid_labels = torch.full((batch, SIDE, SIDE), -100, dtype=torch.long)
    grid_labels[0, :3, :4] = torch.randint(0, 10, (3, 4), generator=generator)
    text = torch.randint(3, config.text_vocab_size, (batch, 8), generator=generator)
    text_labels = torch.full_like(text, -100)
    text_labels[2] = text[2]
    return {
        "pixel_values": torch.randn(batch, 3, config.image_size, config.image_size, generator=generator),
        "modality_ids": torch.tensor([2, 1, 0])[:batch],
        "task_ids": torch.tensor([1, 0, 0])[:batch],
        "labels": torch.tensor([-100, 3, -100])[:batch],
        "grid_labels": grid_labels,
        "decoder_input_ids": text,
        "decoder_attention_mask": torch.ones_like(text),
        "text_labels": text_labels,
    }


def copy_matching_weights(source: torch.nn.Module, target: torch.nn.Module) -> None:
    target_state = target.state_dict()
    shared = {k: v for k, v in source.state_dict().items() if k in target_state and target_state[k].shape == v.shape}
    target.load_state_dict(shared, strict=False)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_forward_shapes_and_loss():
    config = tiny_config()
    model = TRMModel(config)
    outputs = model(**make_batch(config))
    steps = outputs.halting_logits.shape[1]
    assert outputs.loss.ndim == 0 and torch.isfinite(outputs.loss)
    assert outputs.grid_logits.shape == (3, SIDE, SIDE, 10)
    assert outputs.grid_height_logits.shape == (3, SIDE) and outputs.grid_width_logits.shape == (3, SIDE)
    assert outputs.class_logits.shape == (3, 5)
    assert outputs.text_logits.shape == (3, 8, 259)
    assert outputs.step_grid_predictions.shape == (3, steps, SIDE, SIDE)
    assert outputs.step_class_predictions.shape == (3, steps)
    assert outputs.halting_steps.shape == (3,) and (outputs.halting_steps >= 1).all()
    assert outputs.fusion_gate is None  # the tiny preset has a single (trainable ViT) path
    assert outputs.planner_weights.shape == (3, 3)
    torch.testing.assert_close(outputs.planner_weights.sum(-1), torch.ones(3))
    assert outputs.concept_ids.shape == (3, 4)
    for term in ("grid_loss", "classification_loss", "text_loss", "halting_loss", "concept_loss"):
        assert getattr(outputs, term) is not None, term


def test_loss_backward_reaches_every_trainable_block():
    config = tiny_clip_config()
    model = TRMModel(config)
    model(**make_batch(config)).loss.backward()
    for name in ("trainable_vit", "fusion", "adapter", "reasoning_core", "capsule_pooling", "planner", "grid_head",
                 "classification_head", "text_decoder", "task_embeddings", "halting_head"):
        grads = [p.grad for p in getattr(model, name).parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), f"no gradient reached {name}"
    tower = model.pretrained_tower
    assert all(p.grad is None for p in tower.backbone.parameters()), "the frozen tower received a gradient"
    assert any(p.grad is not None for p in tower.projection.parameters())


def test_frozen_tower_stays_frozen_after_from_pretrained(tmp_path):
    model = TRMModel(tiny_clip_config())
    model.save_pretrained(tmp_path)
    loaded = TRMModel.from_pretrained(tmp_path)
    assert not any(p.requires_grad for p in loaded.pretrained_tower.backbone.parameters())
    assert any(p.requires_grad for p in loaded.trainable_vit.parameters())


def test_save_load_roundtrip_gives_identical_outputs(tmp_path):
    config = tiny_config()
    model = TRMModel(config).eval()
    batch = make_batch(config)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin")), "weights must be saved as safetensors only"
    loaded = TRMModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).grid_logits, model(**batch).grid_logits)


@pytest.mark.parametrize(
    "flag, value",
    [
        ("use_trainable_vit", False),
        ("fusion_mode", "mean"),
        ("fusion_mode", "per_token"),
        ("use_n2n_adapter", False),
        ("H_cycles", 1),
        ("L_cycles", 1),
        ("num_capsules", 2),
        ("concept_vocab_size", 0),
        ("planner_num_paths", 0),
    ],
)
def test_every_ablation_flag_changes_the_computation(flag, value):
    """Same seed, same input: flipping one flag must change the outputs (or which parameters exist)."""
    config = tiny_clip_config(use_halting=False)
    batch = make_batch(config)
    torch.manual_seed(0)
    reference = TRMModel(config).eval()
    with torch.no_grad():  # a trained adapter is no longer the identity it starts as
        reference.adapter.residual_scale.fill_(0.5)
    torch.manual_seed(0)
    ablated = TRMModel(tiny_clip_config(use_halting=False, **{flag: value})).eval()
    copy_matching_weights(reference, ablated)  # so that only the flag differs
    with torch.no_grad():
        a = reference(**batch).grid_logits
        b = ablated(**batch).grid_logits
    assert not torch.allclose(a, b), f"{flag}={value!r} did not change the grid logits"


def test_pretrained_tower_and_heads_can_be_switched_off():
    config = tiny_config(heads=["classification"])
    model = TRMModel(config)
    assert model.pretrained_tower is None and model.grid_head is None and model.text_decoder is None
    outputs = model(**make_batch(config))
    assert outputs.grid_logits is None and outputs.text_logits is None and outputs.class_logits is not None
    with pytest.raises(ValueError, match="at least one"):
        tiny_config(use_trainable_vit=False)


def test_deep_supervision_steps_and_halting():
    config = tiny_config(deep_supervision_steps=4)
    model = TRMModel(config).eval()
    batch = make_batch(config)
    with torch.no_grad():
        outputs = model(**batch)
    # The Q-head starts biased against EMIT, so an untrained model runs every step.
    assert outputs.halting_logits.shape[1] == 4 and (outputs.halting_steps == 4).all()
    # When the Q-head says EMIT, the loop stops after the first step.
    with torch.no_grad():
        model.halting_head.q_proj.bias[0] = 10.0  # column 0 is EMIT
        outputs = model(**batch)
    assert outputs.halting_logits.shape[1] == 1 and (outputs.halting_steps == 1).all()
    # With halting switched off, the same Q-head cannot stop the loop.
    model.config.use_halting = False
    with torch.no_grad():
        assert model(**batch).halting_logits.shape[1] == 4


def test_outputs_are_taken_at_each_samples_halting_step():
    config = tiny_config(deep_supervision_steps=3)
    model = TRMModel(config).eval()
    batch = make_batch(config)
    with torch.no_grad():
        outputs = model(**batch)
    final_step = outputs.halting_steps - 1
    for row in range(3):
        predicted_class = outputs.class_logits[row].argmax()
        assert predicted_class == outputs.step_class_predictions[row, final_step[row]]


def test_n2n_phase_trains_only_the_adapter():
    config = tiny_clip_config()
    model = TRMModel(config)
    view = torch.randn(2, 3, 32, 32)
    outputs = model(pixel_values=view, n2n_target_pixel_values=view + 0.1 * torch.randn_like(view))
    assert outputs.n2n_loss is not None and outputs.n2n_loss > 0
    outputs.loss.backward()
    assert any(p.grad is not None for p in model.adapter.parameters())
    for name in ("trainable_vit", "fusion", "reasoning_core"):
        assert all(p.grad is None for p in getattr(model, name).parameters()), name


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b.update(pixel_values=torch.randn(3, 3, 16, 16)), "shape"),
        (lambda b: b.update(pixel_values=torch.randn(3, 32, 32)), "shape"),
        (lambda b: b.update(pixel_values=torch.zeros(3, 3, 32, 32, dtype=torch.long)), "floating-point"),
        (lambda b: b["pixel_values"].__setitem__((0, 0, 0, 0), float("nan")), "NaN"),
        (lambda b: b.update(grid_labels=torch.zeros(3, 31, 31, dtype=torch.long)), "exceed the largest grid"),
        (lambda b: b.update(task_ids=torch.tensor([0, 9, 0])), "task_ids"),
        (lambda b: b.update(modality_ids=torch.tensor([0, 5, 0])), "modality_ids"),
    ],
)
def test_bad_input_raises_value_error_naming_the_problem(mutate, message):
    config = tiny_config()
    model = TRMModel(config)
    batch = make_batch(config)
    mutate(batch)
    with pytest.raises(ValueError, match=message):
        model(**batch)


def test_image_classification_class_returns_class_logits():
    config = tiny_config()
    model = TRMForImageClassification(config).eval()
    outputs = model(pixel_values=torch.randn(2, 3, 32, 32), labels=torch.tensor([1, 2]))
    assert outputs.logits.shape == (2, 5) and outputs.loss is not None


def test_generate_text_is_greedy_and_stops():
    config = tiny_config()
    model = TRMModel(config).eval()
    tokens = model.generate_text(torch.randn(2, 3, 32, 32), bos_token_id=1, eos_token_id=2, max_new_tokens=5)
    assert tokens.shape[0] == 2 and 2 <= tokens.shape[1] <= 6 and (tokens[:, 0] == 1).all()
    again = model.generate_text(torch.randn(2, 3, 32, 32), bos_token_id=1, eos_token_id=2, max_new_tokens=5)
    assert again.shape[0] == 2


def test_gradient_checkpointing_gives_the_same_gradients():
    config = tiny_config(use_halting=False)
    batch = make_batch(config)
    torch.manual_seed(0)
    plain = TRMModel(config)
    torch.manual_seed(0)
    checkpointed = TRMModel(config)
    checkpointed.load_state_dict(plain.state_dict())
    # transformers 5.23 renames the method; 5.17 only has the old name.
    enable = getattr(checkpointed, "activation_checkpointing_enable", None) or checkpointed.gradient_checkpointing_enable
    enable()
    for model in (plain, checkpointed):
        model.train()
        torch.manual_seed(1)
        model(**batch).loss.backward()
    grad_a = plain.reasoning_core.net.layers[0].mlp.fc1.weight.grad
    grad_b = checkpointed.reasoning_core.net.layers[0].mlp.fc1.weight.grad
    torch.testing.assert_close(grad_a, grad_b)
