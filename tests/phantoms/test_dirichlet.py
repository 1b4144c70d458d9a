"""Gamma / Dirichlet sampling (Marsaglia–Tsang with an explicit generator) against closed-form moments."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from petdiff.phantoms import log_standard_gamma, sample_dirichlet, sample_gamma

N = 40_000


@pytest.mark.parametrize("shape", [0.05, 0.3, 1.0, 2.5, 40.0])
def test_gamma_matches_distribution(shape):
    x = sample_gamma(torch.full((N,), shape, dtype=torch.float64), torch.Generator().manual_seed(1))
    # Mean and variance of Gamma(a, 1) are both a; the sample mean has standard error √(a/N).
    assert abs(float(x.mean()) - shape) < 5 * math.sqrt(shape / N)
    # Kolmogorov–Smirnov against scipy's Gamma CDF (fixed seed: deterministic, fails only if the law is wrong).
    assert stats.kstest(x.numpy(), stats.gamma(shape).cdf).pvalue > 1e-3


def test_gamma_small_shape_stays_finite_in_log_space():
    log_x = log_standard_gamma(torch.full((1000,), 1e-3, dtype=torch.float64), 0)
    assert bool(torch.isfinite(log_x).all())
    # log X ≈ log(U)/a for tiny a: E[log X] = ψ(a) ≈ −1/a.
    assert abs(float(log_x.mean()) * 1e-3 + 1) < 0.15


def test_gamma_zero_shape_gives_zero_and_reproducible():
    shape = torch.tensor([0.0, 1.0, 3.0])
    a = sample_gamma(shape, torch.Generator().manual_seed(5))
    b = sample_gamma(shape, torch.Generator().manual_seed(5))
    assert a[0] == 0 and torch.equal(a, b)
    assert not torch.equal(a, sample_gamma(shape, torch.Generator().manual_seed(6)))


@pytest.mark.parametrize("bad", [torch.tensor([-1.0]), torch.tensor([float("nan")]), torch.tensor([1])])
def test_gamma_rejects_bad_shapes(bad):
    with pytest.raises(ValueError, match="shape"):
        sample_gamma(bad, 0)


@pytest.mark.parametrize("alpha", [2.0, 20.0, 200.0])
def test_dirichlet_mean_and_variance(alpha):
    c = torch.tensor([0.1, 0.3, 0.6], dtype=torch.float64)
    d = sample_dirichlet((alpha * c).expand(N, 3), torch.Generator().manual_seed(2))
    assert torch.allclose(d.sum(-1), torch.ones(N, dtype=torch.float64))
    var = c * (1 - c) / (alpha + 1)  # Var D_o = c_o(1 − c_o)/(α + 1)
    # Mean: standard error √(var/N); variance: SE of a sample variance ≈ var·√((2 + excess kurtosis)/N).
    assert torch.all((d.mean(0) - c).abs() < 5 * torch.sqrt(var / N))
    kurt = torch.from_numpy(stats.kurtosis(d.numpy(), axis=0))
    se_var = var * torch.sqrt((2 + kurt.clamp_min(0)) / N)
    assert torch.all((d.var(0) - var).abs() < 5 * se_var)


def test_dirichlet_variance_falls_with_alpha():
    c = torch.tensor([0.2, 0.8], dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    variances = [float(sample_dirichlet((a * c).expand(N, 2), g)[:, 0].var()) for a in (1.0, 10.0, 100.0)]
    assert variances[0] > variances[1] > variances[2]


def test_dirichlet_zero_concentration_components_and_rows():
    beta = torch.tensor([[0.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    d = sample_dirichlet(beta, 0)
    assert d[0, 0] == 0 and abs(float(d[0].sum()) - 1) < 1e-6
    assert torch.equal(d[1], torch.zeros(3))
