"""EDM samplers with the k-diffusion calling convention `sample_x(denoise, x, sigmas, ...)`.

`denoise(x, sigma) -> D(x; σ)` takes x of shape (B, C, H, W) and sigma of shape (B,) (every element
equal to the current noise level) and returns the denoised estimate of x's shape. As in k-diffusion,
the `x` given to a sampler is the initial latent *already scaled* by σ_0 = sigmas[0], i.e. x ~ N(0, σ_0² I);
`sample()` takes unit latents and does the scaling. The probability-flow ODE is dx/dσ = (x − D(x; σ))/σ.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

import torch
from tqdm import trange

from petdiff.diffusion.schedules import karras_sigmas
from petdiff.utils.validation import check_finite, check_image_batch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[dict[str, Any]], None]


class NoiseSource(Protocol):
    """Anything that draws standard normal noise shaped like x (e.g. StackedRandomGenerator)."""

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        """Standard normal tensor shaped like x."""
        ...


# Reference sampling of the PET report (EDM Algorithm 2 with stochastic churn).
EDM_REFERENCE_SAMPLING: Mapping[str, float | int] = MappingProxyType(
    {"num_steps": 60, "S_churn": 40.0, "S_min": 0.05, "S_max": 50.0, "S_noise": 1.003}
)


def _check_sigmas(sigmas: torch.Tensor | Sequence[float]) -> list[float]:
    """Require a decreasing schedule σ_0 > σ_1 > … > σ_N ≥ 0 with at least one step; return Python floats."""
    # lists become float64 directly: a float32 detour would round e.g. 0.7 before the step arithmetic
    s = sigmas.detach() if isinstance(sigmas, torch.Tensor) else torch.as_tensor(sigmas, dtype=torch.float64)
    if s.ndim != 1 or s.numel() < 2:
        raise ValueError(f"sigmas: expected a 1-D schedule with at least 2 values, found shape {tuple(s.shape)}")
    check_finite("sigmas", s)
    values = [float(v) for v in s.double().cpu().tolist()]  # one device sync, then exact float64 step arithmetic
    if values[-1] < 0 or any(b >= a for a, b in itertools.pairwise(values)):
        raise ValueError(f"sigmas: expected strictly decreasing non-negative values, found {values}")
    return values


def _check_latent(x: torch.Tensor) -> torch.Tensor:
    """Require a finite floating (B, C, H, W) latent."""
    check_image_batch("x", x, channels=None)
    return check_finite("x", x)


def _as_randn_like(noise: NoiseSource | torch.Generator | None) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Turn the `noise` argument into a randn_like function (None stays None)."""
    if noise is None:
        return None
    if isinstance(noise, torch.Generator):
        return lambda x: torch.randn(x.shape, generator=noise, device=x.device, dtype=x.dtype)
    if callable(getattr(noise, "randn_like", None)):
        return noise.randn_like
    raise ValueError(
        f"noise: expected a StackedRandomGenerator, a torch.Generator or None, found {type(noise).__name__}"
    )


def _check_churn(S_churn: float, S_min: float, S_max: float, S_noise: float, noise: object) -> None:
    """Validate the stochastic-churn options; churn needs an explicit noise source."""
    if not S_churn >= 0:
        raise ValueError(f"S_churn: expected a number >= 0, found {S_churn!r}")
    if not S_noise >= 0:
        raise ValueError(f"S_noise: expected a number >= 0, found {S_noise!r}")
    if not S_min <= S_max:
        raise ValueError(f"S_min, S_max: expected S_min <= S_max, found S_min={S_min!r}, S_max={S_max!r}")
    if S_churn > 0 and noise is None:
        raise ValueError("noise: expected a StackedRandomGenerator or torch.Generator when S_churn > 0, found None")


def _denoise(denoise: Denoiser, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Call D(x; σ) with σ broadcast to a (B,) tensor on x's device, and check the output shape."""
    out = denoise(x, x.new_full((x.shape[0],), sigma))
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        found = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"denoise: expected an output of shape {tuple(x.shape)}, found {found}")
    return out


