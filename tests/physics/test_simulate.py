"""Poisson simulation and binomial thinning: totals, moments, coupling, reproducibility, validation."""

from __future__ import annotations

import math

import pytest
import torch

from petdiff.physics import Projector, expected_sinogram, poisson_sinogram, thin


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PETDIFF_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def proj() -> Projector:
    return Projector(16)


def disk(n: int = 16, batch: int = 1) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    img = ((x**2 + y**2) < 0.6).float() + 0.5 * ((x - 0.2) ** 2 + y**2 < 0.05).float()
    return img.expand(batch, 1, n, n).clone()


def test_expected_true_counts_equal_dose(proj):
    act = disk(batch=3) * torch.tensor([1.0, 5.0, 0.01])[:, None, None, None]
    exp = expected_sinogram(act, proj, counts=2e5)
    torch.testing.assert_close(
        exp.true.double().sum((1, 2)), torch.full((3,), 2e5, dtype=torch.float64), rtol=1e-5, atol=0
    )
    assert torch.equal(exp.background, torch.zeros_like(exp.true))
    # t is a per-slice scale of Aλ
    torch.testing.assert_close(exp.true, proj.forward(act) * exp.scale.float()[:, None, None], rtol=1e-5, atol=1e-4)


def test_poisson_totals_match_dose(proj):
    counts = 1e5
    y = poisson_sinogram(disk(batch=8), proj, counts=counts, generator=torch.Generator().manual_seed(3))
    assert y.dtype == torch.float32 and y.shape == (8, 32, 16)
    assert torch.equal(y, y.round()) and bool((y >= 0).all())
    # the total of independent Poissons is Poisson(counts): 5 σ per slice
    assert torch.all((y.sum((1, 2)) - counts).abs() < 5 * math.sqrt(counts))
    # and across the 8 slices the standardised mean is N(0, 1)
    z = (y.double().sum((1, 2)) - counts).sum() / math.sqrt(8 * counts)
    assert abs(z.item()) < 5


def test_poisson_per_lor_mean_and_variance(proj):
    act = disk(batch=1).expand(4000, 1, 16, 16)
    lam = expected_sinogram(act[:1], proj, counts=5e3).total[0].double()
    y = poisson_sinogram(act, proj, counts=5e3, generator=torch.Generator().manual_seed(4)).double()
    n = y.shape[0]
    busy = lam > 1
    # sample mean per LOR: standard error √(Λ/n); 5 σ everywhere (512 LORs)
    assert torch.all(((y.mean(0) - lam).abs() / (lam / n).sqrt())[busy] < 5.5)
    # the variance equals the mean (Poisson): pooled over LORs, Var(s²) ≈ (Λ + 2Λ²)/n
    diff = (y.var(0) - lam)[busy]
    se = ((lam + 2 * lam**2) / n)[busy].sum().sqrt()
    assert abs(diff.sum().item()) < 5 * se.item()


def test_background_fraction_and_tensor(proj):
    act = disk(batch=2)
    exp = expected_sinogram(act, proj, counts=1e4, background=0.3)
    torch.testing.assert_close(exp.background.sum((1, 2)), torch.full((2,), 3e3), rtol=1e-5, atol=0)
    assert torch.all(exp.background == exp.background[0, 0, 0])
    s = torch.rand(32, 16)
    exp2 = expected_sinogram(act, proj, counts=1e4, background=s)
    torch.testing.assert_close(exp2.background, s.expand(2, 32, 16))
    torch.testing.assert_close(exp2.total, exp2.true + s)
    y = poisson_sinogram(act, proj, counts=1e4, background=0.3, generator=torch.Generator().manual_seed(0))
    assert abs(y.sum().item() - 2 * 1.3e4) < 5 * math.sqrt(2 * 1.3e4)


