"""The count-level estimator: the peak low-dose count density ρ read from the noise of a normalised image alone.

A scan in Bq/mL or SUV does not say how many counts it holds, yet its noise does: at the same activity, fewer counts
mean a grainier image. This small fully convolutional network sees the normalised low-dose tile (the 2k+1 slices the
scan models see, scale-free) and predicts the density label log10(ρ) − 1 of `models.dose`; ρ̂ divided by the tile's
own peak in the scan's units is then K̂, the counts per unit (issue 16: "estimate it from the image itself").
"""

from __future__ import annotations

import math
from typing import Any

import torch

from petdiff.models.dihedral import random_dihedral
from petdiff.models.rng import as_generator
from petdiff.utils.validation import check_image_batch

ROLE_COUNT_LEVEL = "count_level"


def _block(cin: int, cout: int, stride: int) -> torch.nn.Sequential:
    """3×3 convolution, group norm, SiLU."""
    return torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 3, stride=stride, padding=1),
                               torch.nn.GroupNorm(min(8, cout), cout), torch.nn.SiLU())


class CountLevelNet(torch.nn.Module):
    """log10(ρ̂) − 1 (B, 1) from a normalised low-dose batch (B, 2k+1, H, W): four stride-2 stages, global pooling."""

    def __init__(self, cond_channels: int = 3, model_channels: int = 32, sigma_data: float = 0.5,
                 role: str = ROLE_COUNT_LEVEL, img_resolution: Any = None, img_channels: int = 1):
        super().__init__()
        if role != ROLE_COUNT_LEVEL:
            raise ValueError(f"role: expected {ROLE_COUNT_LEVEL!r} for a CountLevelNet, found {role!r}")
        if cond_channels < 1 or cond_channels % 2 != 1:
            raise ValueError(f"cond_channels: expected an odd number 2k+1, found {cond_channels}")
        if not (math.isfinite(float(sigma_data)) and float(sigma_data) > 0):
            raise ValueError(f"sigma_data: expected a positive finite number, found {sigma_data!r}")
        self.role, self.cond_channels, self.sigma_data = role, int(cond_channels), float(sigma_data)
        self.model_channels = int(model_channels)
        self.img_resolution = img_resolution
        w = self.model_channels
        self.features = torch.nn.Sequential(_block(cond_channels, w, 1), _block(w, w, 2), _block(w, 2 * w, 2),
                                            _block(2 * w, 2 * w, 2), _block(2 * w, 4 * w, 2))
        self.head = torch.nn.Linear(8 * w, 1)

    @property
    def config(self) -> dict[str, Any]:
        """JSON-serialisable architecture; ``build_network(net.config)`` rebuilds it."""
        return {"role": self.role, "cond_channels": self.cond_channels, "model_channels": self.model_channels,
                "sigma_data": self.sigma_data, "img_resolution": self.img_resolution, "img_channels": 1}

    def forward(self, condition: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted density labels (B, 1); the mean and the max of the features are pooled (any H, W ≥ 16)."""
        check_image_batch("condition", condition, channels=self.cond_channels)
        h = self.features(condition.to(torch.float32) / self.sigma_data)
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return self.head(pooled)


class CountLevelLoss:
    """(f(y) − label)² per sample as (B, 1, 1, 1), with a random dihedral transform of each input."""

    def __call__(self, net: torch.nn.Module, images: torch.Tensor, condition: torch.Tensor | None = None,
                 class_labels: torch.Tensor | None = None, augment_pipe: Any = None, generator: Any = None
                 ) -> torch.Tensor:
        """Squared error of the predicted density label (images and augment_pipe are not used)."""
        if condition is None or class_labels is None:
            raise ValueError("condition, class_labels: the count-level loss needs the low-dose image and its density "
                             "label (data.dose_labels: density)")
        (condition,) = random_dihedral(condition, generator=as_generator(generator))
        return ((net(condition) - class_labels) ** 2).view(-1, 1, 1, 1)
