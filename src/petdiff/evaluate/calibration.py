"""Calibration of posterior uncertainty: coverage of central intervals and the spread of z-scores.

A calibrated posterior puts the reference image x_ref inside its central c-interval with probability c.
With K samples the intervals are estimated, which changes what a calibrated posterior achieves:

* empirical quantiles (linear interpolation between order statistics) at (1 ∓ c)/2 sit at ranks
  1 + (K − 1)(1 ∓ c)/2, and an exchangeable (K+1)-th draw lands between ranks i and j with probability
  (j − i)/(K + 1): the expected coverage is c·(K − 1)/(K + 1) (0.70 for c = 0.9, K = 8), exactly when the
  ranks are integers (K = 21, 41, ...), otherwise approximately (a Gaussian at K = 8 gives 0.72);
* Gaussian intervals mean ± k·std: for a Gaussian posterior, (x_ref − mean)/std ~ √(1 + 1/K)·t_{K−1}, so
  k = √(1 + 1/K)·t_{K−1, (1+c)/2} gives exactly c (k = z_{(1+c)/2} when K is unknown / infinite), and the
  z-scores have variance (1 + 1/K)(K − 1)/(K − 3) (K > 3) instead of 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from petdiff.utils.validation import check_finite

LEVELS: tuple[float, ...] = (0.5, 0.9)
_SIMPSON_INTERVALS = 2000


def _check_level(level: float) -> float:
    """Require a central-interval level in (0, 1)."""
    if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise ValueError(f"level: expected a coverage level in (0, 1), found {level!r}")
    return float(level)


def _t_cdf_angle(theta: float, dof: float) -> float:
    """P(T ≤ √ν tan θ) = ∫_{−π/2}^{θ} cos^{ν−1} φ dφ / ∫_{−π/2}^{π/2} cos^{ν−1} φ dφ (Simpson's rule)."""
    norm = math.sqrt(math.pi) * math.exp(math.lgamma(dof / 2) - math.lgamma((dof + 1) / 2))
    a, n = -math.pi / 2, _SIMPSON_INTERVALS
    h = (theta - a) / n
    total = 0.0
    for i in range(n + 1):
        w = 1 if i in (0, n) else (4 if i % 2 else 2)
        total += w * max(math.cos(a + i * h), 0.0) ** (dof - 1)
    return total * h / 3 / norm


def _t_quantile_expansion(p: float, dof: float) -> float:
    """Cornish-Fisher expansion t = z + g₁/ν + g₂/ν² + g₃/ν³ + g₄/ν⁴ (Abramowitz & Stegun 26.7.5), z = Φ⁻¹(p)."""
    z = normal_quantile(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / dof + g2 / dof**2 + g3 / dof**3 + g4 / dof**4


def student_t_quantile(p: float, dof: float) -> float:
    """t with P(T_ν ≤ t) = p, by bisection in θ = atan(t/√ν) on the CDF ∫ cos^{ν−1}φ dφ (smooth, finite range).

    For ν > 1000 the integrand is too peaked for the fixed Simpson grid; the Cornish-Fisher expansion is
    accurate to < 1e-9 there.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p: expected a probability in (0, 1), found {p!r}")
    if not (math.isfinite(dof) and dof >= 1):
        raise ValueError(f"dof: expected degrees of freedom ≥ 1, found {dof!r}")
    if dof > 1000:
        return _t_quantile_expansion(p, dof)
    lo, hi = -math.pi / 2, math.pi / 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_cdf_angle(mid, dof) < p else (lo, mid)
    return math.sqrt(dof) * math.tan((lo + hi) / 2)


def normal_quantile(p: float) -> float:
    """z with Φ(z) = p."""
    return float(torch.special.ndtri(torch.tensor(p, dtype=torch.float64)))


def gaussian_half_width(level: float, n_samples: int | None = None) -> float:
    """k of the interval mean ± k·std: z_{(1+c)/2}, or √(1 + 1/K)·t_{K−1,(1+c)/2} for a K-sample mean/std."""
    p = (1 + _check_level(level)) / 2
    if n_samples is None:
        return normal_quantile(p)
    if n_samples < 2:
        raise ValueError(f"n_samples: expected ≥ 2 samples for a standard deviation, found {n_samples!r}")
    return math.sqrt(1 + 1 / n_samples) * student_t_quantile(p, n_samples - 1)


def expected_sample_coverage(level: float, n_samples: int) -> float:
    """c·(K − 1)/(K + 1): the coverage of interpolated empirical c-intervals from K draws for a calibrated posterior."""
    return _check_level(level) * (n_samples - 1) / (n_samples + 1)


def sample_intervals(samples: torch.Tensor, level: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Empirical quantiles at (1 − c)/2 and (1 + c)/2 over the sample axis 0 of (K, B, C, H, W)."""
    level = _check_level(level)
    if samples.ndim != 5 or samples.shape[0] < 2:
        raise ValueError(f"samples: expected (K, B, C, H, W) with K ≥ 2, found shape {tuple(samples.shape)}")
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=samples.dtype, device=samples.device)
    lower, upper = torch.quantile(samples, q, dim=0)
    return lower, upper


def gaussian_intervals(
    mean: torch.Tensor, std: torch.Tensor, level: float, n_samples: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """mean ∓ k·std with k = gaussian_half_width(level, n_samples)."""
    k = gaussian_half_width(level, n_samples)
    return mean - k * std, mean + k * std


def coverage(lower: torch.Tensor, upper: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fraction of masked pixels with lower ≤ x_ref ≤ upper, per slice (B,) float64 (NaN for an empty mask)."""
    if not (lower.shape == upper.shape == reference.shape == mask.shape):
        raise ValueError(
            f"reference: expected lower, upper, reference and mask of one shape, found {tuple(lower.shape)}, "
            f"{tuple(upper.shape)}, {tuple(reference.shape)}, {tuple(mask.shape)}"
        )
    check_finite("reference", reference)
    inside = ((lower <= reference) & (reference <= upper) & mask).flatten(1).sum(dim=1).double()
    n = mask.flatten(1).sum(dim=1).double()
    return torch.where(n > 0, inside / n.clamp_min(1), torch.full_like(n, float("nan")))


def z_scores(reference: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """z = (x_ref − mean)/std at the masked pixels with std > 0, flattened (float64)."""
    keep = mask & (std > 0)
    return ((reference.double() - mean.double()) / std.double())[keep]


def expected_z_std(n_samples: int | None) -> float:
    """Std of z for a calibrated Gaussian posterior: 1, or √((1 + 1/K)(K − 1)/(K − 3)) with a K-sample mean/std."""
    if n_samples is None:
        return 1.0
    if n_samples <= 3:
        return float("inf")
    return math.sqrt((1 + 1 / n_samples) * (n_samples - 1) / (n_samples - 3))


def calibration(
    reference: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    mask: torch.Tensor,
    samples: torch.Tensor | None = None,
    n_samples: int | None = None,
    levels: Sequence[float] = LEVELS,
) -> dict[str, float]:
    """Coverage of x_ref by Gaussian (and, given samples, empirical) central intervals, and the z-score spread.

    Keys: gaussian_<c> (observed), gaussian_<c>_expected (= c), samples_<c> / samples_<c>_expected
    (c·(K−1)/(K+1)), z_mean, z_std, z_std_expected, pixels. Averages are over all masked pixels of all slices.
    """
    if samples is not None:
        n_samples = samples.shape[0]
    n_pixels = mask.sum().clamp_min(1).double()
    out: dict[str, float] = {"pixels": int(mask.sum())}
    for c in levels:
        lo, hi = gaussian_intervals(mean, std, c, n_samples)
        per = coverage(lo, hi, reference, mask) * mask.flatten(1).sum(dim=1)
        out[f"gaussian_{c:g}"] = float(per.nansum() / n_pixels)
        out[f"gaussian_{c:g}_expected"] = c
        if samples is not None:
            lo, hi = sample_intervals(samples, c)
            per = coverage(lo, hi, reference, mask) * mask.flatten(1).sum(dim=1)
            out[f"samples_{c:g}"] = float(per.nansum() / n_pixels)
            out[f"samples_{c:g}_expected"] = expected_sample_coverage(c, n_samples)
    z = z_scores(reference, mean, std, mask)
    out["z_mean"] = float(z.mean()) if z.numel() else float("nan")
    out["z_std"] = float(z.std()) if z.numel() > 1 else float("nan")
    out["z_std_expected"] = expected_z_std(n_samples)
    return out
