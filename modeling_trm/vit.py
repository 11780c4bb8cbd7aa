"""The small trainable ViT path: reads the rendered canvas directly on the model's token grid."""

from __future__ import annotations

import torch
from torch import nn

from .attention import TRMEncoder
from .rotary import GridRotaryEmbedding


class TrainableViT(nn.Module):
    """A ViT trained from scratch: patch embedding, learned position embeddings and a `TRMEncoder`.

    Its patch size defines the token grid every other path is resampled to, so it needs no interpolation.

    Args:
        config ([`TRMConfig`]): uses `image_size`, `patch_size`, `num_channels`, `hidden_size`, `vit_num_layers`.
    """

    def __init__(self, config):
        super().__init__()
        self.image_size = config.image_size
        self.patch_size = config.patch_size
        self.tokens_per_side = config.num_patches_per_side
        self.crop_cell_canvas = config.crop_cell_canvas
        self.patch_embedding = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size
        )
        # Learned absolute positions, or (rope_2d) rotations inside each self-attention instead.
        self.position_embeddings = self.rotary = None
        if config.position_encoding == "rope_2d":
            self.rotary = GridRotaryEmbedding(config)
        else:
            self.position_embeddings = nn.Parameter(torch.zeros(1, config.num_patches, config.hidden_size))
            nn.init.trunc_normal_(self.position_embeddings, std=config.initializer_range)
        self.encoder = TRMEncoder(config, config.vit_num_layers)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Encodes `pixel_values` `[batch, channels, S, S]` into tokens `[batch, (S / patch_size) ** 2, hidden_size]`.

        `S` is `image_size`, or, with `TRMConfig.crop_cell_canvas` (a cropped cell canvas), a smaller multiple of the
        patch size: its tokens are the top-left corner of the full token grid and take that corner's position
        embeddings, so a grid drawn at the same cells is embedded the same way on either canvas.
        """
        side = pixel_values.shape[-1] // self.patch_size
        if not self.crop_cell_canvas and pixel_values.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"TrainableViT expects {self.image_size}x{self.image_size} images (its position embeddings are "
                f"learned for that grid), got {tuple(pixel_values.shape[-2:])}"
            )
        if pixel_values.shape[-2] != pixel_values.shape[-1] or pixel_values.shape[-1] % self.patch_size \
                or not 0 < side <= self.tokens_per_side:
            raise ValueError(
                f"TrainableViT expects square images of a multiple of {self.patch_size} px up to {self.image_size} "
                f"(crop_cell_canvas), got {tuple(pixel_values.shape[-2:])}"
            )
        pixel_values = pixel_values.to(self.patch_embedding.weight.dtype)
        tokens = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        if self.rotary is not None:
            return self.encoder(tokens, rotary=self.rotary(side, device=tokens.device))
        # Always sliced (a no-op on the full canvas): one code path for every canvas size, no branch for compile to guard.
        grid = self.position_embeddings.view(1, self.tokens_per_side, self.tokens_per_side, -1)
        positions = grid[:, :side, :side].reshape(1, side * side, -1)
        return self.encoder(tokens + positions)
