"""The assembled model classes: shapes, gradient flow, ablation flags, halting, bad input, loading."""

import pytest
import torch

from vision_trm.configuration import MAX_GRID_SIZE as SIDE
from vision_trm.modeling_trm import TRMForImageClassification, TRMForMultitaskReasoning, TRMForN2NPretraining, TRMModel


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_forward_shapes_and_loss(small_model_config, model_batch):
    config = small_model_config()
    model = TRMForMultitaskReasoning(config)
    inputs, labels = model_batch(config)
    outputs = model(**inputs, **labels)
    steps = outputs.halting_logits.shape[1]
    assert outputs.loss.ndim == 0 and torch.isfinite(outputs.loss)
    assert outputs.grid_logits.shape == (3, SIDE, SIDE, 10)
    assert outputs.grid_height_logits.shape == (3, SIDE) and outputs.grid_width_logits.shape == (3, SIDE)
    assert outputs.grid_predictions.shape == (3, SIDE, SIDE) and outputs.grid_predictions.dtype == torch.long
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


def test_loss_backward_reaches_every_trainable_block(small_clip_config, model_batch):
    config = small_clip_config()
    model = TRMForMultitaskReasoning(config)
    inputs, labels = model_batch(config)
    model(**inputs, **labels).loss.backward()
    for name in ("trainable_vit", "fusion", "adapter", "reasoning_core", "capsule_pooling", "planner", "grid_head",
                 "classification_head", "text_decoder", "task_embeddings", "halting_head"):
        grads = [p.grad for p in getattr(model.trm, name).parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), f"no gradient reached {name}"
    tower = model.trm.pretrained_tower
    assert all(p.grad is None for p in tower.backbone.parameters()), "the frozen tower received a gradient"
    assert any(p.grad is not None for p in tower.projection.parameters())


@pytest.mark.parametrize("model_class", [TRMModel, TRMForMultitaskReasoning])
def test_frozen_tower_stays_frozen_after_from_pretrained(tmp_path, small_clip_config, model_class):
    model_class(small_clip_config()).save_pretrained(tmp_path)
    loaded = model_class.from_pretrained(tmp_path)
    assert not any(p.requires_grad for p in loaded.base_model.pretrained_tower.backbone.parameters())
    assert any(p.requires_grad for p in loaded.base_model.trainable_vit.parameters())
    loaded, info = model_class.from_pretrained(tmp_path, output_loading_info=True)  # a (model, info) tuple
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not any(p.requires_grad for p in loaded.base_model.pretrained_tower.backbone.parameters())


def test_save_load_roundtrip_gives_identical_outputs(tmp_path, small_model_config, model_batch):
    config = small_model_config()
    model = TRMForMultitaskReasoning(config).eval()
    inputs, labels = model_batch(config)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin")), "weights must be saved as safetensors only"
    loaded = TRMForMultitaskReasoning.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        expected, actual = model(**inputs, **labels), loaded(**inputs, **labels)
    torch.testing.assert_close(actual.grid_logits, expected.grid_logits)
    torch.testing.assert_close(actual.loss, expected.loss)


# Each ablation flag, and the parameters it must remove from (or reshape in) the default model: a flag that the model
# silently ignored would keep every parameter, and one that changes no parameter must change the outputs.
ABLATIONS = [
    ("use_trainable_vit", False, {"removed": ("trainable_vit.", "fusion.")}),
    ("fusion_mode", "mean", {"removed": ("fusion.",)}),
    ("fusion_mode", "per_token", {}),
    ("use_n2n_adapter", False, {"removed": ("adapter.",)}),
    ("H_cycles", 1, {}),
    ("L_cycles", 1, {}),
    ("num_capsules", 2, {"reshaped": {"capsule_pooling.queries"}}),
    ("concept_vocab_size", 0, {"removed": ("concepts.",)}),
    ("planner_num_paths", 0, {"removed": ("planner.",)}),
]


