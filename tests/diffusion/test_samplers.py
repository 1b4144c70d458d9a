"""Schedules, solver identities (exactness, order, call counts) and input validation of the samplers."""

import math

import pytest
import torch

from petdiff.diffusion import (
    EDM_REFERENCE_SAMPLING,
    SAMPLERS,
    StackedRandomGenerator,
    karras_sigmas,
    sample,
    sample_dpmpp_2m,
    sample_edm,
    sample_euler,
)
from petdiff.diffusion.samplers import ODE_SOLVERS

MU, S = 0.7, 0.5  # Gaussian data N(MU, S²) per pixel


def gaussian_denoiser(mu=MU, s=S):
    """Exact EDM denoiser of N(mu, s²) data: D(x; σ) = μ + s²/(s²+σ²)(x − μ)."""

    def denoise(x, sigma):
        sigma = sigma.view(-1, 1, 1, 1)
        return mu + s**2 / (s**2 + sigma**2) * (x - mu)

    return denoise


# --- schedule -------------------------------------------------------------------------------------


def test_karras_sigmas_matches_formula_and_endpoints():
    n, lo, hi, rho = 7, 0.002, 80.0, 7.0
    sig = karras_sigmas(n, lo, hi, rho)
    expected = [(hi ** (1 / rho) + i / (n - 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho for i in range(n)] + [0.0]
    assert sig.shape == (n + 1,)
    torch.testing.assert_close(sig, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)
    assert sig[0] == pytest.approx(hi, rel=1e-12)
    assert sig[-2] == pytest.approx(lo, rel=1e-12)
    assert sig[-1] == 0
    assert bool((sig[1:] < sig[:-1]).all())


def test_karras_sigmas_rho_one_is_linear_and_single_step():
    torch.testing.assert_close(karras_sigmas(5, 1.0, 9.0, rho=1.0)[:-1], torch.linspace(9.0, 1.0, 5).double())
    assert karras_sigmas(1, 0.1, 3.0).tolist() == [pytest.approx(3.0), 0.0]
    assert karras_sigmas(4, dtype=torch.float32).dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_steps": 0}, "num_steps"),
        ({"num_steps": 2.5}, "num_steps"),
        ({"num_steps": 5, "sigma_min": 0.0}, "sigma_min"),
        ({"num_steps": 5, "sigma_min": 2.0, "sigma_max": 1.0}, "sigma_max"),
        ({"num_steps": 5, "rho": -1.0}, "rho"),
    ],
)
def test_karras_sigmas_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        karras_sigmas(**kwargs)


# --- solver identities ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ODE_SOLVERS))
def test_point_mass_data_is_integrated_exactly(name):
    # Data = δ(c): D ≡ c, the ODE solution x(σ) = c + (x_0 − c)·σ/σ_0 is linear in σ, so every solver is exact.
    c = 0.3
    sigmas = karras_sigmas(9, 0.01, 20.0)
    x0 = torch.randn(2, 1, 4, 4, dtype=torch.float64) * 20.0
    seen = []

    def record(info):
        seen.append((info["sigma"], info["x"].clone()))

    out = SAMPLERS[name](lambda x, sigma: torch.full_like(x, c), x0, sigmas, callback=record)
    torch.testing.assert_close(out, torch.full_like(x0, c), rtol=0, atol=1e-12)
    assert len(seen) == 9
    for sigma, x in seen:
        torch.testing.assert_close(x, c + (x0 - c) * sigma / float(sigmas[0]), rtol=1e-12, atol=1e-12)


def _gain(sigma, s=S):
    """a(σ) in dx/dσ = a(σ)·(x − μ) for Gaussian data: a = σ/(s²+σ²)."""
    return sigma / (s**2 + sigma**2)


