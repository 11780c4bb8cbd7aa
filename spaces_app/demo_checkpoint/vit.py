"""The small trainable ViT path: reads the rendered canvas directly on the model's token grid."""

from __future__ import annotations

import torch
from torch import nn

from .attention import TRMEncoder


class TrainableViT(nn.Module):
    """A ViT trained from scratch: patch embedding, learned position embeddings and a `TRMEncoder`.

    Its patch size defines the token grid every other path is resampled to, so it needs no interpolation.

    Args:
        config ([`TRMConfig`]): uses `image_size`, `patch_size`, `num_channels`, `hidden_size`, `vit_num_layers`.
    """

    def __init__(self, config):
        super().__init__()
        self.image_size = config.image_size
        self.patch_embedding = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size
        )
        self.position_embeddings = nn.Parameter(torch.zeros(1, config.num_patches, config.hidden_size))
        nn.init.trunc_normal_(self.position_embeddings, std=config.initializer_range)
        self.encoder = TRMEncoder(config, config.vit_num_layers)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Encodes `pixel_values` `[batch, channels, S, S]` into tokens `[batch, num_patches, hidden_size]`."""
        if pixel_values.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"TrainableViT expects {self.image_size}x{self.image_size} images (its position embeddings are "
                f"learned for that grid), got {tuple(pixel_values.shape[-2:])}"
            )
        pixel_values = pixel_values.to(self.patch_embedding.weight.dtype)
        tokens = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        return self.encoder(tokens + self.position_embeddings)
