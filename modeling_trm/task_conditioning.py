"""What the model is told about the task of a sample: its task embedding and the augmented view it shows.

TRM gives every puzzle a learned embedding that fills several prefix positions, zero-initialised and trained with
its own, much larger learning rate (the training script's `task_embedding_learning_rate`). ARC training shows each
task under the 8 dihedral transforms and random colour permutations; with one shared embedding those views
contradict each other (a rule that paints with colour 3 paints with colour 7 after a permutation, "move right" is
"move down" after a transpose). The `AugmentationTokens` tell the model the view instead, so one embedding per task
stays consistent and a new task needs one new embedding, whatever the number of views voted over. TRM's own answer
is the other one: every augmented version is a puzzle of its own with its own embedding. `num_task_views = V` does
that for the V fixed voting views (`conventions.standard_arc_views`), at V times the rows.
"""

from __future__ import annotations

import torch
from torch import nn

from ..configuration.conventions import NUM_COLORS, NUM_DIHEDRAL_TRANSFORMS, standard_arc_views


class TaskEmbedding(nn.Embedding):
    """One row per task id (0 = no task), each `num_task_prefix_tokens * hidden_size` wide, zero-initialised.

    With `config.num_task_views = V > 0`, one row per (task id, view) for the V fixed views
    `conventions.standard_arc_views(V, config.arc_view_parts)`, as TRM gives every augmented puzzle its own
    embedding: a sample of task t showing view v reads row `t * V + v`, v found from its `augmentation_ids` (the
    identity view, v = 0, without them)."""

    def __init__(self, config):
        views = max(1, config.num_task_views)
        super().__init__(config.num_task_ids * views, config.num_task_prefix_tokens * config.hidden_size)
        self.num_prefix_tokens = config.num_task_prefix_tokens
        self.views_per_task = views
        # The view table as plain numbers, not a buffer: it is a convention, not a weight, and a checkpoint
        # should not be able to change it.
        self.view_table = (torch.from_numpy(standard_arc_views(config.num_task_views, config.arc_view_parts))
                           if config.num_task_views else None)

    def view_indices(self, augmentation_ids: torch.Tensor) -> torch.Tensor:
        """`[batch]`: the row of the view table each `augmentation_ids` row shows, -1 where it is none of them."""
        table = self.view_table.to(augmentation_ids.device)
        match = (augmentation_ids[:, None, :] == table[None]).all(-1)                                # [B, V]
        return torch.where(match.any(1), match.int().argmax(1), -1)

    def rows_per_task(self) -> torch.Tensor:
        """The weight seen as `[num_task_ids, views_per_task, width]` (a view: writing to it writes the weight)."""
        return self.weight.view(-1, self.views_per_task, self.embedding_dim)

    def forward(self, task_ids: torch.Tensor, augmentation_ids: torch.Tensor | None = None) -> torch.Tensor:
        """`[batch]` ids (and the views shown) -> `[batch, num_task_prefix_tokens, hidden]` prefix tokens."""
        rows = task_ids
        if self.views_per_task > 1:
            views = 0 if augmentation_ids is None else self.view_indices(augmentation_ids).clamp(min=0)
            rows = task_ids * self.views_per_task + views
        return super().forward(rows).view(task_ids.shape[0], self.num_prefix_tokens, -1)


def check_task_views(task_embeddings: TaskEmbedding, augmentation_ids: torch.Tensor) -> None:
    """Raises `ValueError` unless every `augmentation_ids` row is one of the views `task_embeddings` has rows for
    (only with `num_task_views > 0`)."""
    if task_embeddings.views_per_task == 1:
        return
    unknown = task_embeddings.view_indices(augmentation_ids) < 0
    if unknown.any():
        first = int(unknown.int().argmax())
        raise ValueError(
            f"augmentation_ids row {first} ({augmentation_ids[first].tolist()}) is not one of the "
            f"num_task_views={task_embeddings.views_per_task} views this model keeps task rows for "
            f"(conventions.standard_arc_views; vote over at most that many views, with seed 0)")


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


def check_augmentation_ids(augmentation_ids, batch: int, check_values: bool = True) -> None:
    """Raises `ValueError` unless `augmentation_ids` is `[batch, 11]` integers: a dihedral index in 0..7, then a
    permutation of the colours 0..9 (the values only with `check_values`: reading them is a GPU sync)."""
    if not isinstance(augmentation_ids, torch.Tensor):
        raise ValueError(f"augmentation_ids must be a torch.Tensor, got {type(augmentation_ids).__name__}")
    if augmentation_ids.is_floating_point() or augmentation_ids.is_complex() or augmentation_ids.dtype == torch.bool:
        raise ValueError(f"augmentation_ids must hold integers, got dtype {augmentation_ids.dtype}")
    expected = (batch, AugmentationTokens.num_tokens)
    if tuple(augmentation_ids.shape) != expected:
        raise ValueError(f"augmentation_ids must have shape {expected}, got {tuple(augmentation_ids.shape)}")
    if not check_values:
        return
    dihedral = augmentation_ids[:, 0]
    if ((dihedral < 0) | (dihedral >= NUM_DIHEDRAL_TRANSFORMS)).any():
        raise ValueError(f"augmentation_ids[:, 0] (the dihedral transform) must lie in 0..7, got "
                         f"{dihedral.min().item()}..{dihedral.max().item()}")
    colours = augmentation_ids[:, 1:].sort(dim=1).values
    if not torch.equal(colours, torch.arange(NUM_COLORS, device=colours.device).expand_as(colours)):
        raise ValueError("augmentation_ids[:, 1:] must be a permutation of the colours 0..9 in every row")
