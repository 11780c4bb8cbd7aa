"""The training objective around the base model, as TRM's `ACTLossHead`: the model returns per-step logits and
halting logits; this module owns deep supervision, the halting targets, the multi-task weighting and the concept
vocabulary's codebook / commitment terms. It also checks the labels, so a bad label fails here with its name.

Deep supervision: every supervision step is scored on its own (the carry between steps is detached), counting each
(step, sample) pair at which the sample was still running. The halting head learns, at each step, whether the
answer is already right (EMIT) and the bootstrapped value of continuing (EXPAND), as in HRM / TRM.

The grid term depends on the grid head: the cell queries (`grid_head_type="queries"`) train on `grid_labels`, the
per-token cell head (`"cells"`) on `cell_labels` (its `grid_loss` is the per-token cross-entropy; a sample is
right when the grid decoded from its cells equals the target grid).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration.conventions import BACKGROUND_CLASS, IGNORE_INDEX, NUM_CELL_CLASSES
from .cell_head import cell_labels_to_grids
from .heads import decode_grid_logits
from .recursion import HALT_EMIT, HALT_EXPAND


# ------------------------------------------------------------------------------------------------- the terms
def grid_targets(grid_labels: torch.Tensor, num_colors: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(heights, widths, has_grid)` `[batch]` of `grid_labels` `[batch, S, S]` padded with `IGNORE_INDEX`.

    Raises `ValueError` when a value is neither `IGNORE_INDEX` nor a colour, or when the labelled cells do not form a
    top-left rectangle (the padding the processor writes).
    """
    valid = grid_labels != IGNORE_INDEX
    bad_values = valid & ((grid_labels < 0) | (grid_labels >= num_colors))
    if bad_values.any():
        samples = bad_values.flatten(1).any(1).nonzero().flatten().tolist()
        values = sorted(set(grid_labels[bad_values].tolist()))[:5]
        raise ValueError(
            f"grid_labels of samples {samples} hold values {values}: cells must be {IGNORE_INDEX} (padding) or a "
            f"colour in [0, {num_colors})"
        )
    heights = valid.any(dim=2).sum(dim=1)
    widths = valid.any(dim=1).sum(dim=1)
    rows = torch.arange(grid_labels.shape[1], device=grid_labels.device)
    cols = torch.arange(grid_labels.shape[2], device=grid_labels.device)
    rectangle = (rows[None, :, None] < heights[:, None, None]) & (cols[None, None, :] < widths[:, None, None])
    not_rectangular = (rectangle != valid).flatten(1).any(1)
    if not_rectangular.any():
        samples = not_rectangular.nonzero().flatten().tolist()
        raise ValueError(
            f"grid_labels of samples {samples} are not a top-left rectangle: the labelled cells must fill rows "
            f"0..height-1 and columns 0..width-1 exactly, with {IGNORE_INDEX} everywhere else"
        )
    return heights, widths, heights > 0


def grid_loss(cell_logits, height_logits, width_logits, grid_labels, heights, widths, has_grid) -> torch.Tensor:
    """Per-sample `[batch]`: mean cell cross-entropy over the target's cells + height CE + width CE (0 without a
    target)."""
    cell_ce = F.cross_entropy(
        cell_logits.float().permute(0, 3, 1, 2), grid_labels, ignore_index=IGNORE_INDEX, reduction="none"
    )
    cell_loss = cell_ce.flatten(1).sum(1) / (grid_labels != IGNORE_INDEX).flatten(1).sum(1).clamp_min(1)
    # Size k is class k - 1; the clamp keeps the index legal for grid-less samples, which are masked out below.
    height_loss = F.cross_entropy(height_logits.float(), (heights - 1).clamp_min(0), reduction="none")
    width_loss = F.cross_entropy(width_logits.float(), (widths - 1).clamp_min(0), reduction="none")
    return torch.where(has_grid, cell_loss + height_loss + width_loss, torch.zeros_like(cell_loss))


