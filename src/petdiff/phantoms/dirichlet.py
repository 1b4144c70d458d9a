"""Gamma and Dirichlet sampling with an explicit torch.Generator (Marsaglia & Tsang 2000).

torch.distributions.Gamma/Dirichlet (and torch._standard_gamma) accept no generator, so their draws
cannot be made reproducible per call; this sampler only uses torch.randn/torch.rand with a generator.
"""

from __future__ import annotations

import torch

from petdiff.phantoms._random import resolve_generator

_MAX_ROUNDS = 100  # acceptance >= 0.95 per round, so 100 rounds fail with probability < 1e-100 per draw


def log_standard_gamma(shape: torch.Tensor, generator: torch.Generator | int | None = None) -> torch.Tensor:
    """log X, X ~ Gamma(shape, 1) elementwise (Marsaglia–Tsang; shape a < 1: X = X'·U^{1/a}, X' ~ Gamma(a + 1)).

    Works in log space so that tiny shapes (X underflows to 0) still give usable values; shape = 0 gives −inf.
    """
    if not isinstance(shape, torch.Tensor) or not shape.is_floating_point():
        raise ValueError(f"shape: expected a floating-point torch.Tensor, found {type(shape).__name__}")
    if not bool(torch.isfinite(shape).all()) or bool((shape < 0).any()):
        raise ValueError(
            "shape: expected finite, non-negative Gamma shape parameters, found NaN/inf or negative values"
        )
    g = resolve_generator(generator, shape.device)
    a = shape.to(torch.float64)
    small = a < 1
    a_boost = torch.where(small, a + 1, a)
    d = a_boost - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    log_x = torch.zeros_like(a)
    pending = a > 0
    for _ in range(_MAX_ROUNDS):
        if not bool(pending.any()):
            break
        # Full-shape draws every round keep the random stream independent of which elements are pending.
        z = torch.randn(a.shape, generator=g, device=a.device, dtype=a.dtype)
        u = 1.0 - torch.rand(a.shape, generator=g, device=a.device, dtype=a.dtype)  # in (0, 1]
        v = (1.0 + c * z) ** 3
        v_safe = v.clamp_min(1e-300)
        accept = (v > 0) & (torch.log(u) < 0.5 * z * z + d - d * v + d * torch.log(v_safe))
        take = pending & accept
        log_x = torch.where(take, torch.log(d * v_safe), log_x)
        pending = pending & ~accept
    else:
        if bool(pending.any()):
            raise RuntimeError("log_standard_gamma: rejection sampler did not converge (should never happen)")
    u_boost = 1.0 - torch.rand(a.shape, generator=g, device=a.device, dtype=a.dtype)
    log_x = torch.where(small, log_x + torch.log(u_boost) / a.clamp_min(1e-300), log_x)
    log_x = torch.where(a > 0, log_x, torch.full_like(log_x, float("-inf")))
    return log_x.to(shape.dtype)


def sample_gamma(shape: torch.Tensor, generator: torch.Generator | int | None = None) -> torch.Tensor:
    """X ~ Gamma(shape, 1) elementwise: E[X] = Var[X] = shape."""
    return torch.exp(log_standard_gamma(shape, generator))


def sample_dirichlet(concentration: torch.Tensor, generator: torch.Generator | int | None = None) -> torch.Tensor:
    """D ~ Dirichlet(β) along the last axis: D_o = G_o / Σ G, G_o ~ Gamma(β_o); β_o = 0 gives D_o = 0.

    E[D_o] = β_o/β₀ and Var[D_o] = c_o(1−c_o)/(β₀+1) with c = β/β₀, β₀ = Σ β. Rows with all β = 0 give 0.
    """
    if not isinstance(concentration, torch.Tensor) or concentration.ndim < 1:
        raise ValueError(f"concentration: expected a tensor (..., K), found {type(concentration).__name__}")
    log_g = log_standard_gamma(concentration.to(torch.float64), generator)
    empty = torch.isneginf(log_g).all(dim=-1, keepdim=True)
    # Normalising in log space (softmax) is exact even when every G_o underflows.
    d = torch.softmax(torch.where(empty, torch.zeros_like(log_g), log_g), dim=-1)
    return torch.where(empty, torch.zeros_like(d), d).to(concentration.dtype)
