"""Task heads: ARC grids, class labels and text, each reading the reasoning memory `[batch, M, hidden]`."""

from __future__ import annotations

import torch
from torch import nn

from ..configuration.conventions import IGNORE_INDEX
from .attention import TRMEncoder


def _masked_mean(memory: torch.Tensor, memory_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the memory axis of `[batch, M, hidden]`, counting only entries where `memory_mask` is True."""
    if memory_mask is None:
        return memory.mean(dim=1)
    weights = memory_mask.to(memory.dtype).unsqueeze(-1)
    return (memory * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


# ----------------------------------------------------------------------------------------------------------------
# Grid head
# ----------------------------------------------------------------------------------------------------------------


class GridHead(nn.Module):
    """Predicts an ARC grid: a colour per cell of the `max_grid_size` x `max_grid_size` canvas, plus height and width.

    Every cell is a query built from a learned row and a learned column embedding; `grid_head_num_layers` blocks let
    the cells cross-attend to the memory. The cells do not attend to each other: the reasoning happens in the
    recursion, and self-attention over 900 cells would cost more than the rest of the head (measured on the tiny
    preset: ~10x the head's FLOPs). Height and width are read from the mean memory
    (index `k` means size `k + 1`).
    """

    def __init__(self, config):
        super().__init__()
        size, hidden = config.max_grid_size, config.hidden_size
        self.max_grid_size = size
        self.row_embeddings = nn.Embedding(size, hidden)
        self.col_embeddings = nn.Embedding(size, hidden)
        self.decoder = TRMEncoder(config, config.grid_head_num_layers, cross_attention=True, self_attention=False)
        self.cell_classifier = nn.Linear(hidden, config.num_colors)
        self.size_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.height_classifier = nn.Linear(hidden, size)
        self.width_classifier = nn.Linear(hidden, size)

    def cell_queries(self) -> torch.Tensor:
        """`[max_grid_size ** 2, hidden]`: row embedding + column embedding, in row-major order."""
        queries = self.row_embeddings.weight[:, None] + self.col_embeddings.weight[None, :]
        return queries.reshape(-1, queries.shape[-1])

    def forward(
        self, memory: torch.Tensor, memory_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns `cell_logits` `[batch, S, S, num_colors]`, `height_logits` and `width_logits` `[batch, S]`."""
        batch, size = memory.shape[0], self.max_grid_size
        queries = self.cell_queries().to(memory.dtype).expand(batch, -1, -1)
        cells = self.decoder(queries, encoder_hidden_states=memory, encoder_attention_mask=memory_mask)
        cell_logits = self.cell_classifier(cells).view(batch, size, size, -1)
        summary = self.size_norm(_masked_mean(memory, memory_mask))
        return cell_logits, self.height_classifier(summary), self.width_classifier(summary)


@torch.no_grad()
def decode_grid_logits(
    cell_logits: torch.Tensor, height_logits: torch.Tensor, width_logits: torch.Tensor
) -> torch.Tensor:
    """The one decoding of grid logits: `[..., S, S]` long, the argmax colour inside the argmax height x width
    (index `k` means size `k + 1`) and `IGNORE_INDEX` outside it, the same padding as `grid_labels`."""
    grids = cell_logits.argmax(dim=-1)
    heights = height_logits.argmax(dim=-1) + 1
    widths = width_logits.argmax(dim=-1) + 1
    rows = torch.arange(grids.shape[-2], device=grids.device)
    cols = torch.arange(grids.shape[-1], device=grids.device)
    inside = (rows[:, None] < heights[..., None, None]) & (cols[None, :] < widths[..., None, None])
    return grids.masked_fill(~inside, IGNORE_INDEX)


# ----------------------------------------------------------------------------------------------------------------
# Classification head
# ----------------------------------------------------------------------------------------------------------------


class ClassificationHead(nn.Module):
    """LayerNorm + Linear on the mean-pooled memory → `[batch, num_labels]`."""

    def __init__(self, config):
        super().__init__()
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, memory: torch.Tensor, memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.classifier(self.norm(_masked_mean(memory, memory_mask)))


# ----------------------------------------------------------------------------------------------------------------
# Text decoder head
# ----------------------------------------------------------------------------------------------------------------


class TextDecoderHead(nn.Module):
    """A small causal transformer decoder that cross-attends to the memory and predicts the next token."""

    def __init__(self, config):
        super().__init__()
        self.vocab_size = config.text_vocab_size
        self.max_length = config.max_text_length
        self.token_embeddings = nn.Embedding(config.text_vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_text_length, config.hidden_size)
        # The encoder's final LayerNorm is the decoder's final norm.
        self.decoder = TRMEncoder(config, config.text_decoder_num_layers, cross_attention=True)
        self.lm_head = nn.Linear(config.hidden_size, config.text_vocab_size)

    def _check_inputs(self, input_ids: torch.Tensor) -> None:
        if input_ids.shape[1] > self.max_length:
            raise ValueError(
                f"decoder sequence length {input_ids.shape[1]} exceeds max_text_length={self.max_length}"
            )
        if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= self.vocab_size):
            raise ValueError(
                f"decoder_input_ids must lie in [0, {self.vocab_size}), got values in "
                f"[{input_ids.min().item()}, {input_ids.max().item()}]"
            )

    def forward(
        self,
        input_ids: torch.Tensor,
        memory: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Returns next-token logits `[batch, T, text_vocab_size]` for `input_ids` `[batch, T]`.

        `attention_mask` `[batch, T]` (1 = real token) hides padding keys on top of the causal mask.
        """
        self._check_inputs(input_ids)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        hidden = self.token_embeddings(input_ids) + self.position_embeddings(positions)[None]
        if attention_mask is not None:
            # Keep the first key visible so that a fully padded row (a sample without text) attends to something
            # instead of producing NaN; those positions carry no label, so their logits are never used.
            attention_mask = attention_mask.to(torch.bool).clone()
            attention_mask[:, 0] = True
        hidden = self.decoder(
            hidden,
            attention_mask=attention_mask,
            is_causal=True,
            encoder_hidden_states=memory.to(hidden.dtype),
            encoder_attention_mask=memory_mask,
        )
        return self.lm_head(hidden)