def _churn(
    x: torch.Tensor,
    sigma: float,
    num_steps: int,
    S_churn: float,
    S_min: float,
    S_max: float,
    S_noise: float,
    randn_like: Callable[[torch.Tensor], torch.Tensor] | None,
) -> tuple[torch.Tensor, float]:
    """Raise the noise level σ → σ̂ = (1+γ)σ, γ = min(S_churn/N, √2−1) on [S_min, S_max]: x̂ = x + √(σ̂²−σ²)·S_noise·ε."""
    gamma = min(S_churn / num_steps, math.sqrt(2) - 1) if S_min <= sigma <= S_max else 0.0
    if gamma <= 0:
        return x, sigma
    sigma_hat = sigma * (1 + gamma)
    return x + math.sqrt(sigma_hat**2 - sigma**2) * S_noise * randn_like(x), sigma_hat


@torch.no_grad()
def sample_edm(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor | Sequence[float],
    *,
    S_churn: float = 0.0,
    S_min: float = 0.0,
    S_max: float = float("inf"),
    S_noise: float = 1.0,
    noise: NoiseSource | torch.Generator | None = None,
    callback: Callback | None = None,
    disable: bool = True,
) -> torch.Tensor:
    """EDM Algorithm 2: Heun step x' = x̂ + (σ_{i+1}−σ̂)·(d + d')/2 with d = (x̂ − D(x̂; σ̂))/σ̂, Euler when σ_{i+1} = 0.

    `x` is the latent already scaled by sigmas[0]. With S_churn = 0 this integrates the probability-flow
    ODE deterministically (2N − 1 denoiser evaluations for N steps ending at σ_N = 0); S_churn > 0 adds
    churn noise drawn from `noise` (use a StackedRandomGenerator for batch-independent samples).
    """
    s = _check_sigmas(sigmas)
    x = _check_latent(x)
    _check_churn(S_churn, S_min, S_max, S_noise, noise)
    randn_like = _as_randn_like(noise)
    n = len(s) - 1
    for i in trange(n, disable=disable):
        sigma_next = s[i + 1]
        x_hat, sigma_hat = _churn(x, s[i], n, S_churn, S_min, S_max, S_noise, randn_like)
        denoised = _denoise(denoise, x_hat, sigma_hat)
        d = (x_hat - denoised) / sigma_hat
        if callback is not None:
            callback({"x": x_hat, "i": i, "sigma": s[i], "sigma_hat": sigma_hat, "denoised": denoised})
        x = x_hat + (sigma_next - sigma_hat) * d
        if sigma_next > 0:  # second-order correction; at σ = 0 the slope (x − D)/σ is undefined
            d_prime = (x - _denoise(denoise, x, sigma_next)) / sigma_next
            x = x_hat + (sigma_next - sigma_hat) * (0.5 * d + 0.5 * d_prime)
    return x


