"""3D solids in millimetres for slab phantoms: radial depths of ellipsoids, superquadrics and capped cylinders,
soft (partial-volume) occupancy, piecewise-linear profiles along z and smooth random 3D texture fields.

Coordinates broadcast: in-plane (u, v) are (m, 1, G, G), axial z is (m, S, 1, 1), shape parameters (m, 1, 1, 1)
or (m, S, 1, 1) (a centre may move with z); results are (m, S, G, G). Depths are in mm, > 0 inside.
"""

from __future__ import annotations

import math

import torch

_EPS = 1e-6


def rotate(u: torch.Tensor, v: torch.Tensor, angle: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """(u, v) expressed in a frame rotated by `angle` (radians, counter-clockwise)."""
    angle = torch.as_tensor(angle, dtype=u.dtype, device=u.device)
    c, s = torch.cos(angle), torch.sin(angle)
    return c * u + s * v, -s * u + c * v


def ellipsoid_depth(
    u: torch.Tensor,
    v: torch.Tensor,
    z: torch.Tensor,
    centre: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    semi: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    angle: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """Radial depth |p−c|·(1/ρ − 1) inside the ellipsoid ρ² = (p/a)² + (q/b)² + (dz/c)² = 1 (in-plane rotation)."""
    p, q = rotate(u - centre[0], v - centre[1], angle)
    p2, q2, z2 = p * p + _EPS, q * q + _EPS, (z - centre[2]) ** 2 + _EPS  # the same ε on each axis: exact at the centre
    rho2 = p2 / semi[0] ** 2 + q2 / semi[1] ** 2 + z2 / semi[2] ** 2
    r = torch.sqrt(p2 + q2 + z2)
    return r * (torch.rsqrt(rho2) - 1.0)


def superellipse_depth(
    u: torch.Tensor, v: torch.Tensor, a: torch.Tensor, b: torch.Tensor, power: torch.Tensor | float
) -> torch.Tensor:
    """In-plane radial depth inside |u/a|^p + |v/b|^p = 1 (p = 2 an ellipse, larger p boxier)."""
    ua, va = u.abs() + _EPS, v.abs() + _EPS
    rho = ((ua / a) ** power + (va / b) ** power) ** (1.0 / power)
    return torch.sqrt(ua * ua + va * va) * (1.0 / rho - 1.0)


def cylinder_depth(
    u: torch.Tensor,
    v: torch.Tensor,
    z: torch.Tensor,
    centre: tuple[torch.Tensor, torch.Tensor],
    semi: tuple[torch.Tensor, torch.Tensor],
    z_range: tuple[torch.Tensor, torch.Tensor],
    angle: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """Depth inside an elliptic cylinder along z, capped at z_range: min(in-plane radial depth, distance to a cap)."""
    p, q = rotate(u - centre[0], v - centre[1], angle)
    p2, q2 = p * p + _EPS, q * q + _EPS
    in_plane = torch.sqrt(p2 + q2) * (torch.rsqrt(p2 / semi[0] ** 2 + q2 / semi[1] ** 2) - 1.0)
    cap = torch.minimum(z - z_range[0], z_range[1] - z)
    return torch.minimum(in_plane, cap)


def occupancy(depth: torch.Tensor, width: torch.Tensor | float) -> torch.Tensor:
    """Soft inside-fraction σ(depth / width): a pixel-wide ramp across the surface (partial volume)."""
    return torch.sigmoid(depth / width)


def profile(z: torch.Tensor, knots: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of `values` (K,) given at increasing `knots` (K,), constant beyond the ends."""
    zc = z.clamp(float(knots[0]), float(knots[-1]))
    j = torch.searchsorted(knots, zc.contiguous(), right=True).clamp(1, len(knots) - 1)
    z0, z1 = knots[j - 1], knots[j]
    t = (zc - z0) / (z1 - z0)
    return values[j - 1] + t * (values[j] - values[j - 1])


def smooth_field(
    u: torch.Tensor,
    v: torch.Tensor,
    z: torch.Tensor,
    waves: torch.Tensor,
) -> torch.Tensor:
    """Unit-variance smooth 3D random field Σ_m √(2/M)·cos(k_m·(u, v, z) + φ_m), (m, S, G, G).

    waves: (m, M, 4) wave vectors k (rad/mm) and phases φ, from `draw_waves`.
    """
    n_waves = waves.shape[1]
    field = torch.zeros(torch.broadcast_shapes(u.shape, z.shape), dtype=u.dtype, device=u.device)
    for j in range(n_waves):
        k = waves[:, j, :, None, None, None]
        field += torch.cos(k[:, 0] * u + k[:, 1] * v + (k[:, 2] * z + k[:, 3]))
    return field * math.sqrt(2.0 / n_waves)


def draw_waves(
    n: int, n_waves: int, wavelength_mm: tuple[float, float], g: torch.Generator, device: torch.device
) -> torch.Tensor:
    """(n, M, 4) random wave vectors (isotropic directions, log-uniform wavelengths) and phases for smooth_field."""
    direction = torch.randn((n, n_waves, 3), generator=g, device=device)
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    lo, hi = math.log(wavelength_mm[0]), math.log(wavelength_mm[1])
    wavelength = torch.exp(lo + (hi - lo) * torch.rand((n, n_waves, 1), generator=g, device=device))
    phase = 2 * math.pi * torch.rand((n, n_waves, 1), generator=g, device=device)
    return torch.cat([direction * (2 * math.pi / wavelength), phase], dim=-1)
