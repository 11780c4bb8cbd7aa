"""Adaptive fusion of the pretrained-tower path and the trainable-ViT path."""

from __future__ import annotations

import torch
from torch import nn

from ..configuration.configuration_trm import FUSION_MODES


class AdaptiveFusion(nn.Module):
    """Mixes the two token streams as `gate * pretrained + (1 - gate) * trainable`.

    The gate is the weight of the pretrained path and is returned so it can be logged:

    - `"global"`: one gate per sample, `[batch, 1]`, from both streams' mean-pooled tokens;
    - `"per_token"`: one gate per token, `[batch, num_tokens]`, from both streams' features at that token;
    - `"mean"`: a constant 0.5, `[batch, 1]` (the no-gate ablation; it has no parameters);
    - `"residual"`: `trainable + gate * pretrained` instead, one gate per token in (-1, 1), zero at initialisation
      (`TRMPreTrainedModel._init_weights` zeroes `gate_mlp`'s last layer), so the tower starts switched off and
      joins each token only as training finds it useful.

    Args:
        config ([`TRMConfig`]): uses `fusion_mode`, `hidden_size`, `hidden_act`, `initializer_range`.
    """

    def __init__(self, config):
        super().__init__()
        if config.fusion_mode not in FUSION_MODES:
            raise ValueError(f"fusion_mode={config.fusion_mode!r} is not one of {FUSION_MODES}")
        self.fusion_mode = config.fusion_mode
        self.gate_mlp = None
        if self.fusion_mode != "mean":
            hidden = config.hidden_size
            self.gate_mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
            # sigmoid(0) = 0.5: both paths start equally trusted, and small weights keep the gate near 0.5 until
            # training says which path is more useful.
            nn.init.normal_(self.gate_mlp[-1].weight, std=config.initializer_range)
            nn.init.zeros_(self.gate_mlp[-1].bias)

    def forward(
        self, pretrained_features: torch.Tensor | None = None, trainable_features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns `(fused [batch, tokens, hidden], gate)`; with a single stream, `(that stream, None)`."""
        if pretrained_features is None and trainable_features is None:
            raise ValueError("AdaptiveFusion needs at least one of pretrained_features and trainable_features")
        if pretrained_features is None:
            return trainable_features, None
        if trainable_features is None:
            return pretrained_features, None
        if pretrained_features.shape != trainable_features.shape:
            raise ValueError(
                "The two paths must be on the same token grid and width to be fused; got pretrained "
                f"{tuple(pretrained_features.shape)} and trainable {tuple(trainable_features.shape)}"
            )
        gate = self._gate(pretrained_features, trainable_features)
        # [batch, 1] -> [batch, 1, 1] (one gate for all tokens); [batch, tokens] -> [batch, tokens, 1].
        weight = gate.unsqueeze(-1).to(pretrained_features.dtype)
        if self.fusion_mode == "residual":
            return trainable_features + weight * pretrained_features, gate
        fused = weight * pretrained_features + (1 - weight) * trainable_features
        return fused, gate

    def _gate(self, pretrained: torch.Tensor, trainable: torch.Tensor) -> torch.Tensor:
        if self.fusion_mode == "mean":
            return pretrained.new_full((pretrained.shape[0], 1), 0.5)
        if self.fusion_mode == "global":
            summary = torch.cat([pretrained.mean(dim=1), trainable.mean(dim=1)], dim=-1)  # [batch, 2 * hidden]
            return torch.sigmoid(self.gate_mlp(summary))  # [batch, 1]
        per_token = torch.cat([pretrained, trainable], dim=-1)  # [batch, tokens, 2 * hidden]
        if self.fusion_mode == "residual":
            return torch.tanh(self.gate_mlp(per_token)).squeeze(-1)  # [batch, tokens], 0 at initialisation
        return torch.sigmoid(self.gate_mlp(per_token)).squeeze(-1)  # [batch, tokens]
