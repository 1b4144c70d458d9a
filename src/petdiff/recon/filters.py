"""Gaussian post-filter: the classical denoising baseline for MLEM images."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from petdiff.utils.validation import check_image_batch

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # FWHM = 2√(2 ln 2)·σ
PADDING_MODES = ("reflect", "zeros", "replicate", "circular")


def gaussian_kernel1d(
    sigma: float, truncate: float = 4.0, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """g_k ∝ exp(-k²/(2σ²)) for |k| ≤ round(truncate·σ), normalised to Σ g_k = 1."""
    radius = int(truncate * sigma + 0.5)
    k = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (k / sigma) ** 2)
    return (g / g.sum()).to(dtype=dtype, device=device)


def gaussian_filter(images: torch.Tensor, fwhm: float, padding: str = "reflect", truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian blur with σ = fwhm / (2√(2 ln 2)) pixels per axis; fwhm = 0 returns a copy.

    padding: "reflect" (mirror about the edge pixel, d c b | a b c d, like scipy mode='mirror'), "zeros"
    (activity outside the image is 0, so mass leaks out at the border), "replicate" or "circular".
    The kernel is the sampled Gaussian truncated at truncate·σ and normalised to sum 1 (scipy's convention).
    """
    check_image_batch("images", images, channels=None)
    try:
        fwhm = float(fwhm)
    except (TypeError, ValueError):
        raise ValueError(f"fwhm: expected a number ≥ 0 (pixels), found {fwhm!r}") from None
    if not (math.isfinite(fwhm) and fwhm >= 0):
        raise ValueError(f"fwhm: expected a finite number ≥ 0 (pixels), found {fwhm!r}")
    if padding not in PADDING_MODES:
        raise ValueError(f"padding: expected one of {PADDING_MODES}, found {padding!r}")
    if not (isinstance(truncate, (int, float)) and math.isfinite(truncate) and truncate > 0):
        raise ValueError(f"truncate: expected a positive number of σ, found {truncate!r}")
    if fwhm == 0:
        return images.clone()
    g = gaussian_kernel1d(fwhm / FWHM_PER_SIGMA, truncate, images.dtype, images.device)
    r = (g.shape[0] - 1) // 2
    if r == 0:
        return images.clone()
    b, c, h, w = images.shape
    if padding == "reflect" and r >= min(h, w):
        raise ValueError(
            f"fwhm: kernel radius {r} px must be < the image size {min(h, w)} for padding='reflect', found fwhm={fwhm}"
        )
    x = images.reshape(b * c, 1, h, w)
    mode = "constant" if padding == "zeros" else padding
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), g.reshape(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), g.reshape(1, 1, -1, 1))
    return x.reshape(b, c, h, w)
