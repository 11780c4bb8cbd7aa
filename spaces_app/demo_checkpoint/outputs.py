"""Output dataclasses of the TRM model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput


@dataclass
class TRMModelOutput(ModelOutput):
    r"""
    Everything a forward pass of [`TRMModel`] produces. Heads that are switched off, and losses whose labels were
    not given, are `None`.

    Args:
        loss (`torch.FloatTensor` of shape `()`):
            Weighted sum of the task losses, the halting loss and the concept loss, averaged over supervision steps.
        grid_logits (`torch.FloatTensor` of shape `(batch, max_grid_size, max_grid_size, num_colors)`):
            Per-cell colour logits of the ARC output grid.
        grid_height_logits, grid_width_logits (`torch.FloatTensor` of shape `(batch, max_grid_size)`):
            Logits of the output grid's height and width; index `k` means size `k + 1`.
        class_logits (`torch.FloatTensor` of shape `(batch, num_labels)`):
            Classification logits.
        text_logits (`torch.FloatTensor` of shape `(batch, text_length, text_vocab_size)`):
            Next-token logits of the text decoder.
        step_grid_predictions (`torch.LongTensor` of shape `(batch, steps, max_grid_size, max_grid_size)`):
            The predicted grid after each deep-supervision step (each a full H x L recursion).
        step_class_predictions (`torch.LongTensor` of shape `(batch, steps)`):
            The predicted class after each deep-supervision step.
        halting_logits (`torch.FloatTensor` of shape `(batch, steps, 2)`):
            Q-values of the halting head per step: column 0 is EMIT (halt), column 1 is EXPAND (continue).
        halting_steps (`torch.LongTensor` of shape `(batch,)`):
            The 1-based supervision step at which each sample halted.
        fusion_gate (`torch.FloatTensor` of shape `(batch, 1)` or `(batch, num_patches)`):
            Weight of the pretrained path in the fusion (1 = pretrained only); `None` with a single path.
        planner_weights (`torch.FloatTensor` of shape `(batch, planner_num_paths)`):
            Selection weights of the planner's paths (they sum to one).
        concept_ids (`torch.LongTensor` of shape `(batch, num_capsules)`):
            Concept-vocabulary code of each capsule.
        capsules (`torch.FloatTensor` of shape `(batch, num_capsules, hidden_size)`):
            Capsules after quantisation, before planning.
        last_hidden_state (`torch.FloatTensor` of shape `(batch, prefix + num_patches, hidden_size)`):
            The recursion's final answer state `y`.
        grid_loss, classification_loss, text_loss, halting_loss, concept_loss, n2n_loss (`torch.FloatTensor`):
            The unweighted terms of `loss`, for logging.
    """

    loss: torch.FloatTensor | None = None
    grid_logits: torch.FloatTensor | None = None
    grid_height_logits: torch.FloatTensor | None = None
    grid_width_logits: torch.FloatTensor | None = None
    class_logits: torch.FloatTensor | None = None
    text_logits: torch.FloatTensor | None = None
    step_grid_predictions: torch.LongTensor | None = None
    step_class_predictions: torch.LongTensor | None = None
    halting_logits: torch.FloatTensor | None = None
    halting_steps: torch.LongTensor | None = None
    fusion_gate: torch.FloatTensor | None = None
    planner_weights: torch.FloatTensor | None = None
    concept_ids: torch.LongTensor | None = None
    capsules: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    grid_loss: torch.FloatTensor | None = None
    classification_loss: torch.FloatTensor | None = None
    text_loss: torch.FloatTensor | None = None
    halting_loss: torch.FloatTensor | None = None
    concept_loss: torch.FloatTensor | None = None
    n2n_loss: torch.FloatTensor | None = None