def test_same_seed_same_counts(proj):
    act = disk(batch=2)
    a = poisson_sinogram(act, proj, generator=torch.Generator().manual_seed(7))
    b = poisson_sinogram(act, proj, generator=torch.Generator().manual_seed(7))
    c = poisson_sinogram(act, proj, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(thin(a, 0.25, generator=g1), thin(a, 0.25, generator=g2))


def test_thinning_is_below_the_full_dose_and_keeps_integers(proj):
    high = poisson_sinogram(disk(batch=4), proj, counts=1e5, generator=torch.Generator().manual_seed(0))
    low = thin(high, 0.25, generator=torch.Generator().manual_seed(1))
    assert low.shape == high.shape and low.dtype == high.dtype
    assert bool((low <= high).all()) and bool((low >= 0).all()) and torch.equal(low, low.round())
    assert torch.equal(thin(high, 1.0), high)
    assert torch.equal(thin(torch.zeros(3, 4), 0.5), torch.zeros(3, 4))
    assert thin(high.long(), 0.5).dtype == torch.float32


def test_per_slice_fractions():
    high = torch.poisson(torch.full((3, 40, 50), 200.0), generator=torch.Generator().manual_seed(0))
    f = torch.tensor([0.1, 0.5, 1.0])
    low = thin(high, f, generator=torch.Generator().manual_seed(1))
    assert torch.equal(low[2], high[2]) and bool((low <= high).all())
    # per slice Σ low ~ Binomial(Σ high, f): 5 σ
    for b in range(2):
        n, p = high[b].sum().item(), f[b].item()
        assert abs(low[b].sum().item() - n * p) < 5 * math.sqrt(n * p * (1 - p))
    same = thin(high, torch.tensor(0.5), generator=torch.Generator().manual_seed(1))
    assert torch.equal(same, thin(high, 0.5, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match=r"fraction: expected values in \(0, 1\]"):
        thin(high, torch.tensor([0.1, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"fraction: expected a float, a \(B,\) tensor"):
        thin(high, torch.tensor([0.1, 0.2]))


def test_thinned_poisson_is_poisson_with_scaled_mean():
    lam, fraction, n = 50.0, 0.25, 200_000
    gen = torch.Generator().manual_seed(11)
    high = torch.poisson(torch.full((n,), lam), generator=gen)
    low = thin(high, fraction, generator=gen).double()
    mu = fraction * lam
    # mean: standard error √(μ/n); variance of a Poisson sample variance ≈ (μ + 2μ²)/n
    assert abs(low.mean().item() - mu) < 5 * math.sqrt(mu / n)
    assert abs(low.var().item() - mu) < 5 * math.sqrt((mu + 2 * mu**2) / n)
    # coupling: E[low | high] = f·high, Var[low | high] = f(1-f)·high
    resid = low - fraction * high.double()
    assert abs(resid.mean().item()) < 5 * math.sqrt(fraction * (1 - fraction) * lam / n)
    v = fraction * (1 - fraction) * high.double()
    ratio = (resid**2).sum() / v.sum()
    # Var(r² | high) = 2v² + v(1 − 6f(1−f)) for a binomial residual r
    se = (2 * v**2 + v * (1 - 6 * fraction * (1 - fraction))).sum().sqrt() / v.sum()
    assert abs(ratio.item() - 1) < 5 * se.item()


def test_thinning_a_realistic_sinogram_matches_expected_counts(proj):
    act = disk(batch=200)
    lam = expected_sinogram(act, proj, counts=2e4).total.double()
    low = thin(
        poisson_sinogram(act, proj, counts=2e4, generator=torch.Generator().manual_seed(5)),
        0.25,
        generator=torch.Generator().manual_seed(6),
    ).double()
    # Σ(low − fΛ) over all LORs and slices is ~ N(0, Σ fΛ)
    z = (low - 0.25 * lam).sum() / (0.25 * lam).sum().sqrt()
    assert abs(z.item()) < 5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"activity": torch.full((1, 1, 16, 16), float("nan"))}, "activity: expected finite"),
        ({"activity": -torch.ones(1, 1, 16, 16)}, "activity: expected non-negative"),
        ({"activity": torch.ones(1, 16, 16)}, r"activity: expected shape \(B, C, H, W\)"),
        ({"activity": torch.ones(1, 1, 8, 8)}, r"activity: expected images of size \(H, W\) = \(16, 16\)"),
        ({"activity": torch.ones(1, 2, 16, 16)}, "activity: expected 1 channel"),
        ({"counts": 0}, "counts: expected a positive"),
        ({"counts": -5.0}, "counts"),
        ({"counts": float("inf")}, "counts"),
        ({"activity": torch.zeros(2, 1, 16, 16)}, r"activity: .*found zero total in slice\(s\) \[0, 1\]"),
        ({"background": -0.1}, "background: expected a finite fraction"),
        ({"background": torch.full((32, 16), -1.0)}, "background: expected non-negative"),
        ({"background": torch.ones(16, 32)}, "background: expected a tensor broadcastable"),
        ({"background": "high"}, "background"),
        ({"generator": "seed"}, "generator: expected a torch.Generator"),
    ],
)
def test_poisson_rejects_bad_inputs(proj, kwargs, match):
    args = {"activity": torch.ones(1, 1, 16, 16), "projector": proj, **kwargs}
    with pytest.raises(ValueError, match=match):
        poisson_sinogram(**args)


@pytest.mark.parametrize(
    ("sinogram", "fraction", "match"),
    [
        (torch.tensor([1.0, -1.0]), 0.5, "sinogram: expected non-negative"),
        (torch.tensor([1.0, 2.5]), 0.5, "sinogram: expected integer counts"),
        (torch.tensor([1.0, float("nan")]), 0.5, "sinogram: expected finite"),
        ([1.0, 2.0], 0.5, "sinogram: expected a torch.Tensor"),
        (torch.tensor([1.0]), 0.0, r"fraction: expected a number in \(0, 1\]"),
        (torch.tensor([1.0]), 1.5, "fraction"),
        (torch.tensor([1.0]), -0.2, "fraction"),
        (torch.tensor([1.0]), "a quarter", "fraction"),
    ],
)
def test_thin_rejects_bad_inputs(sinogram, fraction, match):
    with pytest.raises(ValueError, match=match):
        thin(sinogram, fraction)
