"""Exact intersection lengths: chord lengths, closed-form lines, an independent sampler, the reference matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from petdiff.physics import Geometry, system_matrix
from petdiff.physics.siddon import line_entries


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PETDIFF_CACHE_DIR", str(tmp_path / "cache"))


def dense(geometry, normalize=False) -> np.ndarray:
    return system_matrix(geometry, normalize=normalize).to_dense().double().numpy()


def chord_length(phi: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Length of {x cos φ + y sin φ = s} inside [-1, 1]² by the slab method on p(t) = sθ + t(-sin φ, cos φ)."""
    c, sn = np.cos(phi), np.sin(phi)
    lo, hi = np.full_like(phi, -np.inf), np.full_like(phi, np.inf)
    for origin, direction in ((s * c, -sn), (s * sn, c)):
        moving = np.abs(direction) > 1e-12
        t1 = np.where(moving, (-1 - origin) / np.where(moving, direction, 1), -np.inf)
        t2 = np.where(moving, (1 - origin) / np.where(moving, direction, 1), np.inf)
        lo = np.maximum(lo, np.minimum(t1, t2))
        hi = np.minimum(hi, np.maximum(t1, t2))
        outside = ~moving & (np.abs(origin) > 1)
        hi = np.where(outside, -np.inf, hi)
    return np.maximum(hi - lo, 0.0)


def sampled_lengths(phi: float, s: float, n: int, samples: int = 400_000) -> np.ndarray:
    """Independent integrator: midpoint samples along the chord, each of weight dt, binned into pixels."""
    c, sn = math.cos(phi), math.sin(phi)
    t = np.linspace(-2.0, 2.0, samples + 1)
    dt = t[1] - t[0]
    t = t[:-1] + dt / 2
    x, y = s * c - t * sn, s * sn + t * c
    inside = (np.abs(x) < 1) & (np.abs(y) < 1)
    col = np.floor((x[inside] + 1) / (2 / n)).astype(int)
    row = np.floor((1 - y[inside]) / (2 / n)).astype(int)
    return np.bincount(row * n + col, minlength=n * n) * dt


@pytest.mark.parametrize(
    "geometry",
    [
        Geometry(16),
        Geometry(17),
        Geometry(32),
        Geometry(24, n_angles=7, n_bins=40),
        Geometry(20, n_angles=90, n_bins=9),
    ],
    ids=str,
)
def test_row_sums_equal_chord_lengths(geometry):
    a = dense(geometry)
    phi = np.repeat(geometry.angles(), geometry.n_bins)
    s = np.tile(geometry.offsets(), geometry.n_angles)
    np.testing.assert_allclose(a.sum(axis=1), chord_length(phi, s), rtol=1e-6, atol=1e-6)


def test_geometry_defaults_and_grids():
    g = Geometry(16)
    assert (g.n_angles, g.n_bins, g.n_lors, g.n_pixels) == (32, 16, 512, 256)
    np.testing.assert_allclose(g.angles(), np.pi * np.arange(32) / 32)
    np.testing.assert_allclose(g.offsets(), -1 + 1 / 16 + np.arange(16) / 8)
    assert Geometry(16) == Geometry(16, 32, 16)  # defaults are resolved, so caches key equal geometries equally
    np.testing.assert_allclose(Geometry(8, n_bins=4).offsets(), [-0.75, -0.25, 0.25, 0.75])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"resolution": 1}, "resolution"),
        ({"resolution": 16.0}, "resolution"),
        ({"resolution": True}, "resolution"),
        ({"resolution": 4096}, "resolution"),
        ({"resolution": 16, "n_angles": 0}, "n_angles"),
        ({"resolution": 16, "n_bins": -3}, "n_bins"),
    ],
)
def test_geometry_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Geometry(**kwargs)


def test_system_matrix_rejects_bad_geometry():
    with pytest.raises(ValueError, match="geometry_or_resolution"):
        system_matrix("64")


def test_central_horizontal_line_has_length_two_in_one_pixel_row():
    g = Geometry(17)  # odd: s = 0 is a bin centre and y = 0 the middle of pixel row 8
    a = dense(g).reshape(g.n_angles, g.n_bins, 17, 17)
    line = a[17, 8]  # φ = π/2: the line y = 0
    assert line.sum() == pytest.approx(2.0, abs=1e-6)
    np.testing.assert_allclose(line[8], 2 / 17, atol=1e-7)
    assert np.count_nonzero(line) == 17


