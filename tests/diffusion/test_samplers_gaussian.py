"""Every sampler on Gaussian data N(μ, s²), whose exact denoiser is D(x; σ) = μ + s²/(s²+σ²)(x − μ).

For this denoiser each step is affine in u = x − μ, so the first two moments of the output follow a
scalar recursion derived by hand below (churn: v += (σ̂²−σ²)·S_noise²; solver step: u ← g·u). The
generated samples must match those moments within 5 standard errors for n pixels (SE of the mean
σ/√n, of the std σ/√(2n)), and the moments themselves must be close to (μ, s): the gap is the
method's own bias (σ_max prior mismatch μ·s/√(s²+σ_max²), discretisation, churn), stated per case.
"""

import math

import pytest
import torch

from petdiff.diffusion import EDM_REFERENCE_SAMPLING, StackedRandomGenerator, karras_sigmas, sample

MU, S = 0.7, 0.5
SHAPE = (8, 1, 128, 128)  # n = 131072 independent pixels
N_PIX = math.prod(SHAPE)


def denoise(x, sigma):
    """Exact denoiser of N(MU, S²) data."""
    sigma = sigma.view(-1, 1, 1, 1)
    return MU + S**2 / (S**2 + sigma**2) * (x - MU)


def a(sigma):
    """dx/dσ = a(σ)·(x − μ) for Gaussian data, a(σ) = σ/(s²+σ²)."""
    return sigma / (S**2 + sigma**2)


def b(sigma):
    """D(x; σ) − μ = b(σ)·(x − μ), b(σ) = s²/(s²+σ²)."""
    return S**2 / (S**2 + sigma**2)


def heun_or_euler_gain(name, s_hat, s_next):
    """u ← g·u for one step σ̂ → σ': Euler g = 1 + h·a(σ̂); Heun g = 1 + h/2·(a(σ̂) + a(σ')(1 + h·a(σ̂))), h = σ' − σ̂."""
    h = s_next - s_hat
    if name == "euler" or s_next == 0:
        return 1 + h * a(s_hat)
    return 1 + h / 2 * (a(s_hat) + a(s_next) * (1 + h * a(s_hat)))


def dpmpp_2m_gain(sig):
    """u_N = G·u_0 for DPM++(2M): u' = ρ·u_i + (1 − ρ)·[(1 + 1/2r)·b(σ_i)u_i − 1/2r·b(σ_{i−1})u_{i−1}], ρ = σ'/σ_i."""
    gains = [1.0]  # u_i = gains[i]·u_0
    for i in range(len(sig) - 1):
        rho = sig[i + 1] / sig[i]
        d_hat = b(sig[i]) * gains[i]
        if i > 0 and sig[i + 1] > 0:
            r = math.log(sig[i - 1] / sig[i]) / math.log(sig[i] / sig[i + 1])
            d_hat = (1 + 1 / (2 * r)) * b(sig[i]) * gains[i] - 1 / (2 * r) * b(sig[i - 1]) * gains[i - 1]
        gains.append(rho * gains[i] + (1 - rho) * d_hat)
    return gains[-1]


def predicted_moments(name, num_steps, S_churn=0.0, S_min=0.0, S_max=math.inf, S_noise=1.0):
    """Mean and std of the sampler's output when x_0 ~ N(0, σ_0²), by the scalar moment recursion of u = x − μ."""
    sig = karras_sigmas(num_steps).tolist()
    m, v = -MU, sig[0] ** 2
    if name == "dpmpp_2m":
        g = dpmpp_2m_gain(sig)
        return MU + g * m, abs(g) * math.sqrt(v)
    for i in range(num_steps):
        gamma = min(S_churn / num_steps, math.sqrt(2) - 1) if S_min <= sig[i] <= S_max else 0.0
        s_hat = sig[i] * (1 + gamma)
        v += (s_hat**2 - sig[i] ** 2) * S_noise**2  # churn: fresh noise, independent of u
        g = heun_or_euler_gain(name, s_hat, sig[i + 1])
        m, v = g * m, g * g * v
    return MU + m, math.sqrt(v)