def test_single_heun_and_euler_steps_match_closed_form():
    # One step σ → σ' on dx/dσ = a(σ)(x − μ): Euler gain 1 + h·a(σ), Heun gain 1 + h/2·(a(σ) + a(σ')(1 + h·a(σ))).
    sig, sig_next = 2.0, 0.7
    h = sig_next - sig
    x = torch.randn(3, 1, 5, 5, dtype=torch.float64) * sig
    d = gaussian_denoiser()
    g_euler = 1 + h * _gain(sig)
    g_heun = 1 + h / 2 * (_gain(sig) + _gain(sig_next) * (1 + h * _gain(sig)))
    torch.testing.assert_close(sample_euler(d, x, [sig, sig_next]), MU + g_euler * (x - MU), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(sample_edm(d, x, [sig, sig_next]), MU + g_heun * (x - MU), rtol=1e-13, atol=1e-13)


def test_dpmpp_2m_two_steps_match_closed_form():
    # x_{i+1} = (σ_{i+1}/σ_i)x_i + (1 − σ_{i+1}/σ_i)·D̂_i, D̂_1 = (1 + 1/2r)D_1 − 1/2r·D_0,
    # r = h_0/h_1, h_i = ln(σ_i/σ_{i+1}).
    s0, s1, s2 = 3.0, 1.0, 0.2
    x0 = torch.randn(2, 1, 3, 3, dtype=torch.float64) * s0
    d = gaussian_denoiser()
    b = lambda sig: S**2 / (S**2 + sig**2)  # noqa: E731 - D(x; σ) − μ = b(σ)(x − μ)
    d0 = MU + b(s0) * (x0 - MU)
    x1 = (s1 / s0) * x0 + (1 - s1 / s0) * d0
    d1 = MU + b(s1) * (x1 - MU)
    r = math.log(s0 / s1) / math.log(s1 / s2)
    x2 = (s2 / s1) * x1 + (1 - s2 / s1) * ((1 + 1 / (2 * r)) * d1 - 1 / (2 * r) * d0)
    torch.testing.assert_close(sample_dpmpp_2m(d, x0, [s0, s1, s2]), x2, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize(("name", "order"), [("edm", 2), ("dpmpp_2m", 2), ("euler", 1)])
def test_observed_order_of_convergence(name, order):
    # Exact flow of Gaussian data from σ_max: x(0) = μ + (x_0 − μ)·s/√(s²+σ_max²); error(N)/error(2N) → 2^order.
    sigma_max = 80.0
    x0 = torch.full((1, 1, 1, 1), sigma_max, dtype=torch.float64)
    exact = MU + (sigma_max - MU) * S / math.sqrt(S**2 + sigma_max**2)
    errors = [abs(float(sample(gaussian_denoiser(), x0 / sigma_max, name, n)) - exact) for n in (64, 128)]
    observed = math.log2(errors[0] / errors[1])
    assert observed == pytest.approx(order, abs=0.25)


@pytest.mark.parametrize(
    ("name", "evals"), [("edm", lambda n: 2 * n - 1), ("euler", lambda n: n), ("dpmpp_2m", lambda n: n)]
)
@pytest.mark.parametrize("n", [1, 2, 7])
def test_number_of_denoiser_evaluations_and_sigma_argument(name, evals, n):
    x = torch.randn(3, 2, 4, 4)
    calls = []

    def denoise(x_in, sigma):
        calls.append(sigma)
        return torch.zeros_like(x_in)

    SAMPLERS[name](denoise, x * 80, karras_sigmas(n))
    assert len(calls) == evals(n)
    for sigma in calls:  # a (B,) tensor on x's device and dtype, one noise level per call
        assert sigma.shape == (3,) and sigma.dtype == x.dtype and sigma.device == x.device
        assert bool((sigma == sigma[0]).all()) and float(sigma[0]) > 0


def test_churn_keeps_heun_evaluation_count_and_raises_sigma():
    rnd = StackedRandomGenerator("cpu", [0, 1])
    calls, hats = [], []
    sigmas = karras_sigmas(10)

    def denoise(x, sigma):
        calls.append(float(sigma[0]))
        return torch.zeros_like(x)

    sample_edm(denoise, rnd.randn((2, 1, 4, 4)) * 80, sigmas, S_churn=40, S_min=0.05, S_max=50, noise=rnd,
               callback=lambda info: hats.append((info["sigma"], info["sigma_hat"])))
    assert len(calls) == 19
    gamma = min(40 / 10, math.sqrt(2) - 1)
    for sigma, sigma_hat in hats:
        expected = sigma * (1 + gamma) if 0.05 <= sigma <= 50 else sigma
        assert sigma_hat == pytest.approx(expected, rel=1e-12)
    assert any(h != s for s, h in hats) and any(h == s for s, h in hats)


def test_ode_sampler_is_deterministic_and_keeps_dtype():
    z = torch.randn(2, 1, 8, 8)
    a = sample(gaussian_denoiser(), z, "edm", 12)
    b = sample(gaussian_denoiser(), z, "edm", 12)
    assert a.dtype == torch.float32 and torch.equal(a, b)


def test_reference_preset_runs_through_sample():
    assert dict(EDM_REFERENCE_SAMPLING) == {"num_steps": 60, "S_churn": 40.0, "S_min": 0.05, "S_max": 50.0,
                                           "S_noise": 1.003}

    def run(**opts):
        rnd = StackedRandomGenerator("cpu", [5])
        return sample(gaussian_denoiser(), rnd.randn((1, 1, 4, 4)), "edm", noise=rnd, **opts)

    out = run(**EDM_REFERENCE_SAMPLING)
    assert torch.equal(out, run(**EDM_REFERENCE_SAMPLING))  # the seed fixes the churn noise
    # The preset's churn is applied: the same latent through the 60-step ODE (no churn) ends elsewhere...
    ode = run(num_steps=60)
    assert not torch.allclose(out, ode, atol=1e-3)
    # ...and only through the preset's values: spelling them out gives the same sample bit for bit.
    assert torch.equal(out, run(num_steps=60, S_churn=40.0, S_min=0.05, S_max=50.0, S_noise=1.003))
    with pytest.raises(TypeError):
        EDM_REFERENCE_SAMPLING["num_steps"] = 10  # read-only preset


def test_torch_generator_is_accepted_as_noise():
    z = torch.randn(1, 1, 4, 4)
    a = sample(gaussian_denoiser(), z, "euler", 8, S_churn=5, noise=torch.Generator().manual_seed(1))
    b = sample(gaussian_denoiser(), z, "euler", 8, S_churn=5, noise=torch.Generator().manual_seed(1))
    c = sample(gaussian_denoiser(), z, "euler", 8, S_churn=5, noise=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_progress_bar_only_when_enabled(capsys):
    z = torch.randn(1, 1, 4, 4)
    sample(gaussian_denoiser(), z, "euler", 5)
    assert "5/5" not in capsys.readouterr().err
    sample(gaussian_denoiser(), z, "euler", 5, disable=False)
    assert "5/5" in capsys.readouterr().err


# --- validation -----------------------------------------------------------------------------------


def test_samplers_reject_bad_input_naming_the_argument():
    d = gaussian_denoiser()
    x = torch.randn(1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"sigmas.*decreasing"):
        sample_edm(d, x, [1.0, 2.0, 0.0])
    with pytest.raises(ValueError, match=r"sigmas.*at least 2"):
        sample_edm(d, x, [1.0])
    with pytest.raises(ValueError, match=r"sigmas.*finite"):
        sample_euler(d, x, [float("nan"), 0.0])
    with pytest.raises(ValueError, match=r"x: expected shape \(B, C, H, W\)"):
        sample_edm(d, torch.randn(4, 4), [1.0, 0.0])
    with pytest.raises(ValueError, match="x: expected finite"):
        sample_dpmpp_2m(d, torch.full((1, 1, 2, 2), float("inf")), [1.0, 0.0])
    with pytest.raises(ValueError, match="denoise: expected an output of shape"):
        sample_euler(lambda x, sigma: x[:, :, :2], x, [1.0, 0.0])
    with pytest.raises(ValueError, match=r"noise: .*S_churn > 0"):
        sample_edm(d, x, [1.0, 0.0], S_churn=1.0)
    with pytest.raises(ValueError, match="noise: expected"):
        sample_edm(d, x, [1.0, 0.0], S_churn=1.0, noise=42)
    with pytest.raises(ValueError, match="S_min, S_max"):
        sample_euler(d, x, [1.0, 0.0], S_min=2.0, S_max=1.0)
    with pytest.raises(ValueError, match="S_churn"):
        sample_euler(d, x, [1.0, 0.0], S_churn=-1.0)


def test_sample_rejects_unknown_sampler_and_options():
    z = torch.randn(1, 1, 4, 4)
    with pytest.raises(ValueError, match="sampler: expected one of"):
        sample(gaussian_denoiser(), z, "ddim")
    with pytest.raises(ValueError, match=r"opts: .*dpmpp_2m.*\['S_churn'\]"):
        sample(gaussian_denoiser(), z, "dpmpp_2m", 5, S_churn=10)
    with pytest.raises(ValueError, match="num_steps"):
        sample(gaussian_denoiser(), z, "edm", 0)


class _OnesNoise:
    """A fake noise source returning ε = 1, to read the churn increment off exactly."""

    def randn_like(self, x):
        return torch.ones_like(x)


@pytest.mark.parametrize("name", ["edm", "euler"])
def test_churn_increment_is_sqrt_sigma_hat_sq_minus_sigma_sq_times_s_noise(name):
    # x̂ = x + √(σ̂² − σ²)·S_noise·ε with σ̂ = (1 + γ)σ, γ = min(S_churn/N, √2 − 1)
    x0 = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    seen = []
    SAMPLERS[name](lambda x, sigma: torch.zeros_like(x), x0, [2.0, 1.0, 0.0], S_churn=0.2, S_noise=1.003,
                   noise=_OnesNoise(), callback=lambda info: seen.append(info))
    gamma = 0.1
    sigma_hat = 2.0 * (1 + gamma)
    assert seen[0]["sigma_hat"] == pytest.approx(sigma_hat, rel=1e-15)
    torch.testing.assert_close(seen[0]["x"], torch.full_like(x0, math.sqrt(sigma_hat**2 - 4.0) * 1.003), rtol=1e-15,
                               atol=0)
