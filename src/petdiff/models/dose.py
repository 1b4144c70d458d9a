"""The dose the network is told: the low-dose scan's count level and dose fraction, as a 2-vector label.

MLEM preserves counts (Σ_j s_j λ_j = Σ_i y_i with s = Aᵀ1), so an image in counts units carries its
own count level; the noise of a reconstruction is set by that level, the fraction says how far the
scan is from the full dose. Both enter the UNet's embedding like class labels (a linear map), which
is how EDM feeds its augmentation labels: label = (log10(N_low) − 5, fraction).
"""

from __future__ import annotations

import torch

DOSE_LABEL_DIM = 2
REFERENCE_LOG10_COUNTS = 5.0  # 1e5 low-dose counts (25 % of the reference 4e5…1e6) maps to 0


def dose_labels(count_level: torch.Tensor | float, fraction: torch.Tensor | float, batch: int = 1) -> torch.Tensor:
    """(B, 2) labels (log10(N_low) − 5, f) from the low-dose counts N_low and the dose fraction f (broadcast to B)."""
    counts = torch.as_tensor(count_level, dtype=torch.float32).reshape(-1)
    fraction = torch.as_tensor(fraction, dtype=torch.float32, device=counts.device).reshape(-1)
    size = max(batch, counts.numel(), fraction.numel())
    if counts.numel() not in (1, size) or fraction.numel() not in (1, size):
        raise ValueError(f"count_level, fraction: expected one value or {size} values each, "
                         f"found {counts.numel()} and {fraction.numel()}")
    counts, fraction = counts.expand(size), fraction.expand(size)
    if not bool(torch.isfinite(counts).all()) or bool((counts <= 0).any()):
        raise ValueError(f"count_level: expected positive finite counts, found {counts[:4].tolist()}")
    if not bool(((fraction > 0) & (fraction <= 1)).all()):
        raise ValueError(f"fraction: expected dose fractions in (0, 1], found {fraction[:4].tolist()}")
    return torch.stack([counts.log10() - REFERENCE_LOG10_COUNTS, fraction], dim=1)


DENSITY_SMOOTHING_FWHM = 2.0  # pixels: the noise-robust peak of the low-dose slice
REFERENCE_LOG10_DENSITY = 1.0  # 10 low-dose counts per pixel at the peak maps to 0


def peak_density(low: torch.Tensor) -> torch.Tensor:
    """ρ (B,) = max(gaussian_filter(low, FWHM 2 px)): the peak low-dose counts per pixel of slices (B, 1, H, W)."""
    from petdiff.recon import gaussian_filter

    return gaussian_filter(low, DENSITY_SMOOTHING_FWHM).flatten(1).amax(dim=1)


def density_labels(low: torch.Tensor) -> torch.Tensor:
    """(B, 1) labels log10(ρ) − 1 of low-dose slices (B, 1, H, W) in counts per pixel (`peak_density`)."""
    rho = peak_density(low)
    if not bool(torch.isfinite(rho).all()) or bool((rho <= 0).any()):
        raise ValueError(f"low: expected slices with positive finite counts, found peak densities {rho[:4].tolist()}")
    return (rho.log10() - REFERENCE_LOG10_DENSITY)[:, None]
