"""Pre-norm transformer blocks with SDPA attention, shared by every block of the model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN

from .rotary import apply_grid_rotary


class TRMAttention(nn.Module):
    """Multi-head attention through `torch.nn.functional.scaled_dot_product_attention`.

    Self-attention when `key_value_states` is None, cross-attention otherwise. `attention_mask` is a boolean
    key-padding mask `[batch, keys]` where True marks a key that may be attended to. `rotary`: the `(cos, sin)` of
    `rotary.GridRotaryEmbedding` for the sequence, which turns the queries and keys of a self-attention.
    """

    def __init__(self, hidden_size: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size={hidden_size} is not a multiple of num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)

    def _split_heads(self, states: torch.Tensor) -> torch.Tensor:
        batch, length, _ = states.shape
        return states.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        source = hidden_states if key_value_states is None else key_value_states
        query = self._split_heads(self.q_proj(hidden_states))
        key = self._split_heads(self.k_proj(source))
        value = self._split_heads(self.v_proj(source))
        if rotary is not None:
            if key_value_states is not None:
                raise ValueError("rotary positions apply to self-attention only, and this call is a cross-attention")
            cos, sin = (part.to(query.dtype) for part in rotary)
            query, key = apply_grid_rotary(query, cos, sin), apply_grid_rotary(key, cos, sin)
        mask = None
        if attention_mask is not None:
            mask = attention_mask[:, None, None, :].to(torch.bool)
            if is_causal:
                # SDPA does not take a mask and is_causal together: fold the causal triangle into the mask.
                length = hidden_states.shape[1]
                causal = torch.ones(length, length, dtype=torch.bool, device=hidden_states.device).tril()
                mask = mask & causal
                is_causal = False
        attended = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0, is_causal=is_causal
        )
        batch, _, length, _ = attended.shape
        return self.out_proj(attended.transpose(1, 2).reshape(batch, length, -1))


class TRMMLP(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int, hidden_act: str = "gelu", dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.act = ACT2FN[hidden_act]
        self.fc2 = nn.Linear(intermediate_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.act(self.fc1(hidden_states))))


class TRMBlock(nn.Module):
    """A pre-norm transformer layer: self-attention, optional cross-attention, feed-forward.

    Built from the model config so that every block of the model has the same width, heads and activation.
    """

    def __init__(self, config, cross_attention: bool = False, self_attention: bool = True):
        super().__init__()
        hidden = config.hidden_size
        self.self_attn_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps) if self_attention else None
        self.self_attn = TRMAttention(hidden, config.num_attention_heads, config.dropout) if self_attention else None
        self.cross_attn_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps) if cross_attention else None
        self.cross_attn = TRMAttention(hidden, config.num_attention_heads, config.dropout) if cross_attention else None
        self.mlp_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.mlp = TRMMLP(hidden, int(hidden * config.mlp_ratio), config.hidden_act, config.dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if self.self_attn is not None:
            hidden_states = hidden_states + self.self_attn(
                self.self_attn_norm(hidden_states), attention_mask=attention_mask, is_causal=is_causal, rotary=rotary
            )
        if self.cross_attn is not None:
            if encoder_hidden_states is None:
                raise ValueError("this block cross-attends and needs encoder_hidden_states")
            hidden_states = hidden_states + self.cross_attn(
                self.cross_attn_norm(hidden_states), encoder_hidden_states, attention_mask=encoder_attention_mask
            )
        return hidden_states + self.mlp(self.mlp_norm(hidden_states))


class TRMEncoder(nn.Module):
    """A stack of `TRMBlock`s, with optional gradient checkpointing (set by `PreTrainedModel`)."""

    def __init__(
        self,
        config,
        num_layers: int,
        cross_attention: bool = False,
        final_norm: bool = True,
        self_attention: bool = True,
    ):
        super().__init__()
        self.layers = nn.ModuleList(TRMBlock(config, cross_attention, self_attention) for _ in range(num_layers))
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if final_norm else nn.Identity()
        self.gradient_checkpointing = False

    def forward(self, hidden_states: torch.Tensor, **block_kwargs) -> torch.Tensor:
        for layer in self.layers:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                hidden_states = torch.utils.checkpoint.checkpoint(
                    lambda states, layer=layer: layer(states, **block_kwargs), hidden_states, use_reentrant=False
                )
            else:
                hidden_states = layer(hidden_states, **block_kwargs)
        return self.norm(hidden_states)
