"""Recalibrating the posterior std on validation pairs whose reference is itself a noisy full-dose scan.

The low dose is the full dose's list-mode data subsampled to a fraction f, so the full dose holds the low dose's
counts plus an independent remainder (Poisson thinning). In full-dose units (low-dose values ÷ f):

    rest = (full − low)/(1 − f)

is a reconstruction of the counts the network never saw: its expectation is the noise-free full-dose image F̄ (what
the full-dose reconstruction converges to over repeated scans), and its noise is independent of the enhanced mean m.
For reconstructions linear in the counts, var(low/f − full) = (1 − f)/f · var_full and var_rest = var_full/(1 − f),
so the remainder's noise variance is estimated from the pair itself, locally (Gaussian window):

    var_rest ≈ f/(1 − f)² · G ∗ (low/f − full)².

If the intervals m ± z·c·std cover F̄ with probability 0.9 (z = 1.645), then rest − m ~ N(0, c²·std² + var_rest)
covers |rest − m| ≤ z·√(c²·std² + var_rest) 90 % of the time. The std scale c is the value for which this holds on
the validation voxels (bisection; the coverage grows with c). So the recalibrated 90 % intervals claim to hold the
noise-free full-dose image F̄ — the full dose's resolution and reconstruction, not the true activity — and the
full-dose noise is accounted for by the independent remainder and its estimated variance, not ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from petdiff.recon import gaussian_filter

Z90 = 1.6448536269514722
VARIANCE_WINDOW_FWHM = 4.0  # pixels
MAX_FRACTION = 0.9  # above it the remainder holds too few counts to check anything
OBJECT_LEVEL = 0.05


@dataclass(frozen=True)
class Calibration:
    """The std scale c, the coverage before (c = 1) and after, and the voxels it was measured on."""

    std_scale: float
    coverage_before: float
    coverage_after: float
    voxels: int
    level: float = 0.9

    def as_dict(self) -> dict[str, float]:
        """JSON-ready."""
        return dict(self.__dict__)


def remainder(low: torch.Tensor, full: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(rest, var_rest): the full dose's counts the low dose lacks, in full-dose units, and their noise variance.

    `low` in low-dose counts, `full` in full-dose units (low-dose scale ÷ f), both (N, 1, H, W).
    """
    if not 0 < fraction <= MAX_FRACTION:
        raise ValueError(f"fraction: expected a dose fraction in (0, {MAX_FRACTION}] to recalibrate on, found "
                         f"{fraction}")
    rest = (full - low) / (1 - fraction)
    diff = low / fraction - full
    var = fraction / (1 - fraction) ** 2 * gaussian_filter(diff.square(), VARIANCE_WINDOW_FWHM)
    return rest, var.clamp_min(0)


def object_mask(full: torch.Tensor) -> torch.Tensor:
    """Voxels of the object: the smoothed full dose above 5 % of its maximum."""
    smooth = gaussian_filter(full, 2.0)
    return smooth > OBJECT_LEVEL * smooth.amax()


def coverage(error: torch.Tensor, std: torch.Tensor, var_ref: torch.Tensor, scale: float, z: float = Z90) -> float:
    """Share of voxels with |error| ≤ z·√(scale²·std² + var_ref)."""
    return float((error.abs() <= z * torch.sqrt(scale**2 * std.square() + var_ref)).double().mean())


def std_scale(error: torch.Tensor, std: torch.Tensor, var_ref: torch.Tensor, level: float = 0.9, z: float = Z90,
              bounds: tuple[float, float] = (0.05, 20.0)) -> Calibration:
    """c with coverage(c) = level by bisection on log c (flat voxel vectors: error = rest − mean, std, var_rest)."""
    if error.numel() == 0:
        raise ValueError("validation voxels: expected some object voxels to recalibrate on, found none")
    error, std, var_ref = error.double(), std.double(), var_ref.double()
    lo, hi = bounds
    if coverage(error, std, var_ref, lo, z) >= level:
        c = lo
    elif coverage(error, std, var_ref, hi, z) <= level:
        c = hi
    else:
        for _ in range(60):
            mid = (lo * hi) ** 0.5
            lo, hi = (mid, hi) if coverage(error, std, var_ref, mid, z) < level else (lo, mid)
        c = (lo * hi) ** 0.5
    return Calibration(float(c), coverage(error, std, var_ref, 1.0, z), coverage(error, std, var_ref, c, z),
                       int(error.numel()), level)