def load_shared_weights(source: torch.nn.Module, target: torch.nn.Module) -> dict[str, set[str]]:
    """Copies every parameter and buffer of `source` that `target` has with the same shape into `target`; returns
    the keys only `source` has ("removed"), only `target` has ("added") and that both have with other shapes."""
    source_state, target_state = source.state_dict(), target.state_dict()
    common = source_state.keys() & target_state.keys()
    reshaped = {key for key in common if source_state[key].shape != target_state[key].shape}
    result = target.load_state_dict({key: source_state[key] for key in common - reshaped}, strict=False)
    assert set(result.missing_keys) == (target_state.keys() - common) | reshaped and not result.unexpected_keys
    return {"removed": source_state.keys() - common, "added": target_state.keys() - common, "reshaped": reshaped}


@pytest.mark.parametrize("flag, value, changes", ABLATIONS, ids=[f"{f}={v}" for f, v, _ in ABLATIONS])
def test_every_ablation_flag_changes_the_computation(small_clip_config, model_batch, flag, value, changes):
    """The ablated model runs with the default model's weights for every parameter they share, so the only
    difference between the two is what the flag did: the parameters it removed or reshaped (exactly those expected)
    and the computation (the outputs must differ)."""
    config = small_clip_config(use_halting=False)
    inputs, _ = model_batch(config)
    reference = TRMModel(config).eval()
    with torch.no_grad():  # a trained adapter is no longer the identity it starts as
        reference.adapter.residual_scale.fill_(0.5)
    ablated = TRMModel(small_clip_config(use_halting=False, **{flag: value})).eval()
    differences = load_shared_weights(reference, ablated)
    removed_prefixes = changes.get("removed", ())
    expected_removed = {key for key in reference.state_dict() if key.startswith(removed_prefixes)}
    assert removed_prefixes == () or expected_removed, f"no default parameter starts with {removed_prefixes}"
    assert differences["removed"] == expected_removed, f"{flag}={value!r} removed the wrong parameters"
    assert differences["added"] == set(), f"{flag}={value!r} added parameters"
    assert differences["reshaped"] == changes.get("reshaped", set()), f"{flag}={value!r} reshaped the wrong parameters"
    with torch.no_grad():
        a = reference(**inputs).grid_logits
        b = ablated(**inputs).grid_logits
    assert not torch.allclose(a, b), f"{flag}={value!r} did not change the grid logits"


def test_shared_weights_reproduce_the_default_model(small_clip_config, model_batch):
    """The control of the ablation test: the same copy into a second default model gives identical outputs, so a
    difference there comes from the flag and not from a weight the copy missed."""
    config = small_clip_config(use_halting=False)
    inputs, _ = model_batch(config)
    reference = TRMModel(config).eval()
    with torch.no_grad():
        reference.adapter.residual_scale.fill_(0.5)
    torch.manual_seed(1)  # a different initialisation, which the copy must overwrite completely
    copy = TRMModel(config).eval()
    assert load_shared_weights(reference, copy) == {"removed": set(), "added": set(), "reshaped": set()}
    with torch.no_grad():
        torch.testing.assert_close(copy(**inputs).grid_logits, reference(**inputs).grid_logits, rtol=0, atol=0)


def test_pretrained_tower_and_heads_can_be_switched_off(small_model_config, model_batch):
    config = small_model_config(heads=["classification"])
    model = TRMModel(config)
    assert model.pretrained_tower is None and model.grid_head is None and model.text_decoder is None
    inputs, _ = model_batch(config)
    outputs = model(**inputs)
    assert outputs.grid_logits is None and outputs.text_logits is None and outputs.class_logits is not None
    assert outputs.grid_predictions is None and outputs.step_grid_predictions is None
    with pytest.raises(ValueError, match="at least one"):
        small_model_config(use_trainable_vit=False)


def test_deep_supervision_steps_and_halting(small_model_config, model_batch):
    config = small_model_config(deep_supervision_steps=4)
    model = TRMModel(config).eval()
    inputs, _ = model_batch(config)
    with torch.no_grad():
        outputs = model(**inputs)
    # The Q-head starts biased against EMIT, so an untrained model runs every step.
    assert outputs.halting_logits.shape[1] == 4 and (outputs.halting_steps == 4).all()
    # When the Q-head says EMIT, the loop stops after the first step.
    with torch.no_grad():
        model.halting_head.q_proj.bias[0] = 10.0  # column 0 is EMIT
        outputs = model(**inputs)
    assert outputs.halting_logits.shape[1] == 1 and (outputs.halting_steps == 1).all()
    # With halting switched off, the same Q-head cannot stop the loop.
    model.config.use_halting = False
    with torch.no_grad():
        assert model(**inputs).halting_logits.shape[1] == 4