def test_diagonals_have_length_two_sqrt_two_through_grid_corners():
    g = Geometry(16, n_angles=32, n_bins=17)  # φ = π/4 and 3π/4 are angles 8 and 24; s = 0 is bin 8
    a = dense(g).reshape(g.n_angles, g.n_bins, 16, 16)
    for angle, expected_pattern in ((8, np.eye(16)), (24, np.fliplr(np.eye(16)))):
        line = a[angle, 8]
        assert line.sum() == pytest.approx(2 * math.sqrt(2), abs=1e-6)
        # the line runs through pixel corners: each diagonal pixel gets w√2, the neighbours nothing
        np.testing.assert_allclose(line, expected_pattern * (2 / 16) * math.sqrt(2), atol=1e-6)


def test_line_along_a_pixel_edge_is_split_half_and_half():
    g = Geometry(16, n_angles=2, n_bins=8)  # bins at -0.875, -0.625, … lie on the column edges
    a = dense(g).reshape(2, 8, 16, 16)
    vertical = a[0, 0]  # x = -0.875: between columns 0 and 1
    np.testing.assert_allclose(vertical[:, 0], 1 / 16, atol=1e-7)
    np.testing.assert_allclose(vertical[:, 1], 1 / 16, atol=1e-7)
    assert vertical.sum() == pytest.approx(2.0, abs=1e-6)
    horizontal = a[1, 0]  # y = -0.875: between image rows 14 and 15
    np.testing.assert_allclose(horizontal[14], 1 / 16, atol=1e-7)
    np.testing.assert_allclose(horizontal[15], 1 / 16, atol=1e-7)


@pytest.mark.parametrize("n", [16, 21])
def test_agrees_with_independent_line_sampler(n):
    rng = np.random.default_rng(1234 + n)
    phi = rng.uniform(0, np.pi, 6)
    s = rng.uniform(-0.95, 0.95, 6)
    pixel, length = line_entries(phi.copy(), s, n)
    samples = 400_000
    dt = 4.0 / samples
    for i in range(6):
        hit = length[i] > 0  # zero-length candidates may carry an out-of-grid index
        exact = np.bincount(pixel[i][hit], weights=length[i][hit], minlength=n * n)
        # each pixel's sampled length is off by at most one sample at each of its two boundary crossings
        np.testing.assert_allclose(sampled_lengths(phi[i], s[i], n, samples), exact, rtol=0, atol=2 * dt + 1e-12)


def _reference(path, h: int) -> np.ndarray:
    data = np.load(path, allow_pickle=False)
    shape = tuple(int(v) for v in data[f"raw_{h}_shape"])
    out = np.zeros(shape)
    np.add.at(out, (data[f"raw_{h}_rows"], data[f"raw_{h}_cols"]), data[f"raw_{h}_values"])
    return out


@pytest.mark.parametrize("h", [16, 32])
def test_matches_reference_system_matrix(reference_matrix_path, h):
    ref = _reference(reference_matrix_path, h)
    raw = dense(h)
    assert raw.shape == ref.shape
    # float32 storage of lengths ≤ 2√2/h: agreement to float32 rounding
    np.testing.assert_allclose(raw, ref, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(raw > 1e-7, ref > 1e-7)
    assert ref[0, 0] == pytest.approx(2 / h) and raw[0, 0] == pytest.approx(2 / h)
    normalized = dense(h, normalize=True)
    np.testing.assert_allclose(normalized, ref / ref.sum(axis=0, keepdims=True), rtol=0, atol=1e-6)


def test_normalized_columns_sum_to_one():
    a = system_matrix(Geometry(24, n_angles=30, n_bins=20))
    sums = torch.zeros(a.shape[1], dtype=torch.float64).index_add_(0, a.col_indices().long(), a.values().double())
    np.testing.assert_allclose(sums.numpy(), 1.0, atol=1e-6)
    assert a.layout == torch.sparse_csr and a.dtype == torch.float32


def test_columns_sorted_within_rows():
    a = system_matrix(17, normalize=False)
    crow, cols = a.crow_indices().long().numpy(), a.col_indices().long().numpy()
    for i in range(a.shape[0]):
        assert np.all(np.diff(cols[crow[i] : crow[i + 1]]) > 0)
