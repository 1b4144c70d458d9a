"""3D solids in mm: depths, occupancy, profiles and the smooth texture field."""

from __future__ import annotations

import math

import pytest
import torch

from petdiff.phantoms import solids as so


def _grid(n: int = 41, step: float = 1.0):
    c = (torch.arange(n, dtype=torch.float32) - n // 2) * step
    return c.view(1, 1, 1, n).expand(1, 1, n, n), c.view(1, 1, n, 1).expand(1, 1, n, n)


def test_sphere_depth_is_the_distance_to_the_surface():
    u, v = _grid()
    z = torch.tensor([0.0, 3.0]).view(1, 2, 1, 1)
    r = torch.tensor(10.0)
    d = so.ellipsoid_depth(u, v, z, (r * 0, r * 0, r * 0), (r, r, r))
    dist = torch.sqrt(u * u + v * v + z * z)
    assert torch.allclose(d, r - dist, atol=5e-3)


def test_rotated_ellipsoid_and_cylinder_caps():
    u, v = _grid()
    z = torch.zeros(1, 1, 1, 1)
    zero = torch.tensor(0.0)
    semi = (torch.tensor(15.0), torch.tensor(4.0), torch.tensor(10.0))
    d = so.ellipsoid_depth(u, v, z, (zero, zero, zero), semi, math.pi / 2)  # long axis along v after the turn
    assert float(d[0, 0, 20 + 12, 20]) > 0 and float(d[0, 0, 20, 20 + 12]) < 0
    zs = torch.tensor([-6.0, 0.0, 6.0]).view(1, 3, 1, 1)
    c = so.cylinder_depth(u, v, zs, (zero, zero), (torch.tensor(8.0), torch.tensor(8.0)), (zero - 5, zero + 5))
    assert float(c[0, 1, 20, 20]) == pytest.approx(5.0, abs=1e-3)  # the caps are nearer than the wall
    assert float(c[0, 0, 20, 20]) < 0 and float(c[0, 2, 20, 20]) < 0  # beyond the caps: outside


def test_superellipse_is_boxier_with_larger_power():
    u, v = _grid()
    a = b = torch.tensor(15.0)
    corner = (20 + 13, 20 + 13)  # (13, 13) mm: outside the ellipse, inside the box-like superellipse
    assert float(so.superellipse_depth(u, v, a, b, 2.0)[0, 0, corner[0], corner[1]]) < 0
    assert float(so.superellipse_depth(u, v, a, b, 8.0)[0, 0, corner[0], corner[1]]) > 0


def test_occupancy_is_a_soft_step():
    d = torch.tensor([-5.0, 0.0, 5.0])
    m = so.occupancy(d, 1.0)
    assert float(m[0]) < 0.01 and float(m[1]) == pytest.approx(0.5) and float(m[2]) > 0.99


def test_profile_interpolates_and_holds_the_ends():
    knots, values = torch.tensor([0.0, 10.0, 30.0]), torch.tensor([1.0, 3.0, -1.0])
    z = torch.tensor([-5.0, 0.0, 5.0, 10.0, 20.0, 40.0])
    assert torch.allclose(so.profile(z, knots, values), torch.tensor([1.0, 1.0, 2.0, 3.0, 1.0, -1.0]))


def test_smooth_field_has_unit_variance_and_is_smooth():
    g = torch.Generator().manual_seed(0)
    waves = so.draw_waves(64, 8, (30.0, 120.0), g, torch.device("cpu"))
    u, v = _grid(64, 2.0)
    z = torch.tensor([0.0, 2.0]).view(1, 2, 1, 1)
    f = so.smooth_field(u.expand(64, -1, -1, -1), v.expand(64, -1, -1, -1), z.expand(64, -1, -1, -1), waves)
    assert f.shape == (64, 2, 64, 64)
    assert float(f.var()) == pytest.approx(1.0, rel=0.25)
    step = (f[..., 1:] - f[..., :-1]).abs().mean()  # neighbouring pixels 2 mm apart vary little
    assert float(step) < 0.25
