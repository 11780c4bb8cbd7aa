"""Concept vocabulary: a vector quantiser that maps every capsule to one of a finite set of learned codes."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init


def _is_distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class ConceptVocabulary(nn.Module):
    """VQ-VAE style quantiser over capsules, with the usual guards against codebook collapse.

    - The codebook is initialised from the first training batch's vectors (data-dependent init), so every code
      starts inside the data distribution instead of far away from it.
    - In training, a code that no vector chose during the last `dead_code_steps` updates is reset to a random
      current vector, so dead codes re-enter the competition.

    Both happen at the *start* of a training forward, before the codebook enters the autograd graph, and are
    mirrored from rank 0 under `torch.distributed` so that replicas keep identical codebooks.

    Args:
        config ([`TRMConfig`]): uses `concept_vocab_size` and `hidden_size`.
        dead_code_steps (`int`, *optional*, defaults to 100):
            Training updates without use after which a code is considered dead and reset.
    """

    def __init__(self, config, dead_code_steps: int = 100):
        super().__init__()
        self.vocab_size = config.concept_vocab_size
        self.dead_code_steps = dead_code_steps
        self.codebook = nn.Parameter(torch.randn(self.vocab_size, config.hidden_size) * config.initializer_range)
        # The buffers start at zero here and are saved with the weights (a resumed run keeps its dead-code clocks);
        # `reset_usage` clears the statistics.
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer("code_usage", torch.zeros(self.vocab_size))
        self.register_buffer("steps_since_used", torch.zeros(self.vocab_size, dtype=torch.long))

    @torch.no_grad()
    def init_weights(self, std: float) -> None:
        """Called by `TRMPreTrainedModel._init_weights`, for a new model and for keys a checkpoint lacks: a random
        codebook, counters at zero (`init` skips whatever a checkpoint has already filled)."""
        init.trunc_normal_(self.codebook, std=std)
        for buffer in (self.initialized, self.code_usage, self.steps_since_used):
            init.zeros_(buffer)

    def forward(self, capsules: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantises `capsules` `[batch, num_capsules, hidden]`.

        Returns:
            `quantized` (same shape, straight-through: forward value is the code, gradient flows to `capsules`),
            `concept_ids` `[batch, num_capsules]`, and `codes` (the chosen code vectors, with gradient to the
            codebook) from which the loss module computes the codebook and commitment terms.
        """
        flat = capsules.reshape(-1, capsules.shape[-1])
        if self.training:
            self._maintain_codebook(flat.detach())
        concept_ids = self._nearest_codes(flat).view(capsules.shape[:-1])
        codes = F.embedding(concept_ids, self.codebook).to(capsules.dtype)
        if self.training:
            self._record_usage(concept_ids)
        quantized = capsules + (codes - capsules).detach()
        return quantized, concept_ids, codes

    @torch.no_grad()
    def _nearest_codes(self, flat: torch.Tensor) -> torch.Tensor:
        # float32 distances: under bf16 the |x|^2 - 2x.c + |c|^2 expansion loses the small differences that matter.
        flat, codebook = flat.float(), self.codebook.float()
        distances = flat.pow(2).sum(-1, keepdim=True) - 2 * flat @ codebook.t() + codebook.pow(2).sum(-1)[None]
        return distances.argmin(dim=-1)

    @torch.no_grad()
    def _maintain_codebook(self, flat: torch.Tensor) -> None:
        if not bool(self.initialized):
            self._replace_codes(torch.arange(self.vocab_size, device=flat.device), flat)
            self.initialized.fill_(True)
            return
        dead = (self.steps_since_used >= self.dead_code_steps).nonzero().squeeze(-1)
        if dead.numel():
            self._replace_codes(dead, flat)
            self.steps_since_used[dead] = 0

    @torch.no_grad()
    def _replace_codes(self, indices: torch.Tensor, flat: torch.Tensor) -> None:
        """Sets `codebook[indices]` to random rows of `flat` (with a little noise when rows must repeat)."""
        count, dim = indices.numel(), flat.shape[-1]
        if flat.shape[0] >= count:
            picks = torch.randperm(flat.shape[0], device=flat.device)[:count]
            replacement = flat[picks].float()
        else:
            picks = torch.randint(flat.shape[0], (count,), device=flat.device)
            # Repeated vectors would tie in the argmin and all but one would die at once: jitter them apart.
            noise = torch.randn(count, dim, device=flat.device) * flat.float().std().clamp_min(1e-6) * 0.01
            replacement = flat[picks].float() + noise
        if _is_distributed():
            torch.distributed.broadcast(replacement, src=0)
        self.codebook[indices] = replacement.to(self.codebook.dtype)

    @torch.no_grad()
    def _record_usage(self, concept_ids: torch.Tensor) -> None:
        counts = torch.bincount(concept_ids.flatten(), minlength=self.vocab_size).to(self.code_usage.dtype)
        if _is_distributed():
            # Every replica must agree on which codes are dead before resetting them together.
            torch.distributed.all_reduce(counts)
        self.code_usage += counts
        self.steps_since_used += 1
        self.steps_since_used[counts > 0] = 0

    @torch.no_grad()
    def reset_usage(self) -> None:
        """Zeroes the usage bookkeeping, e.g. before measuring usage on an evaluation set.

        The two usage buffers are non-persistent, so `from_pretrained` leaves them uninitialised: the model's
        `_init_weights` must zero them (`init.zeros_(module.code_usage)`, `init.zeros_(module.steps_since_used)`).
        """
        self.code_usage.zero_()
        self.steps_since_used.zero_()

    def usage_statistics(self) -> dict:
        """Returns `codes_used`, `fraction_used` and the `perplexity` of the code-usage distribution so far."""
        usage = self.code_usage.double()
        total = usage.sum().item()
        codes_used = int((usage > 0).sum().item())
        if total == 0:
            return {"codes_used": 0, "fraction_used": 0.0, "perplexity": 0.0}
        probabilities = usage[usage > 0] / total
        entropy = -(probabilities * probabilities.log()).sum().item()
        return {
            "codes_used": codes_used,
            "fraction_used": codes_used / self.vocab_size,
            "perplexity": math.exp(entropy),
        }