@pytest.mark.parametrize("model_class", [TRMModel, TRMForMultitaskReasoning, TRMForImageClassification])
def test_special_initialisations_reach_every_model_class(small_clip_config, model_class):
    """The blocks that `_init_weights` initialises on purpose, not with the default truncated normal."""
    trm = model_class(small_clip_config()).base_model
    # Halting: near-zero Q weights and EMIT bias -5, so an untrained model runs every supervision step.
    assert torch.equal(trm.halting_head.q_proj.bias, torch.tensor([-5.0, 0.0]))
    assert trm.halting_head.q_proj.weight.abs().max() < 0.01
    assert torch.equal(trm.adapter.residual_scale, torch.zeros_like(trm.adapter.residual_scale))  # identity adapter
    assert 0.5 < trm.planner.path_embeddings.std() < 2.0  # unit-scale paths, not 0.02
    assert not trm.concepts.initialized and trm.concepts.code_usage.sum() == 0


def test_outputs_are_taken_at_each_samples_halting_step(small_model_config, model_batch):
    config = small_model_config(deep_supervision_steps=3)
    model = TRMModel(config).eval()
    inputs, _ = model_batch(config)
    with torch.no_grad():
        outputs = model(**inputs)
    final_step = outputs.halting_steps - 1
    for row in range(3):
        predicted_class = outputs.class_logits[row].argmax()
        assert predicted_class == outputs.step_class_predictions[row, final_step[row]]
        assert torch.equal(outputs.grid_predictions[row], outputs.step_grid_predictions[row, final_step[row]])


def test_n2n_phase_trains_only_the_adapter(small_clip_config):
    model = TRMForN2NPretraining(small_clip_config())
    view = torch.randn(2, 3, 32, 32)
    outputs = model(pixel_values=view, target_pixel_values=view + 0.1 * torch.randn_like(view))
    assert outputs.n2n_loss is not None and outputs.n2n_loss > 0
    outputs.loss.backward()
    assert any(p.grad is not None for p in model.trm.adapter.parameters())
    for name in ("trainable_vit", "fusion", "reasoning_core"):
        assert all(p.grad is None for p in getattr(model.trm, name).parameters()), name
    with pytest.raises(ValueError, match="use_n2n_adapter"):
        TRMForN2NPretraining(small_clip_config(use_n2n_adapter=False))


def _empty_batch(batch: dict) -> None:
    for key, value in batch.items():
        batch[key] = value[:0]


BAD_INPUTS = [
    (lambda b: b.update(pixel_values=torch.randn(3, 3, 16, 16)), "shape"),
    (lambda b: b.update(pixel_values=torch.randn(3, 32, 32)), "shape"),
    (lambda b: b.update(pixel_values=torch.zeros(3, 3, 32, 32, dtype=torch.long)), "floating-point"),
    (lambda b: b["pixel_values"].__setitem__((0, 0, 0, 0), float("nan")), "NaN"),
    (lambda b: b.update(grid_labels=torch.zeros(3, 31, 31, dtype=torch.long)), r"grid_labels must have shape .*30x30"),
    (lambda b: b["grid_labels"].__setitem__((0, 0, 0), 12), r"grid_labels of samples \[0\] hold values \[12\]"),
    (lambda b: b.update(task_ids=torch.tensor([0, 9, 0])), "task_ids"),
    (lambda b: b.update(modality_ids=torch.tensor([0, 5, 0])), "modality_ids"),
    (lambda b: b.update(labels=torch.tensor([-5, 3, -100])), r"labels hold \[-5\]"),
    (lambda b: b.update(labels=torch.tensor([-100, 5, -100])), r"labels hold \[5\].*5 classes"),
    (lambda b: b.update(labels=torch.tensor([3, 3])), r"labels must have shape \(3,\), got \(2,\)"),
    (lambda b: b.update(labels=torch.tensor([[3, 3, 3]])), r"labels must have shape \(3,\), got \(1, 3\)"),
    (lambda b: b.update(labels=torch.tensor([0.0, 1.0, 2.0])), "labels must hold integers"),
    (lambda b: b.update(text_labels=b["text_labels"][:, :5]), r"text_labels must have shape \(3, 8\)"),
    (lambda b: b["text_labels"].__setitem__((2, 0), 999), r"text_labels hold \[999\]"),
    (lambda b: [b.pop("decoder_input_ids"), b.pop("decoder_attention_mask")], "text_labels were given without"),
    (_empty_batch, "the batch is empty"),
    (lambda b: b.update(modality_ids=[2, 1, 0]), "modality_ids must be a torch.Tensor"),
    (lambda b: b.update(task_ids=[1, 0, 0]), "task_ids must be a torch.Tensor"),
]