def cell_loss(cell_logits: torch.Tensor, cell_labels: torch.Tensor, background_weight: float) -> torch.Tensor:
    """Per-sample `[batch]`: the weighted mean over tokens of the per-token cross-entropy over the 12 cell classes;
    background tokens weigh `background_weight`, the grid's cells and its frame 1 (0 without a target)."""
    token_ce = F.cross_entropy(
        cell_logits.float().permute(0, 3, 1, 2), cell_labels, ignore_index=IGNORE_INDEX, reduction="none"
    )
    weights = (cell_labels != IGNORE_INDEX).float()
    weights = torch.where(cell_labels == BACKGROUND_CLASS, weights * background_weight, weights)
    return (token_ce * weights).flatten(1).sum(1) / weights.flatten(1).sum(1).clamp_min(1e-6)


def shifted_text_cross_entropy(text_logits: torch.Tensor, text_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The causal-LM shift, in one place: logits at position t score label t + 1.

    Returns the per-sample summed next-token negative log-likelihood `[batch]` and the number of scored tokens
    `[batch]` (labels equal to `IGNORE_INDEX` are not scored).
    """
    shift_labels = text_labels[:, 1:]
    token_nll = F.cross_entropy(
        text_logits[:, :-1].float().transpose(1, 2), shift_labels, ignore_index=IGNORE_INDEX, reduction="none"
    )
    return token_nll.sum(1), (shift_labels != IGNORE_INDEX).sum(1)


def halting_loss(q_logits: torch.Tensor, is_correct: torch.Tensor, next_q_logits: torch.Tensor | None) -> torch.Tensor:
    """Per-sample halting loss `[batch]` of HRM / TRM: EMIT predicts whether the current answer is right; EXPAND
    learns the bootstrapped target `sigmoid(max(next EMIT, next EXPAND))` when a next step exists (no gradient)."""
    q_logits = q_logits.float()
    loss = F.binary_cross_entropy_with_logits(q_logits[:, HALT_EMIT], is_correct.float(), reduction="none")
    if next_q_logits is not None:
        target = torch.sigmoid(next_q_logits.float().max(dim=-1).values).detach()
        loss = loss + F.binary_cross_entropy_with_logits(q_logits[:, HALT_EXPAND], target, reduction="none")
    return loss


def concept_loss(capsules: torch.Tensor, codes: torch.Tensor, commitment_cost: float) -> torch.Tensor:
    """VQ-VAE loss: the codebook term pulls the chosen codes to the capsules, the commitment term keeps the capsules
    near their codes."""
    codebook_term = F.mse_loss(codes.float(), capsules.detach().float())
    commitment_term = F.mse_loss(capsules.float(), codes.detach().float())
    return codebook_term + commitment_cost * commitment_term


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


# ---------------------------------------------------------------------------------------------- the objective
class TRMMultitaskLoss(nn.Module):
    """Deep-supervision, multi-task loss of a [`TRMModelOutput`].

    `forward` returns a dict: `loss` (what the optimiser minimises) and the unweighted terms `grid_loss`,
    `classification_loss`, `text_loss`, `halting_loss`, `concept_loss` (those whose inputs exist), for logging.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config

    def forward(self, outputs, labels=None, grid_labels=None, text_labels=None, cell_labels=None,
                check_values: bool = True) -> dict[str, torch.Tensor]:
        """`check_values=False` checks the labels' types and shapes only: reading their values is a GPU sync (see
        `TRMModel.forward`'s `check_input_values`)."""
        if labels is None and grid_labels is None and text_labels is None and cell_labels is None:
            raise ValueError("the loss needs at least one of labels, grid_labels, text_labels and cell_labels")
        self.check_labels(outputs, labels, grid_labels, text_labels, cell_labels, check_values=check_values)
        labels, grid_labels, text_labels, cell_labels = (
            t.long() if t is not None else None for t in (labels, grid_labels, text_labels, cell_labels)
        )
        cell_targets = None
        if cell_labels is not None:
            cell_targets = (cell_labels, *self.cell_grid_targets(cell_labels, grid_labels, check_values))
            grid_labels = None  # the cell head trains on cell_labels; grid_labels only had to agree with them
        num_steps = outputs.halting_logits.shape[1]
        # A sample is supervised at every step it ran: steps 1 .. its halting step.
        active = torch.arange(num_steps, device=outputs.halting_steps.device) < outputs.halting_steps[:, None]
        per_step = [
            self._step_losses(outputs, step, labels, grid_labels, text_labels, cell_targets) for step in range(num_steps)
        ]

        task = torch.stack([total for total, _, _ in per_step], 1)
        correct = torch.stack([right for _, right, _ in per_step], 1)
        halting = torch.stack(
            [
                halting_loss(
                    outputs.halting_logits[:, step],
                    correct[:, step],
                    outputs.halting_logits[:, step + 1] if step + 1 < num_steps else None,
                )
                for step in range(num_steps)
            ],
            1,
        )
        weight = active.float()
        count = weight.sum().clamp(min=1.0)
        terms = {"halting_loss": (halting * weight).sum() / count}
        loss = (task * weight).sum() / count + self.config.halting_loss_weight * terms["halting_loss"]
        for name in per_step[0][2]:
            terms[name] = torch.stack([step_terms[name] for _, _, step_terms in per_step]).mean()
        if outputs.step_concept_codes is not None:
            terms["concept_loss"] = concept_loss(
                outputs.step_capsules, outputs.step_concept_codes, self.config.concept_commitment_cost
            )
            loss = loss + self.config.concept_loss_weight * terms["concept_loss"]
        return {"loss": loss, **terms}

    def cell_grid_targets(self, cell_labels, grid_labels, check_values: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The target grids `[B, G, G]` and `has_grid` `[B]` drawn in `cell_labels`; when `grid_labels` are given too
        (the processor returns both), they must be the same grids (checked with `check_values`)."""
        target_grids, has_grid = cell_labels_to_grids(cell_labels, self.config.max_grid_size, check=check_values)
        if grid_labels is not None and check_values:
            disagree = (target_grids != grid_labels).flatten(1).any(1)
            if disagree.any():
                raise ValueError(
                    f"cell_labels and grid_labels of samples {disagree.nonzero().flatten().tolist()} are not the same "
                    "grids (both must come from the same processor call)"
                )
        return target_grids, has_grid

    def _step_losses(self, outputs, step: int, labels, grid_labels, text_labels, cell_targets=None):
        """One supervision step: the weighted per-sample task loss `[batch]`, whether each sample's answer is right
        (for the halting target), and each term's mean over the samples that have its target."""
        config = self.config
        batch = outputs.halting_steps.shape[0]
        device = outputs.halting_steps.device
        total = torch.zeros(batch, device=device)
        correct = torch.ones(batch, dtype=torch.bool, device=device)
        has_any_target = torch.zeros(batch, dtype=torch.bool, device=device)
        terms = {}
        if grid_labels is not None:
            heights, widths, has_grid = grid_targets(grid_labels, config.num_colors)
            logits = (outputs.step_grid_logits[:, step], outputs.step_grid_height_logits[:, step],
                      outputs.step_grid_width_logits[:, step])
            per_sample = grid_loss(*logits, grid_labels, heights, widths, has_grid)
            right = (decode_grid_logits(*logits) == grid_labels).flatten(1).all(1)
            correct &= right | ~has_grid
            has_any_target |= has_grid
            terms["grid_loss"] = _masked_mean(per_sample, has_grid)
            total = total + config.grid_loss_weight * per_sample
        if cell_targets is not None:
            cell_labels, target_grids, has_grid = cell_targets
            per_sample = cell_loss(outputs.step_cell_logits[:, step], cell_labels, config.cell_background_loss_weight)
            right = (outputs.step_grid_predictions[:, step] == target_grids).flatten(1).all(1)
            correct &= right | ~has_grid
            has_any_target |= has_grid
            terms["grid_loss"] = _masked_mean(per_sample, has_grid)
            total = total + config.grid_loss_weight * per_sample
        if labels is not None:
            has_label = labels != IGNORE_INDEX
            logits = outputs.step_class_logits[:, step].float()
            per_sample = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="none")
            correct &= (logits.argmax(-1) == labels) | ~has_label
            has_any_target |= has_label
            terms["classification_loss"] = _masked_mean(per_sample, has_label)
            total = total + config.classification_loss_weight * per_sample
        if text_labels is not None:
            logits = outputs.step_text_logits[:, step]
            nll, scored = shifted_text_cross_entropy(logits, text_labels)
            per_sample = nll / scored.clamp_min(1)
            has_text = scored > 0
            token_right = (logits[:, :-1].argmax(-1) == text_labels[:, 1:]) | (text_labels[:, 1:] == IGNORE_INDEX)
            correct &= token_right.all(dim=1) | ~has_text
            has_any_target |= has_text
            terms["text_loss"] = _masked_mean(per_sample, has_text)
            total = total + config.text_loss_weight * per_sample
        return total, correct & has_any_target, terms

    def check_labels(self, outputs, labels, grid_labels, text_labels, cell_labels=None, check_values: bool = True) -> None:
        """Raises `ValueError` naming the first label that does not fit the outputs or the config (its values only
        with `check_values`)."""
        config = self.config
        check_range = _check_label_values if check_values else _skip_value_check
        batch = outputs.halting_steps.shape[0]
        side = config.max_grid_size
        if labels is not None:
            _check_tensor("labels", labels, (batch,))
            check_range("labels", labels, config.num_labels, "classes")
            if outputs.step_class_logits is None:
                raise ValueError("labels were given but this config has no classification head")
        if grid_labels is not None:
            _check_tensor("grid_labels", grid_labels, (batch, side, side), f"padded with {IGNORE_INDEX} to {side}x{side}")
            if outputs.step_cell_logits is not None and cell_labels is None:
                raise ValueError(
                    "this config's grid head is the cell head (grid_head_type='cells'): it trains on cell_labels, "
                    "which the processor returns in its 'cells' layout (TRMProcessor.from_config sets it)"
                )
            if outputs.step_grid_logits is None and outputs.step_cell_logits is None:
                raise ValueError("grid_labels were given but this config has no grid head")
        if cell_labels is not None:
            if outputs.step_cell_logits is None:
                raise ValueError("cell_labels were given but this config has no cell head (grid_head_type='cells')")
            tokens = outputs.step_cell_logits.shape[2]
            _check_tensor("cell_labels", cell_labels, (batch, tokens, tokens), "one class per token")
            check_range("cell_labels", cell_labels, NUM_CELL_CLASSES, "cell classes")
        if text_labels is not None:
            if outputs.step_text_logits is None:
                raise ValueError("text_labels were given without decoder_input_ids, or this config has no text head")
            length = outputs.step_text_logits.shape[2]
            _check_tensor("text_labels", text_labels, (batch, length), "aligned with decoder_input_ids")
            check_range("text_labels", text_labels, config.text_vocab_size, "token ids")


def _check_tensor(name: str, value, shape: tuple, hint: str = "") -> None:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError(f"{name} must hold integers, got dtype {value.dtype}")
    if tuple(value.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}{' (' + hint + ')' if hint else ''}, got {tuple(value.shape)}")


def _skip_value_check(name: str, value: torch.Tensor, upper: int, what: str) -> None:
    pass


def _check_label_values(name: str, value: torch.Tensor, upper: int, what: str) -> None:
    bad = (value != IGNORE_INDEX) & ((value < 0) | (value >= upper))
    if bad.any():
        raise ValueError(
            f"{name} hold {sorted(set(value[bad].tolist()))[:5]}: each must be {IGNORE_INDEX} (no label) or one of "
            f"the {upper} {what} [0, {upper})"
        )
