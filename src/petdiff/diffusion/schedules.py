"""Noise-level schedules for the samplers (kept apart from the solvers, as in k-diffusion)."""

from __future__ import annotations

import torch

from petdiff.utils.validation import check_positive


def karras_sigmas(
    num_steps: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """EDM schedule σ_i = (σ_max^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, i < N, then σ_N = 0 (N+1 values)."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps: expected an integer >= 1, found {num_steps!r}")
    sigma_min = check_positive("sigma_min", sigma_min)
    sigma_max = check_positive("sigma_max", sigma_max)
    rho = check_positive("rho", rho)
    if sigma_max < sigma_min:
        raise ValueError(f"sigma_max: expected a value >= sigma_min = {sigma_min}, found {sigma_max}")
    # float64 so that σ_min survives the ρ-th power round trip; the samplers read the values as Python floats.
    i = torch.arange(num_steps, dtype=torch.float64, device=device)
    ramp = i / (num_steps - 1) if num_steps > 1 else i  # one step: just σ_max then 0
    max_inv_rho, min_inv_rho = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)]).to(dtype)