CASES = [
    # (sampler, options, bound on |mean bias|, bound on |std/s − 1|) of the method itself
    ("edm", {"num_steps": 60}, 0.005, 0.005),
    ("edm", dict(EDM_REFERENCE_SAMPLING), 0.005, 0.03),  # churn capped at γ = √2−1 leaves ~2.5 % excess spread
    ("edm", {"num_steps": 30, "S_churn": 5.0, "S_min": 0.05, "S_max": 50.0}, 0.005, 0.04),
    ("euler", {"num_steps": 256}, 0.005, 0.015),
    ("euler", {"num_steps": 60, "S_churn": 20.0, "S_min": 0.05, "S_max": 50.0}, 0.005, 0.12),  # Euler+churn: −11 %
    ("dpmpp_2m", {"num_steps": 60}, 0.005, 0.005),
    ("dpmpp_2m", {"num_steps": 25}, 0.005, 0.04),
]


def _draw(name, opts, seed_offset=0):
    rnd = StackedRandomGenerator("cpu", list(range(seed_offset, seed_offset + SHAPE[0])))
    opts = dict(opts)
    if opts.get("S_churn", 0) > 0:
        opts["noise"] = rnd
    return sample(denoise, rnd.randn(SHAPE), name, **opts)


@pytest.mark.parametrize(("name", "opts", "mean_bias", "std_bias"), CASES)
def test_samples_match_moment_recursion_and_target(name, opts, mean_bias, std_bias):
    out = _draw(name, opts)
    pred_mean, pred_std = predicted_moments(name, **opts)
    # implementation vs the hand-derived recursion: purely statistical tolerance
    assert abs(float(out.mean()) - pred_mean) < 5 * pred_std / math.sqrt(N_PIX)
    assert abs(float(out.std()) - pred_std) < 5 * pred_std / math.sqrt(2 * N_PIX)
    # method vs the data distribution N(μ, s²): the recursion's bias is small
    assert abs(pred_mean - MU) < mean_bias
    assert abs(pred_std / S - 1) < std_bias


@pytest.mark.parametrize("name", ["edm", "euler", "dpmpp_2m"])
def test_ode_output_is_the_closed_form_gain_times_the_latent(name):
    # Deterministic: every pixel is μ + G·(σ_0 z − μ) with G from the recursion (no statistics needed).
    n = 20
    rnd = StackedRandomGenerator("cpu", [11, 12])
    z = rnd.randn((2, 1, 16, 16), dtype=torch.float64)
    out = sample(denoise, z, name, n)
    pred_mean, pred_std = predicted_moments(name, n)
    sigma_max = float(karras_sigmas(n)[0])
    gain = pred_std / sigma_max
    assert pred_mean == pytest.approx(MU - gain * MU, rel=1e-12)
    torch.testing.assert_close(out, MU + gain * (sigma_max * z - MU), rtol=1e-10, atol=1e-12)


def test_prior_mismatch_of_the_exact_ode_is_mu_s_over_sigma_max():
    # With many steps the deterministic output mean tends to μ(1 − s/√(s²+σ_max²)), the σ_max prior mismatch.
    pred_mean, pred_std = predicted_moments("edm", 1000)
    c = S / math.sqrt(S**2 + 80.0**2)
    assert pred_mean == pytest.approx(MU * (1 - c), abs=1e-6)
    assert pred_std == pytest.approx(80.0 * c, rel=2e-5)


def test_stochastic_samples_differ_between_seeds_but_not_between_runs():
    opts = dict(EDM_REFERENCE_SAMPLING)
    opts["num_steps"] = 10
    a1, a2, b1 = _draw("edm", opts), _draw("edm", opts), _draw("edm", opts, seed_offset=100)
    assert torch.equal(a1, a2)
    # independent seeds: the correlation of two sample sets is ~N(0, 1/n)
    corr = torch.corrcoef(torch.stack([a1.flatten(), b1.flatten()]))[0, 1]
    assert abs(float(corr)) < 5 / math.sqrt(N_PIX)
