"""Geometric building blocks of the procedural phantoms: signed depths and shapes on a coordinate grid.

All functions broadcast: coordinates are (N, H, W) tensors, shape parameters (N, 1, 1) tensors or floats.
"""

from __future__ import annotations

import torch

_EPS = 1e-6


def smooth_bump(z: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """sin(π·(z−lo)/(hi−lo)) on [lo, hi], 0 outside: how strongly a structure shows at axial level z."""
    t = ((z - lo) / (hi - lo)).clamp(0.0, 1.0)
    return torch.sin(torch.pi * t)


def ellipse_radius(theta: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Radius of the ellipse (x/a)² + (y/b)² = 1 in direction θ: ab / √((b cos θ)² + (a sin θ)²)."""
    return a * b / torch.sqrt((b * torch.cos(theta)) ** 2 + (a * torch.sin(theta)) ** 2 + _EPS)


def ellipse_depth(
    u: torch.Tensor,
    v: torch.Tensor,
    cu: torch.Tensor | float,
    cv: torch.Tensor | float,
    a: torch.Tensor,
    b: torch.Tensor,
) -> torch.Tensor:
    """Radial depth inside an axis-aligned ellipse, |p−c|·(1/ρ − 1) with ρ = √((Δu/a)² + (Δv/b)²); > 0 inside."""
    du, dv = u - cu, v - cv
    rho = torch.sqrt((du / a) ** 2 + (dv / b) ** 2 + _EPS)
    return torch.sqrt(du * du + dv * dv + _EPS) * (1.0 / rho - 1.0)


def inside_ellipse(
    u: torch.Tensor,
    v: torch.Tensor,
    cu: torch.Tensor | float,
    cv: torch.Tensor | float,
    a: torch.Tensor | float,
    b: torch.Tensor | float,
    angle: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """Mask of the ellipse centred at (cu, cv), semi-axes (a, b), rotated by `angle` (radians, counter-clockwise)."""
    angle = torch.as_tensor(angle, dtype=u.dtype, device=u.device)
    c, s = torch.cos(angle), torch.sin(angle)
    du, dv = u - cu, v - cv
    p, q = c * du + s * dv, -s * du + c * dv
    return (p / (a + _EPS)) ** 2 + (q / (b + _EPS)) ** 2 < 1.0


def capsule_mask(
    u: torch.Tensor,
    v: torch.Tensor,
    p0: tuple[torch.Tensor, torch.Tensor],
    p1: tuple[torch.Tensor, torch.Tensor],
    r0: torch.Tensor,
    r1: torch.Tensor,
) -> torch.Tensor:
    """Mask of a tapered capsule: distance to segment p0→p1 < r0 + t·(r1 − r0), t = projection parameter in [0, 1]."""
    eu, ev = p1[0] - p0[0], p1[1] - p0[1]
    du, dv = u - p0[0], v - p0[1]
    t = ((du * eu + dv * ev) / (eu * eu + ev * ev + _EPS)).clamp(0.0, 1.0)
    dist = torch.sqrt((du - t * eu) ** 2 + (dv - t * ev) ** 2 + _EPS)
    return dist < r0 + t * (r1 - r0)


def gyral_phase(psi: torch.Tensor, n_gyri: torch.Tensor, warp: torch.Tensor) -> torch.Tensor:
    """Φ = n·ψ + Σ_m b_m sin(m·ψ + φ_m): sulci lie where Φ/2π is an integer (or a half-integer: branches).

    ψ runs along the brain surface (an angle); the warp makes gyri of unequal width.
    n_gyri: (N, 1, 1); warp: (N, M, 2) amplitudes b_m and phases φ_m, m = 1…M.
    """
    phase = n_gyri * psi
    for m in range(warp.shape[1]):
        phase = phase + warp[:, m, 0, None, None] * torch.sin((m + 1) * psi + warp[:, m, 1, None, None])
    return phase


def hash01(index: torch.Tensor, seed: torch.Tensor | float) -> torch.Tensor:
    """A reproducible pseudo-random number in [0, 1) for each (small) integer index: per-sulcus properties."""
    x = torch.sin(index * 12.9898 + seed * 78.233) * 43758.5453
    return x - torch.floor(x)


def pial_distance(
    depth: torch.Tensor, along: torch.Tensor, sulcus_depth: torch.Tensor, sulcus_half_width: torch.Tensor | float
) -> torch.Tensor:
    """Distance to the pial surface: to the outer surface or to the walls of the nearest sulcus above its fundus,
    to the fundus (√(wall² + (d − D)²)) below it; `along` is the distance along the surface to the sulcus centre."""
    wall = (along - sulcus_half_width).clamp_min(0.0)
    below = torch.sqrt(wall * wall + (depth - sulcus_depth).clamp_min(0.0) ** 2)
    return torch.minimum(depth, torch.where(depth < sulcus_depth, wall, below))


def folded_cortex(
    psi: torch.Tensor,
    depth: torch.Tensor,
    radius: torch.Tensor,
    key_offset: torch.Tensor,
    wrap: torch.Tensor,
    p: dict[str, torch.Tensor],
    prefix: str = "",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(grey, sulcal CSF) masks of a folded cortex: a grey ribbon of thickness t_g along the pial surface.

    Primary sulci sit at integer gyral cycles Φ/2π, branch sulci (shallower, some missing) at half-integers;
    each sulcus gets its own depth and tilt from hash01 of its index (kept periodic when `wrap`).
    p holds (N, 1, 1) tensors `{prefix}n_gyri`, `sulcus_min/max`, `sulcus_half`, `grey`, `seed`, `tilt` and
    the (N, M, 2) `{prefix}warp`.
    """
    n_gyri = p[prefix + "n_gyri"]
    cycles = gyral_phase(psi, n_gyri, p[prefix + "warp"]) / (2 * torch.pi)
    period = 2 * torch.pi * radius / n_gyri
    seed, half, grey_t = p[prefix + "seed"], p[prefix + "sulcus_half"], p[prefix + "grey"]
    lo, hi = p[prefix + "sulcus_min"], p[prefix + "sulcus_max"]
    pial = depth
    sulcus = torch.zeros_like(depth, dtype=torch.bool)
    for branch in (0.0, 0.5):
        index = torch.round(cycles - branch) + branch
        key = torch.where(wrap, torch.remainder(index, n_gyri), index) + key_offset
        tilt = (hash01(key, seed + 1.0) - 0.5) * p[prefix + "tilt"] * depth / period
        along = torch.abs(cycles + tilt - index) * period
        s_depth = lo + (hi - lo) * hash01(key, seed)
        if branch:
            s_depth = torch.where(hash01(key, seed + 2.0) < 0.45, s_depth * 0.5, torch.zeros_like(s_depth))
        pial = torch.minimum(pial, pial_distance(depth, along, s_depth, half))
        sulcus |= (depth < s_depth) & (along < half)
    return pial < grey_t, sulcus
