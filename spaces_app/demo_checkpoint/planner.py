"""COCONUT-style latent planning (Hao et al., 2024): several paths of continuous thoughts, scored and mixed."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import TRMBlock


class LatentPlanner(nn.Module):
    """Explores `planner_num_paths` paths of `planner_num_thoughts` continuous thoughts over the capsules.

    Each path starts from a learned path embedding plus the mean capsule. A small causal block, cross-attending to the
    capsules, is run over the path's thoughts so far; its last hidden state is the next thought and is fed back as
    the next input embedding, without decoding to a token (COCONUT's "continuous thought"). A scorer rates each
    path's final thought, and the thoughts are mixed by the selection weights.

    All paths run at once: the path axis is folded into the batch.
    """

    def __init__(self, config):
        super().__init__()
        self.num_paths = config.planner_num_paths
        self.num_thoughts = config.planner_num_thoughts
        self.selection = config.planner_selection
        self.temperature = config.planner_temperature
        self.path_embeddings = nn.Parameter(
            torch.randn(self.num_paths, config.hidden_size) * config.initializer_range
        )
        self.block = TRMBlock(config, cross_attention=True)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.scorer = nn.Linear(config.hidden_size, 1)

    def _think(self, starts: torch.Tensor, capsules: torch.Tensor, capsule_mask: torch.Tensor | None) -> torch.Tensor:
        """Runs the thought loop from `starts` `[batch * paths, 1, hidden]`; returns `[batch * paths, T, hidden]`."""
        inputs = starts
        for _ in range(self.num_thoughts):
            hidden = self.block(
                inputs, is_causal=True, encoder_hidden_states=capsules, encoder_attention_mask=capsule_mask
            )
            thought = self.norm(hidden[:, -1:])
            inputs = torch.cat([inputs, thought], dim=1)
        return inputs[:, 1:]

    def _select(self, scores: torch.Tensor) -> torch.Tensor:
        if self.selection == "gumbel" and self.training:
            # Straight-through Gumbel-softmax: one path is picked in the forward pass, the soft relaxation carries
            # the gradient to every path's score.
            return F.gumbel_softmax(scores, tau=self.temperature, hard=True)
        return torch.softmax(scores / self.temperature, dim=-1)

    def forward(
        self, capsules: torch.Tensor, capsule_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Plans over `capsules` `[batch, C, hidden]`.

        Returns:
            `memory` `[batch, C + planner_num_thoughts, hidden]` (the capsules followed by the weighted thoughts)
            and `path_weights` `[batch, planner_num_paths]` (each row sums to one).
        """
        batch, num_capsules, hidden = capsules.shape
        paths = self.num_paths
        summary = capsules.mean(dim=1)
        starts = (self.path_embeddings.to(capsules.dtype)[None] + summary[:, None]).reshape(batch * paths, 1, hidden)
        folded_capsules = capsules[:, None].expand(-1, paths, -1, -1).reshape(batch * paths, num_capsules, hidden)
        folded_mask = None
        if capsule_mask is not None:
            folded_mask = capsule_mask[:, None].expand(-1, paths, -1).reshape(batch * paths, num_capsules)

        thoughts = self._think(starts, folded_capsules, folded_mask).view(batch, paths, self.num_thoughts, hidden)
        scores = self.scorer(thoughts[:, :, -1]).squeeze(-1).float()
        path_weights = self._select(scores)
        plan = torch.einsum("bk,bktd->btd", path_weights.to(thoughts.dtype), thoughts)
        return torch.cat([capsules, plan], dim=1), path_weights
