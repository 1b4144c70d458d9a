"""Posterior calibration: Student-t quantiles, interval coverage and z-scores on synthetic Gaussian posteriors.

Each pixel is an independent trial, so an observed coverage over N pixels is Binomial(N, p)/N: the tolerances
are 5 binomial standard deviations √(p(1 − p)/N).
"""

from __future__ import annotations

import math

import pytest
import torch

from petdiff.evaluate.calibration import (
    calibration,
    coverage,
    expected_sample_coverage,
    expected_z_std,
    gaussian_half_width,
    gaussian_intervals,
    normal_quantile,
    sample_intervals,
    student_t_quantile,
    z_scores,
)

SHAPE = (4, 1, 50, 50)  # 10,000 pixels
N = math.prod(SHAPE)


def tol(p: float, n: int = N) -> float:
    return 5 * math.sqrt(p * (1 - p) / n)


def test_student_t_quantiles_against_closed_forms_and_tables():
    for p in (0.6, 0.75, 0.95, 0.995):
        assert student_t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)  # Cauchy
        assert student_t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
        assert student_t_quantile(1 - p, 5) == pytest.approx(-student_t_quantile(p, 5), rel=1e-9)
    assert student_t_quantile(0.95, 7) == pytest.approx(1.894579, abs=1e-6)  # table values
    assert student_t_quantile(0.975, 30) == pytest.approx(2.042272, abs=1e-6)
    # both sides of the switch to the Cornish-Fisher expansion at ν = 1000 (t_{1000, 0.975} = 1.962339)
    assert student_t_quantile(0.975, 1000) == pytest.approx(1.962339, abs=2e-6)
    assert student_t_quantile(0.975, 1000.5) == pytest.approx(1.962339, abs=2e-6)
    assert student_t_quantile(0.975, 1e6) == pytest.approx(normal_quantile(0.975), abs=1e-5)
    assert normal_quantile(0.95) == pytest.approx(1.6448536, abs=1e-7)
    with pytest.raises(ValueError, match="dof"):
        student_t_quantile(0.9, 0.5)


def test_gaussian_half_width():
    assert gaussian_half_width(0.9) == pytest.approx(1.6448536, abs=1e-7)
    assert gaussian_half_width(0.5, 8) == pytest.approx(math.sqrt(9 / 8) * student_t_quantile(0.75, 7))
    with pytest.raises(ValueError, match="level"):
        gaussian_half_width(1.0)


def gaussian_posterior(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mean = 10 + torch.rand(SHAPE, generator=g)
    std = 0.5 + torch.rand(SHAPE, generator=g)
    return g, mean, std


@pytest.mark.parametrize("level", [0.5, 0.9])
def test_known_gaussian_posterior_covers_at_the_nominal_rate(level):
    g, mean, std = gaussian_posterior()
    reference = mean + std * torch.randn(SHAPE, generator=g)  # drawn from the posterior itself
    mask = torch.ones(SHAPE, dtype=torch.bool)
    lo, hi = gaussian_intervals(mean, std, level)
    observed = float(coverage(lo, hi, reference, mask).mean())
    assert observed == pytest.approx(level, abs=tol(level))


@pytest.mark.parametrize("level", [0.5, 0.9])
def test_k_sample_posterior_coverage_matches_the_finite_k_expectation(level):
    # K = 21: the interpolated quantiles sit on integer ranks, so the expectation c(K−1)/(K+1) is exact
    k = 21
    g, mean, std = gaussian_posterior(1)
    samples = mean + std * torch.randn((k, *SHAPE), generator=g)
    reference = mean + std * torch.randn(SHAPE, generator=g)
    mask = torch.ones(SHAPE, dtype=torch.bool)
    lo, hi = sample_intervals(samples, level)
    expected = expected_sample_coverage(level, k)
    assert float(coverage(lo, hi, reference, mask).mean()) == pytest.approx(expected, abs=tol(expected))
    # the t interval from the K-sample mean and std is exact for Gaussian posteriors at any K
    lo, hi = gaussian_intervals(samples.mean(0), samples.std(0), level, n_samples=k)
    assert float(coverage(lo, hi, reference, mask).mean()) == pytest.approx(level, abs=tol(level))


def test_over_confident_posterior_covers_less():
    # std reported at half its true value: P(|Z| ≤ z_{0.95}/2) = 2Φ(0.822) − 1 ≈ 0.589 instead of 0.9
    g, mean, std = gaussian_posterior(2)
    reference = mean + std * torch.randn(SHAPE, generator=g)
    mask = torch.ones(SHAPE, dtype=torch.bool)
    out = calibration(reference, mean, std / 2, mask)
    p = 2 * 0.5 * (1 + math.erf(gaussian_half_width(0.9) / 2 / math.sqrt(2))) - 1
    assert out["gaussian_0.9"] == pytest.approx(p, abs=tol(p))
    assert out["gaussian_0.9"] < 0.9 - tol(0.9)
    assert out["z_std"] == pytest.approx(2.0, rel=0.05)  # z = 2·N(0, 1)


def test_calibration_of_a_k_sample_posterior_and_z_spread():
    k = 8
    g, mean, std = gaussian_posterior(3)
    samples = mean + std * torch.randn((k, *SHAPE), generator=g)
    reference = mean + std * torch.randn(SHAPE, generator=g)
    mask = torch.ones(SHAPE, dtype=torch.bool)
    mask[..., :5, :] = False
    out = calibration(reference, samples.mean(0), samples.std(0), mask, samples=samples)
    n = int(mask.sum())
    assert out["pixels"] == n
    for c in (0.5, 0.9):
        assert out[f"gaussian_{c:g}"] == pytest.approx(c, abs=tol(c, n))
        assert out[f"samples_{c:g}_expected"] == pytest.approx(c * (k - 1) / (k + 1))
        # fractional ranks at K = 8: the finite-K expectation is approximate (0.72 vs 0.70 for a Gaussian)
        assert out[f"samples_{c:g}"] == pytest.approx(out[f"samples_{c:g}_expected"], abs=0.03 + tol(c, n))
    # z = √(1 + 1/K)·t_{K−1}: std √((1 + 1/K)(K−1)/(K−3)); the sample std has rel. sd ≈ √((κ−1)/(4n)), κ = 5
    assert expected_z_std(k) == pytest.approx(math.sqrt(9 / 8 * 7 / 5))
    assert out["z_std"] == pytest.approx(expected_z_std(k), rel=5 * math.sqrt(4 / (4 * n)))
    assert out["z_mean"] == pytest.approx(0.0, abs=5 * expected_z_std(k) / math.sqrt(n))


def test_z_scores_skip_zero_std_and_masked_pixels():
    ref = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    mean = torch.zeros_like(ref)
    std = torch.tensor([1.0, 0.0, 2.0, 1.0]).view(1, 1, 2, 2)
    mask = torch.tensor([True, True, True, False]).view(1, 1, 2, 2)
    torch.testing.assert_close(z_scores(ref, mean, std, mask), torch.tensor([1.0, 1.5], dtype=torch.float64))


def test_coverage_rejects_mismatched_shapes():
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="reference: expected lower, upper, reference and mask of one shape"):
        coverage(x, x, x[..., :2], x.bool())
    with pytest.raises(ValueError, match=r"samples: expected \(K, B, C, H, W\)"):
        sample_intervals(x, 0.5)
