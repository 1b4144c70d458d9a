"""Posterior ensembles on a Gaussian toy problem with a closed-form posterior.

Prior x ~ N(m0, s0²) per pixel, measurement y = x + N(0, τ²). The posterior is N(μ_post(y), s_post²) with
s_post² = 1/(1/s0² + 1/τ²) and μ_post = s_post²·(m0/s0² + y/τ²), so the exact conditional denoiser is
D(x; σ | y) = μ_post(y) + s_post²/(s_post²+σ²)·(x − μ_post(y)).
"""

import math

import pytest
import torch

from petdiff.diffusion import (
    EDM_REFERENCE_SAMPLING,
    RunningMoments,
    StackedRandomGenerator,
    posterior_ensemble,
    sample,
)

M0, S0, TAU = 0.2, 0.6, 0.4
S_POST = 1 / math.sqrt(1 / S0**2 + 1 / TAU**2)


def mu_post(y):
    """Posterior mean μ_post = s_post²·(m0/s0² + y/τ²)."""
    return S_POST**2 * (M0 / S0**2 + y / TAU**2)


def make_denoise(y):
    """Exact conditional denoiser for the condition batch y (row j of x belongs to row j of y)."""

    def denoise(x, sigma):
        sigma = sigma.view(-1, 1, 1, 1)
        m = mu_post(y)
        return m + S_POST**2 / (S_POST**2 + sigma**2) * (x - m)

    return denoise


def conditions(batch=2, size=64, dtype=torch.float32):
    g = torch.Generator().manual_seed(123)
    x = M0 + S0 * torch.randn(batch, 1, size, size, generator=g, dtype=dtype)
    return x + TAU * torch.randn(batch, 1, size, size, generator=g, dtype=dtype)


def test_ensemble_matches_closed_form_posterior():
    y = conditions(size=128)
    k = 8
    ens = posterior_ensemble(make_denoise, y, list(range(k)), num_steps=60, batch_size=16)
    assert ens.mean.shape == y.shape and ens.std.shape == y.shape and ens.samples is None
    p = y[0].numel()  # pixels per slice are independent; slices share seeds, so test each slice alone
    c = S_POST / math.sqrt(S_POST**2 + 80.0**2)  # σ_max prior mismatch: E[mean] = μ_post·(1 − c)
    for b in range(y.shape[0]):
        err = ens.mean[b] - mu_post(y[b])
        # E[err] = −c·μ_post (≤ c·max|μ_post|); each err ~ N(·, s_post²/K)
        assert abs(float(err.mean())) < 5 * S_POST / math.sqrt(k * p) + c * float(mu_post(y[b]).abs().max())
        # mean squared error ≈ s_post²/K, its SE is s_post²/K·√(2/p)
        # (+1.5 %: 60-step Heun inflates the variance by 0.94 % at s_post = 1/3, see test_samplers_gaussian)
        assert float((err**2).mean()) == pytest.approx(S_POST**2 / k, rel=5 * math.sqrt(2 / p) + 0.015)
        # unbiased variance over K: E = s_post², SE = s_post²·√(2/(K−1))/√p
        assert float((ens.std[b] ** 2).mean()) == pytest.approx(S_POST**2, rel=5 * math.sqrt(2 / (k - 1) / p) + 0.015)


