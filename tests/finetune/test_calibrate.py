"""The remainder's noise variance from a thinned pair, and the std scale that makes the 90 % intervals cover."""

from __future__ import annotations

import pytest
import torch

from petdiff.finetune.calibrate import Z90, coverage, remainder, std_scale


def test_remainder_variance_matches_thinned_poisson():
    g = torch.Generator().manual_seed(0)
    lam, f = 50.0, 0.3
    full = torch.poisson(torch.full((64, 1, 32, 32), lam), generator=g)
    low = torch.binomial(full, torch.full_like(full, f), generator=g)
    rest, var = remainder(low, full, f)
    # rest = counts the low dose lacks / (1 − f): mean λ, variance λ/(1 − f), independent of the low dose
    assert abs(float(rest.mean()) - lam) < 0.5
    assert abs(float(rest.var()) / (lam / (1 - f)) - 1) < 0.05
    assert abs(float(var.mean()) / (lam / (1 - f)) - 1) < 0.05
    assert abs(float(torch.corrcoef(torch.stack([rest.flatten(), low.flatten()]))[0, 1])) < 0.02


def test_std_scale_recovers_the_miscalibration():
    g = torch.Generator().manual_seed(1)
    n, c_true = 200_000, 1.7
    std = 0.5 + torch.rand(n, generator=g)
    var_ref = 0.3 + torch.rand(n, generator=g)
    # the reference = noise-free image + its own noise; the error of the mean is c_true × the claimed std
    error = c_true * std * torch.randn(n, generator=g) + var_ref.sqrt() * torch.randn(n, generator=g)
    result = std_scale(error, std, var_ref)
    assert abs(result.std_scale / c_true - 1) < 0.03
    assert abs(result.coverage_after - 0.9) < 1e-3 and result.coverage_before < 0.85
    assert coverage(error, std, var_ref, result.std_scale, Z90) == pytest.approx(result.coverage_after, abs=1e-4)


def test_recalibration_needs_a_remainder():
    x = torch.ones(1, 1, 8, 8)
    with pytest.raises(ValueError, match="fraction"):
        remainder(x, x, 0.95)
    with pytest.raises(ValueError, match="object voxels"):
        std_scale(torch.zeros(0), torch.zeros(0), torch.zeros(0))