@torch.no_grad()
def sample_euler(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor | Sequence[float],
    *,
    S_churn: float = 0.0,
    S_min: float = 0.0,
    S_max: float = float("inf"),
    S_noise: float = 1.0,
    noise: NoiseSource | torch.Generator | None = None,
    callback: Callback | None = None,
    disable: bool = True,
) -> torch.Tensor:
    """EDM Euler: x_{i+1} = x̂ + (σ_{i+1} − σ̂)·(x̂ − D(x̂; σ̂))/σ̂ (N evaluations; same churn options as sample_edm)."""
    s = _check_sigmas(sigmas)
    x = _check_latent(x)
    _check_churn(S_churn, S_min, S_max, S_noise, noise)
    randn_like = _as_randn_like(noise)
    n = len(s) - 1
    for i in trange(n, disable=disable):
        x_hat, sigma_hat = _churn(x, s[i], n, S_churn, S_min, S_max, S_noise, randn_like)
        denoised = _denoise(denoise, x_hat, sigma_hat)
        if callback is not None:
            callback({"x": x_hat, "i": i, "sigma": s[i], "sigma_hat": sigma_hat, "denoised": denoised})
        x = x_hat + (s[i + 1] - sigma_hat) * (x_hat - denoised) / sigma_hat
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor | Sequence[float],
    *,
    callback: Callback | None = None,
    disable: bool = True,
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022): x_{i+1} = (σ_{i+1}/σ_i)·x_i + (1 − σ_{i+1}/σ_i)·D̂_i (N evaluations).

    D̂_i = (1 + 1/(2r))·D_i − 1/(2r)·D_{i−1} with r = h_{i−1}/h_i and h_i = ln(σ_i/σ_{i+1}); the first step
    and the final step to σ = 0 use D̂_i = D_i (first order). Deterministic.
    """
    s = _check_sigmas(sigmas)
    x = _check_latent(x)
    n = len(s) - 1
    old_denoised, h_last = None, None
    for i in trange(n, disable=disable):
        sigma, sigma_next = s[i], s[i + 1]
        denoised = _denoise(denoise, x, sigma)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
        if sigma_next == 0:
            x = denoised  # the exponential integrator's limit σ_{i+1}/σ_i → 0
            continue
        h = math.log(sigma / sigma_next)
        d_hat = denoised
        if old_denoised is not None:
            r = h_last / h
            d_hat = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        x = (sigma_next / sigma) * x + (1 - sigma_next / sigma) * d_hat
        old_denoised, h_last = denoised, h
    return x


@torch.no_grad()
def sample_consistency(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor | Sequence[float],
    *,
    noise: NoiseSource | torch.Generator | None = None,
    callback: Callback | None = None,
    disable: bool = True,
) -> torch.Tensor:
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1): x₀ = f(x, σ_0), then x₀ = f(x₀ + σ_i·ε, σ_i).

    `denoise` is a distilled consistency function f (`diffusion.consistency`); `x` is the latent scaled by σ_0;
    one pass per non-zero level of `sigmas` (num_steps passes with karras_sigmas); `noise` re-injects the noise.
    """
    s = [v for v in _check_sigmas(sigmas) if v > 0]
    x = _check_latent(x)
    randn_like = _as_randn_like(noise)
    if len(s) > 1 and randn_like is None:
        raise ValueError("noise: multistep consistency sampling re-injects noise; pass a noise source")
    x0 = None
    for i in trange(len(s), disable=disable):
        if x0 is not None:
            x = x0 + s[i] * randn_like(x0)
        x0 = _denoise(denoise, x, s[i])
        if callback is not None:
            callback({"x": x, "i": i, "sigma": s[i], "sigma_hat": s[i], "denoised": x0})
    return x0


ODE_SOLVERS: Mapping[str, Callable[..., torch.Tensor]] = MappingProxyType(
    {"edm": sample_edm, "euler": sample_euler, "dpmpp_2m": sample_dpmpp_2m}
)  # solvers of the probability-flow ODE (any denoiser)
SAMPLERS: Mapping[str, Callable[..., torch.Tensor]] = MappingProxyType(
    {**ODE_SOLVERS, "consistency": sample_consistency}  # + samplers of distilled networks
)


def sampler_options(sampler: str) -> frozenset[str]:
    """Keyword options SAMPLERS[sampler] accepts besides (denoise, x, sigmas)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler: expected one of {sorted(SAMPLERS)}, found {sampler!r}")
    return frozenset(inspect.signature(SAMPLERS[sampler]).parameters) - {"denoise", "x", "sigmas"}


def sample(
    denoise: Denoiser,
    latents: torch.Tensor,
    sampler: str = "edm",
    num_steps: int = 60,
    *,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    **opts: Any,
) -> torch.Tensor:
    """Sample from unit latents z ~ N(0, I): x_0 = σ_0·z, then SAMPLERS[sampler] on karras_sigmas(num_steps, ...).

    `opts` go to the sampler (e.g. S_churn, noise, callback, disable); `**EDM_REFERENCE_SAMPLING` gives the
    reference 60-step stochastic schedule.
    """
    accepted = sampler_options(sampler)
    unknown = sorted(set(opts) - accepted)
    if unknown:
        raise ValueError(f"opts: sampler {sampler!r} accepts {sorted(accepted)}, found unknown option(s) {unknown}")
    latents = _check_latent(latents)
    sigmas = karras_sigmas(num_steps, sigma_min, sigma_max, rho)  # on the CPU: samplers read it as Python floats
    return SAMPLERS[sampler](denoise, latents * float(sigmas[0]), sigmas, **opts)