def test_welford_equals_stored_samples_and_samples_are_per_seed():
    y = conditions(batch=3, size=16, dtype=torch.float64)
    seeds = [4, 9, 1, 30, 2]
    opts = {**EDM_REFERENCE_SAMPLING, "num_steps": 10}
    kept = posterior_ensemble(make_denoise, y, seeds, keep_samples=True, batch_size=4, **opts)
    running = posterior_ensemble(make_denoise, y, seeds, batch_size=4, **opts)
    assert kept.samples.shape == (5, 3, 1, 16, 16) and running.samples is None
    torch.testing.assert_close(running.mean, kept.mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(running.std, kept.std, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(kept.std, kept.samples.std(dim=0), rtol=0, atol=0)
    # sample (k, b) is what sample() gives for condition b with seed k alone
    for k, b in [(0, 0), (3, 2), (4, 1)]:
        rnd = StackedRandomGenerator("cpu", [seeds[k]])
        alone = sample(make_denoise(y[b : b + 1]), rnd.randn((1, 1, 16, 16), dtype=y.dtype), noise=rnd, **opts)
        torch.testing.assert_close(kept.samples[k, b : b + 1], alone, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sampler", ["edm", "dpmpp_2m"])
def test_result_does_not_depend_on_batch_size(sampler):
    y = conditions(batch=3, size=8, dtype=torch.float64)
    opts = {"num_steps": 6, "sampler": sampler}
    if sampler == "edm":
        opts.update(S_churn=20.0, S_min=0.05, S_max=50.0)
    ref = posterior_ensemble(make_denoise, y, [5, 6, 7], batch_size=1, keep_samples=True, **opts)
    for batch_size in (2, 4, 100):
        other = posterior_ensemble(make_denoise, y, [5, 6, 7], batch_size=batch_size, keep_samples=True, **opts)
        torch.testing.assert_close(other.samples, ref.samples, rtol=1e-12, atol=1e-12)


def test_denoiser_batches_respect_batch_size_and_condition_rows():
    y = torch.arange(3, dtype=torch.float32).view(3, 1, 1, 1).expand(3, 2, 4, 4).contiguous()
    seen = []

    def factory(cond):
        seen.append(cond[:, 0, 0, 0].tolist())

        def denoise(x, sigma):
            assert x.shape[0] <= 4 and x.shape[1] == 1  # image channels, not condition channels
            return cond[:, :1]

        return denoise

    ens = posterior_ensemble(factory, y, [0, 1], batch_size=4, num_steps=3)
    assert seen == [[0, 0, 1, 1], [2, 2]]  # (input b, seed k) pairs in b-major order, at most 4 at a time
    torch.testing.assert_close(ens.mean, y[:, :1])  # D ≡ condition: every sample equals it exactly
    torch.testing.assert_close(ens.std, torch.zeros_like(y[:, :1]))


def test_single_seed_has_no_std():
    ens = posterior_ensemble(make_denoise, conditions(batch=1, size=4), [3], num_steps=4)
    assert ens.std is None and ens.seeds == (3,)


def test_running_moments_is_welford():
    data = torch.randn(7, 2, 1, 3, 3, dtype=torch.float64) * 3 + 5
    rm = RunningMoments((2, 1, 3, 3), torch.device("cpu"))
    for k in range(7):
        for b in range(2):
            rm.update(b, data[k, b])
    torch.testing.assert_close(rm.mean, data.mean(0), rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(rm.variance(), data.var(0, correction=1), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seeds": [1, 2, 1]}, "seeds: expected distinct seeds"),
        ({"seeds": []}, "seeds: expected at least one seed"),
        ({"batch_size": 0}, "batch_size: expected an integer >= 1"),
        ({"image_channels": 0}, "image_channels"),
        ({"noise": object()}, "noise: expected no noise option"),
        ({"sampler": "ddim"}, "sampler: expected one of"),
        ({"make_denoise": 3}, "make_denoise: expected a callable"),
        ({"condition": torch.zeros(4, 4)}, r"condition: expected shape \(B, C, H, W\)"),
        ({"condition": torch.full((1, 1, 2, 2), float("nan"))}, "condition: expected finite"),
    ],
)
def test_posterior_ensemble_rejects_bad_input(kwargs, message):
    args = {"make_denoise": make_denoise, "condition": conditions(batch=1, size=4), "seeds": [0, 1]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        posterior_ensemble(args.pop("make_denoise"), args.pop("condition"), args.pop("seeds"), num_steps=3, **args)
