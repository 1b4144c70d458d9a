"""The dose the network is told: the low-dose scan's count level and dose fraction, as a 2-vector label.

MLEM preserves counts (Σ_j s_j λ_j = Σ_i y_i with s = Aᵀ1), so an image in counts units carries its
own count level; the noise of a reconstruction is set by that level, the fraction says how far the
scan is from the full dose. Both enter the UNet's embedding like class labels (a linear map), which
is how EDM feeds its augmentation labels: label = (log10(N_low) − 5, fraction).
"""

from __future__ import annotations

import torch

from petdiff.recon.filters import gaussian_filter

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


# The scan models (v2) are told the noise level of the very tile they see: its peak low-dose count density.
DENSITY_LABEL_DIM = 1
DENSITY_SMOOTHING_FWHM = 2.0  # pixels; the same smoothing as the quantitative normalisation's scale
REFERENCE_LOG10_DENSITY = 1.0  # 10 low-dose counts per pixel at the peak maps to 0


def peak_density(low_dose: torch.Tensor) -> torch.Tensor:
    """ρ (B,) = max(G₂ ∗ y_c): the peak low-dose counts per pixel of the centre slice of (B, 2k+1, H, W) images.

    An MLEM/OSEM image with a column-normalised system matrix (Σ_i A_ij = 1) is in counts per pixel (Σ_j λ_j =
    measured counts), and a post-filter keeps that; so ρ says how many counts the hottest region holds, i.e. its
    Poisson noise level, with no projector and no knowledge of the whole slice.
    """
    centre = low_dose.shape[1] // 2
    smooth = gaussian_filter(low_dose[:, centre : centre + 1].float(), DENSITY_SMOOTHING_FWHM)
    return smooth.flatten(1).amax(dim=1)


def labels_from_density(density: torch.Tensor, floor: float = 1e-3) -> torch.Tensor:
    """(B, 1) labels log10(ρ) − 1 from peak low-dose count densities ρ (B,); an empty tile (ρ = 0) → the floor."""
    rho = torch.as_tensor(density, dtype=torch.float32).reshape(-1).clamp_min(floor)
    return (rho.log10() - REFERENCE_LOG10_DENSITY).unsqueeze(1)


def density_from_labels(labels: torch.Tensor) -> torch.Tensor:
    """ρ (B,) from (B, 1) density labels: the inverse of `labels_from_density`."""
    return torch.pow(10.0, labels.reshape(-1).double() + REFERENCE_LOG10_DENSITY).float()


def density_labels(low_dose: torch.Tensor, floor: float = 1e-3) -> torch.Tensor:
    """(B, 1) labels log10(ρ) − 1 for low-dose images in counts per pixel (see `peak_density`); empty → floor."""
    return labels_from_density(peak_density(low_dose), floor)
