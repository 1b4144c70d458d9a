"""Intensity normalisation of (full-dose, low-dose) reconstruction pairs for the network.

Two mappings are offered:

* ``"quantitative"`` (default): both images of a pair share one scale derived from the low-dose
  image and the known dose fraction ``f``. The low-dose image is first put in full-dose units
  (``low / f``, MLEM preserves counts), then ``s = max(smooth(low / f))`` (a Gaussian-smoothed
  maximum, robust to noise) maps ``[0, s]`` to ``[-1, 1]``: ``x = 2 img / s - 1``. Because the
  scale comes from the low-dose input alone, it is available at inference time and
  :func:`invert` returns images in full-dose reconstruction units.
* ``"reference"``: the reference implementation's per-image ``x = img / (max(img) / 2) - 1``;
  each image has its own scale, so inversion of the network output uses the low-dose image's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from petdiff.recon import gaussian_filter
from petdiff.utils.validation import check_image_batch, check_non_negative

NORMALIZATIONS = ("quantitative", "reference")

# FWHM (pixels) of the smoothing used to find a noise-robust maximum of the low-dose image.
SCALE_SMOOTHING_FWHM = 2.0


@dataclass(frozen=True)
class Normalizer:
    """Maps activity-like images to the network's [-1, 1] range and back, per sample."""

    mode: str = "quantitative"

    def __post_init__(self) -> None:
        if self.mode not in NORMALIZATIONS:
            raise ValueError(f"normalization: expected one of {NORMALIZATIONS}, found {self.mode!r}")

    def scale(self, low_dose: torch.Tensor, fraction: torch.Tensor | float) -> torch.Tensor:
        """Per-sample scale s (B,) such that an image img maps to 2 img / s - 1."""
        check_image_batch("low_dose", low_dose)
        check_non_negative("low_dose", low_dose)
        fraction = torch.as_tensor(fraction, dtype=low_dose.dtype, device=low_dose.device)
        fraction = fraction.expand(low_dose.shape[0]) if fraction.ndim == 0 else fraction
        if self.mode == "quantitative":
            smooth = gaussian_filter(low_dose / fraction.view(-1, 1, 1, 1), SCALE_SMOOTHING_FWHM)
        else:
            smooth = low_dose
        peak = smooth.flatten(1).amax(dim=1)
        # An empty slice has no scale; 1 keeps it at -1 (background) instead of dividing by zero.
        return torch.where(peak > 0, peak, torch.ones_like(peak))

    def normalize(self, images: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """x = 2 img / s - 1 with one scale per sample."""
        return 2.0 * images / scale.view(-1, 1, 1, 1) - 1.0

    def invert(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """img = (x + 1) s / 2, the inverse of :meth:`normalize`."""
        return (x + 1.0) * scale.view(-1, 1, 1, 1) / 2.0

    def pair_scales(
        self, full_dose: torch.Tensor, low_dose: torch.Tensor, fraction: torch.Tensor | float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scales (full, low) for a pair: shared in quantitative mode, per image in reference mode."""
        low_scale = self.scale(low_dose, fraction)
        if self.mode == "quantitative":
            # low / f is in full-dose units, so the low image's own scale is s · f.
            fraction = torch.as_tensor(fraction, dtype=low_dose.dtype, device=low_dose.device)
            return low_scale, low_scale * fraction
        return self.scale(full_dose, 1.0), low_scale
