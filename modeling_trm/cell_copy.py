"""The cell copy path (`TRMConfig.cell_copy_path`): each input cell's own pixels, straight to its output logits.

Most ARC outputs are their input with a few cells changed; "copy the input" scores 60% of the cells of the ARC-AGI-1
evaluation outputs. Without a skip, the network must carry every cell's colour from the patch embedding through the
recursion to the cell head before it can learn anything else, and in the CPU main job it had not learned even that
(48% per-cell). The path classifies each cell from the pixels drawn in it (the processor draws cell `(r, c)` at
`[r * cell_px, (r + 1) * cell_px)`, the frame and the background as their own colours) and adds those logits to the
head's, so copying is one short learned function and the network is left the edit.
"""

from __future__ import annotations

import torch
from torch import nn

from ..configuration.conventions import NUM_CELL_CLASSES


class CellCopyPath(nn.Module):
    """Per-cell MLP on the `cell_px x cell_px x channels` pixels of each cell -> `[batch, n, n, 12]` logits.

    The last layer starts at zero, so a model with the path computes at initialisation exactly what it computes
    without it; the path earns its weight from the loss.
    """

    def __init__(self, config):
        super().__init__()
        self.cell_px = config.patch_size // getattr(config, "cells_per_token", 1)
        width = 4 * NUM_CELL_CLASSES
        self.mlp = nn.Sequential(
            nn.Linear(config.num_channels * self.cell_px**2, width), nn.GELU(), nn.Linear(width, NUM_CELL_CLASSES)
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`pixel_values` `[batch, channels, S, S]` (`S` a multiple of the cell size) -> `[batch, S / cell_px,
        S / cell_px, 12]`, cell `(r, c)` classified from its own pixels."""
        batch, channels, size, _ = pixel_values.shape
        n, px = size // self.cell_px, self.cell_px
        cells = pixel_values.view(batch, channels, n, px, n, px).permute(0, 2, 4, 1, 3, 5)
        return self.mlp(cells.reshape(batch, n, n, channels * px * px).to(self.mlp[0].weight.dtype))
