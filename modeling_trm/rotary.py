"""Two-dimensional rotary position embeddings (`TRMConfig.position_encoding="rope_2d"`) for a square token grid.

Each attention head is split in two: its first half turns with the token's row, its second with its column (the
Llama `rotate_half` layout within each half). The score between two tokens then depends only on their offset, which
is what an ARC rule depends on. Prefix tokens (task and view) sit before the grid and are not rotated (angle 0), so a
grid token sees them the same way from every cell.
"""

from __future__ import annotations

import torch
from torch import nn


class GridRotaryEmbedding(nn.Module):
    """`(cos, sin)`, each `[prefix_length + side * side, head_dim]`, for a row-major `side x side` token grid."""

    def __init__(self, config):
        super().__init__()
        self.frequencies_per_axis = config.hidden_size // config.num_attention_heads // 4  # head_dim / 2 per axis, in pairs
        self.theta = float(config.rope_theta)

    def forward(self, side: int, prefix_length: int = 0, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        # Computed on each call, not held in a buffer: a few hundred numbers, and nothing for a meta-device load to
        # leave uninitialised.
        exponents = torch.arange(self.frequencies_per_axis, device=device, dtype=torch.float32)
        inverse_frequencies = self.theta ** (-exponents / self.frequencies_per_axis)
        cells = torch.arange(side, device=device, dtype=torch.float32)
        rows = (cells[:, None] * inverse_frequencies).repeat_interleave(side, dim=0)   # [side^2, F]
        columns = (cells[:, None] * inverse_frequencies).repeat(side, 1)                # [side^2, F]
        prefix = rows.new_zeros(prefix_length, rows.shape[1])
        row_angles = torch.cat([prefix, rows])
        column_angles = torch.cat([prefix, columns])
        angles = torch.cat([row_angles, row_angles, column_angles, column_angles], dim=-1)  # [L, head_dim]
        return angles.cos(), angles.sin()


def apply_grid_rotary(states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotates `states` `[batch, heads, L, head_dim]` by `GridRotaryEmbedding`'s angles: each half of the head (row,
    column) as Llama rotates a whole head."""
    row_half, column_half = states.chunk(2, dim=-1)
    rotated = torch.cat([_rotate_half(row_half), _rotate_half(column_half)], dim=-1)
    return states * cos + rotated * sin


def _rotate_half(states: torch.Tensor) -> torch.Tensor:
    first, second = states.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)
