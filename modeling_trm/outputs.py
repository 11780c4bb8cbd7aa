"""Output dataclasses of the TRM models."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput


@dataclass
class TRMModelOutput(ModelOutput):
    r"""
    What [`TRMModel`] returns: each sample's outputs at the supervision step where it halted, the same outputs for
    every step (what the loss and the per-step plots read), and what a user wants to look at (the fusion gate, the
    halting decisions, the planner's path weights, the concept ids). Heads that are switched off are `None`. `S`
    below is the number of supervision steps that ran (at most `config.deep_supervision_steps`).

    Args:
        grid_logits (`torch.FloatTensor` of shape `(batch, max_grid_size, max_grid_size, num_colors)`):
            Per-cell colour logits of the ARC output grid.
        grid_height_logits, grid_width_logits (`torch.FloatTensor` of shape `(batch, max_grid_size)`):
            Logits of the output grid's height and width; index `k` means size `k + 1`.
        grid_predictions (`torch.LongTensor` of shape `(batch, max_grid_size, max_grid_size)`):
            The decoded grid: argmax colours inside the predicted size, -100 outside (as `grid_labels` are padded);
            [`TRMProcessor.post_process_grid`] crops it. With the cell head, decoded from `cell_logits` (the grid in
            the best-scoring predicted frame, `cell_head.decode_cell_logits`).
        cell_logits (`torch.FloatTensor` of shape `(batch, T, T, 12)`, T = `image_size // patch_size`):
            With `grid_head_type="cells"`: per-token logits of the ten colours, the frame (`BORDER_CLASS`) and the
            background (`BACKGROUND_CLASS`).
        class_logits (`torch.FloatTensor` of shape `(batch, num_labels)`):
            Classification logits.
        text_logits (`torch.FloatTensor` of shape `(batch, text_length, text_vocab_size)`):
            Next-token logits of the text decoder (only with `decoder_input_ids`).
        step_grid_logits, step_grid_height_logits, step_grid_width_logits, step_cell_logits, step_class_logits,
        step_text_logits:
            The logits above for every step, with a step axis after the batch axis: `(batch, S, ...)`.
        step_grid_predictions (`torch.LongTensor` of shape `(batch, S, max_grid_size, max_grid_size)`):
            The decoded grid after each supervision step (each a full H x L recursion).
        step_class_predictions (`torch.LongTensor` of shape `(batch, S)`):
            The predicted class after each supervision step.
        halting_logits (`torch.FloatTensor` of shape `(batch, S, 2)`):
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
        step_capsules, step_concept_codes (`torch.FloatTensor` of shape `(batch, S, num_capsules, hidden_size)`):
            The capsules before quantisation and their chosen codes at every step (the concept loss reads them).
        last_hidden_state (`torch.FloatTensor` of shape `(batch, prefix + num_patches, hidden_size)`):
            The recursion's final answer state `y`.
    """

    grid_logits: torch.FloatTensor | None = None
    grid_height_logits: torch.FloatTensor | None = None
    grid_width_logits: torch.FloatTensor | None = None
    grid_predictions: torch.LongTensor | None = None
    cell_logits: torch.FloatTensor | None = None
    class_logits: torch.FloatTensor | None = None
    text_logits: torch.FloatTensor | None = None
    step_grid_logits: torch.FloatTensor | None = None
    step_grid_height_logits: torch.FloatTensor | None = None
    step_grid_width_logits: torch.FloatTensor | None = None
    step_cell_logits: torch.FloatTensor | None = None
    step_class_logits: torch.FloatTensor | None = None
    step_text_logits: torch.FloatTensor | None = None
    step_grid_predictions: torch.LongTensor | None = None
    step_class_predictions: torch.LongTensor | None = None
    halting_logits: torch.FloatTensor | None = None
    halting_steps: torch.LongTensor | None = None
    fusion_gate: torch.FloatTensor | None = None
    planner_weights: torch.FloatTensor | None = None
    concept_ids: torch.LongTensor | None = None
    capsules: torch.FloatTensor | None = None
    step_capsules: torch.FloatTensor | None = None
    step_concept_codes: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None


@dataclass
class TRMMultitaskOutput(TRMModelOutput):
    r"""
    What [`TRMForMultitaskReasoning`] returns: [`TRMModelOutput`] plus the loss.

    Args:
        loss (`torch.FloatTensor` of shape `()`):
            Weighted sum of the task losses, the halting loss and the concept loss over the supervision steps.
        grid_loss, classification_loss, text_loss, halting_loss, concept_loss (`torch.FloatTensor` of shape `()`):
            The unweighted terms of `loss`, for logging (`None` where their labels were not given). With the cell
            head, `grid_loss` is its per-token loss on `cell_labels`.
    """

    loss: torch.FloatTensor | None = None
    grid_loss: torch.FloatTensor | None = None
    classification_loss: torch.FloatTensor | None = None
    text_loss: torch.FloatTensor | None = None
    halting_loss: torch.FloatTensor | None = None
    concept_loss: torch.FloatTensor | None = None


@dataclass
class TRMN2NOutput(ModelOutput):
    r"""
    What [`TRMForN2NPretraining`] returns.

    Args:
        loss (`torch.FloatTensor` of shape `()`):
            The Noise2Noise loss of the adapter between two spatially aligned views of each canvas.
        n2n_loss (`torch.FloatTensor` of shape `()`):
            The same value, under the name the training logs use.
    """

    loss: torch.FloatTensor | None = None
    n2n_loss: torch.FloatTensor | None = None
