"""Capsule pooling: a few learned queries cross-attend to the token sequence."""

from __future__ import annotations

import torch
from torch import nn

from .attention import TRMBlock


class CapsulePooling(nn.Module):
    """Pools `[batch, length, hidden]` tokens into `config.num_capsules` capsules `[batch, num_capsules, hidden]`.

    Each capsule is a learned query that reads the sequence through one cross-attention block, so the number of
    slots the later stages work on is fixed and small whatever the input length.
    """

    def __init__(self, config):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(config.num_capsules, config.hidden_size) * config.initializer_range)
        self.block = TRMBlock(config, cross_attention=True)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`attention_mask` `[batch, length]` (True = real token) hides padded tokens from the capsules."""
        queries = self.queries.to(hidden_states.dtype).expand(hidden_states.shape[0], -1, -1)
        capsules = self.block(queries, encoder_hidden_states=hidden_states, encoder_attention_mask=attention_mask)
        return self.norm(capsules)