@pytest.mark.parametrize("mutate, message", BAD_INPUTS, ids=[message for _, message in BAD_INPUTS])
def test_bad_input_raises_value_error_naming_the_problem(small_model_config, model_batch, mutate, message):
    config = small_model_config()
    model = TRMForMultitaskReasoning(config)
    inputs, labels = model_batch(config)
    batch = {**inputs, **labels}
    mutate(batch)
    with pytest.raises(ValueError, match=message):
        model(**batch)


def test_image_classification_class_returns_class_logits(small_model_config):
    model = TRMForImageClassification(small_model_config()).eval()
    outputs = model(pixel_values=torch.randn(2, 3, 32, 32), labels=torch.tensor([1, 2]))
    assert outputs.logits.shape == (2, 5) and outputs.loss is not None
    with pytest.raises(ValueError, match=r"labels hold \[7\]"):
        model(pixel_values=torch.randn(2, 3, 32, 32), labels=torch.tensor([1, 7]))
    with pytest.raises(ValueError, match="classification"):
        TRMForImageClassification(small_model_config(heads=["grid"]))


def test_generate_text_is_greedy_and_stops(small_model_config):
    model = TRMModel(small_model_config()).eval()
    pixels = torch.randn(2, 3, 32, 32)
    tokens = model.generate_text(pixels, bos_token_id=1, eos_token_id=2, max_new_tokens=5)
    assert tokens.shape[0] == 2 and 2 <= tokens.shape[1] <= 6 and (tokens[:, 0] == 1).all()
    assert torch.equal(model.generate_text(pixels, bos_token_id=1, eos_token_id=2, max_new_tokens=5), tokens)
    # Greedy: each new token is the decoder's argmax given the tokens before it.
    memory = model.encode_memory(pixels)
    for step in range(1, tokens.shape[1]):
        unfinished = ~(tokens[:, 1:step] == 2).any(dim=1)
        expected = model.text_decoder(tokens[:, :step], memory)[:, -1].argmax(-1)
        assert torch.equal(tokens[unfinished, step], expected[unfinished])
    wrapper = TRMForMultitaskReasoning(model.config).eval()
    wrapper.trm.load_state_dict(model.state_dict())
    assert torch.equal(wrapper.generate_text(pixels, bos_token_id=1, eos_token_id=2, max_new_tokens=5), tokens)


def test_gradient_checkpointing_gives_the_same_gradients(small_model_config, model_batch):
    config = small_model_config(use_halting=False)
    inputs, labels = model_batch(config)
    plain = TRMForMultitaskReasoning(config)
    checkpointed = TRMForMultitaskReasoning(config)
    checkpointed.load_state_dict(plain.state_dict())
    # transformers 5.23 renames the method; 5.17 only has the old name.
    enable = getattr(checkpointed, "activation_checkpointing_enable", None) or checkpointed.gradient_checkpointing_enable
    enable()
    for model in (plain, checkpointed):
        model.train()
        torch.manual_seed(1)
        model(**inputs, **labels).loss.backward()
    grad_a = plain.trm.reasoning_core.net.layers[0].mlp.fc1.weight.grad
    grad_b = checkpointed.trm.reasoning_core.net.layers[0].mlp.fc1.weight.grad
    torch.testing.assert_close(grad_a, grad_b)
