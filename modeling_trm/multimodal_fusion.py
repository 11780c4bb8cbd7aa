"""Two modalities, two canvases: the fusion strategies that the fusion note asks to compare (issue 10, claim 7).

The product model reads one canvas per sample and fuses two *paths* over it (pretrained tower and trainable ViT,
`fusion.AdaptiveFusion`). Comparing fusion of two *modalities* needs a sample with two inputs, so this module
builds that variant from the product's own blocks: each modality's canvas is read by its own `TrainableViT` and
one `TRMEncoder` layer, and `strategy` picks how the two streams meet:

- `"image"` / `"text"`: one modality only (the unimodal baselines);
- `"early"`: the two pooled representations are concatenated and fed to a joint classifier (an MLP);
- `"late"`: each modality has its own classifier and their logits are added (a product of experts);
- `"gated"`: the shipped gate, `AdaptiveFusion` (`gate * image + (1 - gate) * text`, token by token after the
  per-modality layer), then one shared layer and classifier;
- `"attention"`: the two token sequences, each with a learned modality embedding, are concatenated and one shared
  self-attention layer lets every token attend across modalities, then pooling and the classifier.

`forward(..., drop="image" | "text")` leaves a modality out *inside* the fusion (the note's "drop one modality at
inference"): early fusion replaces its pooled vector by zeros, late fusion omits its logits, the gate is forced to
the other stream, attention masks its tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from .attention import TRMEncoder
from .fusion import AdaptiveFusion
from .vit import TrainableViT

FUSION_STRATEGIES = ("image", "text", "early", "late", "gated", "attention")
MODALITIES = ("image", "text")


@dataclass
class TwoModalityOutput(ModelOutput):
    """`loss` (with `labels`), `logits` `[batch, num_labels]`, and the gate `[batch, 1]` of the gated strategy."""

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    gate: torch.FloatTensor | None = None


class TwoModalityClassifier(nn.Module):
    """Classifies a pair of canvases (an image and a rendered text) with one fusion strategy.

    Args:
        config ([`TRMConfig`]): the sizes of the product's blocks (`image_size`, `patch_size`, `hidden_size`,
            `vit_num_layers`, ...); `fusion_mode` is the gate's mode for the `"gated"` strategy.
        strategy (`str`): one of `FUSION_STRATEGIES`.
        num_labels (`int`): classes of the classifier.
    """

    def __init__(self, config, strategy: str, num_labels: int):
        super().__init__()
        if strategy not in FUSION_STRATEGIES:
            raise ValueError(f"strategy={strategy!r} is not one of {FUSION_STRATEGIES}")
        if num_labels < 2:
            raise ValueError(f"num_labels must be at least 2, got {num_labels}")
        self.strategy = strategy
        hidden = config.hidden_size
        used = (strategy,) if strategy in MODALITIES else MODALITIES
        self.encoders = nn.ModuleDict({name: TrainableViT(config) for name in used})
        shared_layer = strategy in ("gated", "attention")
        # A modality's own layer: every strategy but attention has one per modality (gated fuses after it).
        self.modality_layers = nn.ModuleDict(
            {} if strategy == "attention" else {name: TRMEncoder(config, 1) for name in used})
        self.shared_layer = TRMEncoder(config, 1) if shared_layer else None
        self.fusion = AdaptiveFusion(config) if strategy == "gated" else None
        self.modality_embeddings = nn.Parameter(torch.zeros(2, hidden)) if strategy == "attention" else None
        if strategy == "early":
            self.joint = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.GELU())
        if strategy == "late":
            self.heads = nn.ModuleDict({name: nn.Linear(hidden, num_labels) for name in used})
        else:
            self.head = nn.Linear(hidden, num_labels)

    def forward(self, image_pixel_values=None, text_pixel_values=None, labels=None, drop: str | None = None):
        if drop is not None and drop not in MODALITIES:
            raise ValueError(f"drop must be None, 'image' or 'text', got {drop!r}")
        inputs = {"image": image_pixel_values, "text": text_pixel_values}
        for name in self.encoders:
            if inputs[name] is None:
                raise ValueError(f"strategy {self.strategy!r} needs {name}_pixel_values")
        if self.strategy in MODALITIES and drop == self.strategy:
            raise ValueError(f"the {self.strategy}-only model cannot drop its only modality")
        tokens = {name: encoder(inputs[name]) for name, encoder in self.encoders.items()}   # [B, N, D] each
        logits, gate = getattr(self, f"_{self.strategy if self.strategy not in MODALITIES else 'single'}")(
            tokens, drop)
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return TwoModalityOutput(loss=loss, logits=logits, gate=gate)

    def _single(self, tokens, drop):
        (name,) = tokens
        return self.head(self.modality_layers[name](tokens[name]).mean(1)), None

    def _early(self, tokens, drop):
        pooled = {name: self.modality_layers[name](tokens[name]).mean(1) for name in MODALITIES}
        if drop is not None:
            pooled[drop] = torch.zeros_like(pooled[drop])
        return self.head(self.joint(torch.cat([pooled["image"], pooled["text"]], dim=-1))), None

    def _late(self, tokens, drop):
        kept = [name for name in MODALITIES if name != drop]
        logits = [self.heads[name](self.modality_layers[name](tokens[name]).mean(1)) for name in kept]
        return torch.stack(logits).sum(0), None

    def _gated(self, tokens, drop):
        streams = {name: self.modality_layers[name](tokens[name]) for name in MODALITIES}
        fused, gate = self.fusion(streams["image"], streams["text"])    # gate = weight of the image stream
        if drop is not None:
            fused = streams["text" if drop == "image" else "image"]
            gate = torch.full_like(gate, 0.0 if drop == "image" else 1.0)
        return self.head(self.shared_layer(fused).mean(1)), gate

    def _attention(self, tokens, drop):
        kept = [name for name in MODALITIES if name != drop]
        sequence = torch.cat([tokens[name] + self.modality_embeddings[MODALITIES.index(name)] for name in kept], 1)
        return self.head(self.shared_layer(sequence).mean(1)), None


__all__ = ["FUSION_STRATEGIES", "TwoModalityClassifier", "TwoModalityOutput"]
