"""What the model is told about the task of a sample: its task embedding and the augmented view it shows.

TRM gives every puzzle a learned embedding that fills several prefix positions, zero-initialised and trained with
its own, much larger learning rate (the training script's `task_embedding_learning_rate`). ARC training shows each
task under the 8 dihedral transforms and random colour permutations; with one shared embedding those views
contradict each other (a rule that paints with colour 3 paints with colour 7 after a permutation, "move right" is
"move down" after a transpose). The `AugmentationTokens` tell the model the view instead, so one embedding per task
stays consistent and a new task needs one new embedding, whatever the number of views voted over.
"""

from __future__ import annotations

import torch
from torch import nn

from ..configuration.conventions import NUM_COLORS, NUM_DIHEDRAL_TRANSFORMS


class TaskEmbedding(nn.Embedding):
    """One row per task id (0 = no task), each `num_task_prefix_tokens * hidden_size` wide, zero-initialised."""

    def __init__(self, config):
        super().__init__(config.num_task_ids, config.num_task_prefix_tokens * config.hidden_size)
        self.num_prefix_tokens = config.num_task_prefix_tokens

    def forward(self, task_ids: torch.Tensor) -> torch.Tensor:
        """`[batch]` ids -> `[batch, num_task_prefix_tokens, hidden]` prefix tokens."""
        return super().forward(task_ids).view(task_ids.shape[0], self.num_prefix_tokens, -1)


class AugmentationTokens(nn.Module):
    """`augmentation_ids` `[batch, 11]` (dihedral index, then the colour each of the 10 colours is drawn as) ->
    11 prefix tokens `[batch, 11, hidden]`: a dihedral token, and per colour c the sum of an embedding of c (which
    colour of the canonical task) and of the colour it is drawn as in this view."""

    num_tokens = 1 + NUM_COLORS

    def __init__(self, config):
        super().__init__()
        self.dihedral_embeddings = nn.Embedding(NUM_DIHEDRAL_TRANSFORMS, config.hidden_size)
        self.canonical_colour_embeddings = nn.Embedding(NUM_COLORS, config.hidden_size)
        self.drawn_colour_embeddings = nn.Embedding(NUM_COLORS, config.hidden_size)

    def forward(self, augmentation_ids: torch.Tensor) -> torch.Tensor:
        dihedral = self.dihedral_embeddings(augmentation_ids[:, :1])                                 # [B, 1, D]
        colours = self.canonical_colour_embeddings.weight + self.drawn_colour_embeddings(augmentation_ids[:, 1:])
        return torch.cat([dihedral, colours], dim=1)                                                 # [B, 11, D]


def check_augmentation_ids(augmentation_ids, batch: int) -> None:
    """Raises `ValueError` unless `augmentation_ids` is `[batch, 11]` integers: a dihedral index in 0..7, then a
    permutation of the colours 0..9."""
    if not isinstance(augmentation_ids, torch.Tensor):
        raise ValueError(f"augmentation_ids must be a torch.Tensor, got {type(augmentation_ids).__name__}")
    if augmentation_ids.is_floating_point() or augmentation_ids.is_complex() or augmentation_ids.dtype == torch.bool:
        raise ValueError(f"augmentation_ids must hold integers, got dtype {augmentation_ids.dtype}")
    expected = (batch, AugmentationTokens.num_tokens)
    if tuple(augmentation_ids.shape) != expected:
        raise ValueError(f"augmentation_ids must have shape {expected}, got {tuple(augmentation_ids.shape)}")
    dihedral = augmentation_ids[:, 0]
    if ((dihedral < 0) | (dihedral >= NUM_DIHEDRAL_TRANSFORMS)).any():
        raise ValueError(f"augmentation_ids[:, 0] (the dihedral transform) must lie in 0..7, got "
                         f"{dihedral.min().item()}..{dihedral.max().item()}")
    colours = augmentation_ids[:, 1:].sort(dim=1).values
    if not torch.equal(colours, torch.arange(NUM_COLORS, device=colours.device).expand_as(colours)):
        raise ValueError("augmentation_ids[:, 1:] must be a permutation of the colours 0..9 in every row")
