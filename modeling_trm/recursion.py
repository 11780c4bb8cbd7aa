"""The Tiny Recursive Model core (Jolicoeur-Martineau, 2025) and its halting Q-head.

One small shared network refines a latent reasoning state `z` and an answer state `y`:

    for each of H_cycles:
        repeat L_cycles:  z = net(z + y + x)     # think
        y = net(y + z)                           # answer

Only the last H cycle builds an autograd graph (TRM's 1-step gradient approximation); the caller runs several of
these recursions as deep-supervision steps and detaches `(y, z)` between them.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import TRMEncoder

# Columns of the halting head's logits.
HALT_EMIT = 0
HALT_EXPAND = 1


class TRMReasoningCore(nn.Module):
    """Shared recursion network with learned initial states `y_init` and `z_init`."""

    def __init__(self, config):
        super().__init__()
        self.H_cycles = config.H_cycles
        self.L_cycles = config.L_cycles
        self.net = TRMEncoder(config, config.trm_num_layers)
        self.y_init = nn.Parameter(torch.randn(config.hidden_size) * config.initializer_range)
        self.z_init = nn.Parameter(torch.randn(config.hidden_size) * config.initializer_range)

    def initial_carry(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the starting `(y, z)`, each broadcast to the shape of `x` `[batch, length, hidden]`."""
        y = self.y_init.to(x.dtype).expand_as(x)
        z = self.z_init.to(x.dtype).expand_as(x)
        return y, z

    def _cycle(self, x, y, z, rotary=None) -> tuple[torch.Tensor, torch.Tensor]:
        for _ in range(self.L_cycles):
            z = self.net(z + y + x, rotary=rotary)
        y = self.net(y + z, rotary=rotary)
        return y, z

    def forward(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor,
                rotary: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Runs `H_cycles` outer cycles from the carry `(y, z)` given the input embedding `x`; returns new `(y, z)`.
        `rotary`: the sequence's `(cos, sin)` with `position_encoding="rope_2d"` (`rotary.GridRotaryEmbedding`)."""
        # TRM's 1-step gradient approximation: the first H-1 cycles only move the carry towards the fixed point,
        # so they run without a graph and back-propagation goes through the last cycle alone.
        with torch.no_grad():
            for _ in range(self.H_cycles - 1):
                y, z = self._cycle(x, y, z, rotary)
        return self._cycle(x, y, z, rotary)


class HaltingHead(nn.Module):
    """Q-head that scores halting (EMIT, column 0) against continuing (EXPAND, column 1) from a pooled summary."""

    def __init__(self, config):
        super().__init__()
        self.q_proj = nn.Linear(config.hidden_size, 2)
        # As in TRM: near-zero weights and a strongly negative EMIT bias, so an untrained model never halts early
        # and every sample receives the full deep supervision at the start of training.
        with torch.no_grad():
            self.q_proj.weight.normal_(0.0, 1e-3)
            self.q_proj.bias.zero_()
            self.q_proj.bias[HALT_EMIT] = -5.0

    def forward(self, summary: torch.Tensor) -> torch.Tensor:
        """Maps `summary` `[batch, hidden]` to q logits `[batch, 2]`."""
        return self.q_proj(summary).float()


def should_halt(q_logits: torch.Tensor) -> torch.Tensor:
    """Boolean `[batch]`: True where EMIT is preferred to EXPAND."""
    return q_logits[:, HALT_EMIT] > q_logits[:, HALT_EXPAND]
