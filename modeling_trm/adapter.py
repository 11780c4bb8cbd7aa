"""Noise2Noise feature adapter: cleans the fused features, trained by predicting one noisy view from another."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import TRMEncoder


class N2NFeatureAdapter(nn.Module):
    """A residual `TRMEncoder` over the fused tokens: `features + gamma * encoder(features)`.

    `gamma` is a per-channel scale initialised to zero, so the adapter starts as the exact identity: switching it on
    never destroys the pretrained features, and it only departs from the identity as far as training asks. (The
    encoder ends in a LayerNorm, so without the scale its O(1) output would swamp the features at initialisation.)

    Args:
        config ([`TRMConfig`]): uses `hidden_size`, `adapter_num_layers` and the shared block settings.
    """

    def __init__(self, config):
        super().__init__()
        self.encoder = TRMEncoder(config, config.adapter_num_layers)
        self.residual_scale = nn.Parameter(torch.zeros(config.hidden_size))

    def forward(self, features: torch.Tensor,
                rotary: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Maps `features` `[batch, tokens, hidden]` to cleaned features of the same shape (`rotary`: the token
        grid's `(cos, sin)` with `position_encoding="rope_2d"`)."""
        return features + self.residual_scale * self.encoder(features, rotary=rotary)

    def n2n_loss(self, view1_features: torch.Tensor, view2_features: torch.Tensor) -> torch.Tensor:
        """Symmetric Noise2Noise loss between the features of two spatially aligned noisy views of one image.

        Each view's features are mapped by the adapter towards the other view's features. The two noises are
        independent, so the best prediction of the other noisy view is the clean signal (Noise2Noise, Lehtinen et
        al. 2018): no clean target is needed.

        Only the adapter is trained: targets *and* inputs are detached, because a trainable feature path upstream
        could otherwise zero the loss by collapsing its features to a constant.
        """
        if view1_features.shape != view2_features.shape:
            raise ValueError(
                "n2n_loss compares token i of one view with token i of the other, so the views must be spatially "
                f"aligned and of identical shape; got {tuple(view1_features.shape)} and {tuple(view2_features.shape)}"
            )
        view1, view2 = view1_features.detach(), view2_features.detach()
        return F.mse_loss(self(view1), view2) + F.mse_loss(self(view2), view1)


def make_aligned_views(
    pixel_values: torch.Tensor,
    noise_std: float = 0.1,
    brightness: float = 0.2,
    contrast: float = 0.2,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Makes two independently perturbed views of `pixel_values` `[batch, channels, height, width]`.

    Each view gets its own per-sample brightness shift (uniform in `[-brightness, brightness]`), contrast scale around
    the sample's mean (uniform in `[1 - contrast, 1 + contrast]`) and per-pixel Gaussian noise (`noise_std`), all in
    the units of `pixel_values`. The perturbations are purely photometric: no pixel moves, so token i of both views
    sees the same image region, which is what makes them spatially aligned for [`N2NFeatureAdapter.n2n_loss`].

    Args:
        generator (`torch.Generator`, *optional*): on the device of `pixel_values`, for reproducible views.
    """
    return (
        _photometric_perturbation(pixel_values, noise_std, brightness, contrast, generator),
        _photometric_perturbation(pixel_values, noise_std, brightness, contrast, generator),
    )


def _photometric_perturbation(
    pixel_values: torch.Tensor, noise_std: float, brightness: float, contrast: float, generator: torch.Generator | None
) -> torch.Tensor:
    batch = pixel_values.shape[0]
    per_sample = (batch,) + (1,) * (pixel_values.dim() - 1)
    options = dict(generator=generator, device=pixel_values.device, dtype=pixel_values.dtype)
    shift = (torch.rand(per_sample, **options) * 2 - 1) * brightness
    scale = 1 + (torch.rand(per_sample, **options) * 2 - 1) * contrast
    noise = torch.randn(pixel_values.shape, **options) * noise_std
    mean = pixel_values.mean(dim=tuple(range(1, pixel_values.dim())), keepdim=True)
    return (pixel_values - mean) * scale + mean + shift + noise
