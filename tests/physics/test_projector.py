"""Projector: adjoint identity, sensitivity, attenuation factors, subsets, devices, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from petdiff.physics import Geometry, Projector, system_matrix


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PETDIFF_CACHE_DIR", str(tmp_path / "cache"))


def chord(phi: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Chord length of x cos φ + y sin φ = s in [-1, 1]² (s ≠ ±1), by sampling-free slab intersection."""
    c, sn = np.cos(phi), np.sin(phi)
    lo, hi = np.full_like(phi, -np.inf), np.full_like(phi, np.inf)
    for origin, direction in ((s * c, -sn), (s * sn, c)):
        safe = np.where(np.abs(direction) > 1e-12, direction, np.nan)
        t1, t2 = (-1 - origin) / safe, (1 - origin) / safe
        lo = np.where(np.isnan(safe), lo, np.maximum(lo, np.minimum(t1, t2)))
        hi = np.where(np.isnan(safe), hi, np.minimum(hi, np.maximum(t1, t2)))
    return np.maximum(hi - lo, 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adjoint_identity(dtype):
    g = Geometry(20, n_angles=33, n_bins=27)
    proj = Projector(g).to(dtype)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 20, 20, generator=gen, dtype=dtype)
    y = torch.rand(3, 33, 27, generator=gen, dtype=dtype)
    lhs = (proj.forward(x) * y).sum().item()
    rhs = (x * proj.adjoint(y)).sum().item()
    # float32: ~nnz rounding errors of relative size 2^-24 each, summed with random signs
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert lhs == pytest.approx(rhs, rel=tol)


def test_forward_matches_dense_matrix_product_and_layout():
    proj = Projector(16, normalize=False)
    a = system_matrix(16, normalize=False).to_dense()
    x = torch.rand(2, 1, 16, 16)
    y = proj.forward(x)
    assert y.shape == (2, 32, 16) and y.dtype == torch.float32 and y.is_contiguous()
    torch.testing.assert_close(y.reshape(2, -1), x.reshape(2, -1) @ a.T, rtol=1e-5, atol=1e-6)
    # a single lit pixel at the top-left corner: seen by the first bin of angle 0 (x = -1 + 1/16)
    e = torch.zeros(1, 1, 16, 16)
    e[0, 0, 0, 0] = 1
    assert proj.forward(e)[0, 0, 0].item() == pytest.approx(1 / 8)


def test_sensitivity_is_backprojection_of_ones():
    proj = Projector(16)
    torch.testing.assert_close(proj.sensitivity, proj.adjoint(torch.ones(1, 32, 16)))
    torch.testing.assert_close(proj.sensitivity, torch.ones(1, 1, 16, 16), atol=1e-6, rtol=0)
    raw = Projector(16, normalize=False)
    assert raw.sensitivity.shape == (1, 1, 16, 16)
    dense = system_matrix(16, normalize=False).to_dense().double()
    torch.testing.assert_close(raw.sensitivity.reshape(-1).double(), dense.sum(0), rtol=1e-6, atol=0)


def test_uniform_attenuation_gives_exp_of_chord_length():
    g = Geometry(16)
    mu = 0.3
    proj = Projector(g, attenuation=torch.full((16, 16), mu))
    phi = np.repeat(g.angles(), g.n_bins).reshape(g.sinogram_shape)
    s = np.tile(g.offsets(), (g.n_angles, 1))
    np.testing.assert_allclose(proj.attenuation_factors.numpy(), np.exp(-mu * chord(phi, s)), rtol=1e-5)
    plain = Projector(g)
    x = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(proj.forward(x), plain.forward(x) * proj.attenuation_factors, rtol=1e-5, atol=1e-7)
    y = torch.rand(2, 32, 16)
    torch.testing.assert_close(proj.adjoint(y), plain.adjoint(y * proj.attenuation_factors), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(proj.sensitivity, plain.adjoint(proj.attenuation_factors[None]), rtol=1e-5, atol=1e-7)


def test_attenuation_of_a_single_pixel_uses_raw_lengths():
    mu = torch.zeros(1, 1, 16, 16)  # (1, 1, H, W) is accepted too
    mu[0, 0, 0, 0] = 2.0
    proj = Projector(16, attenuation=mu)
    # bin 0 of angle 0 crosses pixel (0, 0) over its full height 1/8
    assert proj.attenuation_factors[0, 0].item() == pytest.approx(math.exp(-2.0 / 8), rel=1e-6)
    assert proj.attenuation_factors[0, 1].item() == 1.0


def test_subsets_partition_the_lors():
    proj = Projector(16)
    ops = proj.subsets(4)
    lors = torch.cat([op.lors for op in ops]).sort().values
    torch.testing.assert_close(lors, torch.arange(512))
    torch.testing.assert_close(sum(op.sensitivity for op in ops), proj.operator.sensitivity, rtol=1e-5, atol=1e-6)
    x = torch.rand(256, 3)
    full = proj.operator.forward_flat(x)
    r = torch.rand(512, 3)
    for op in ops:
        torch.testing.assert_close(op.forward_flat(x), full[op.lors])
        masked = torch.zeros_like(r)
        masked[op.lors] = r[op.lors]
        torch.testing.assert_close(op.adjoint_flat(r[op.lors]), proj.operator.adjoint_flat(masked))
    assert proj.subsets(4) is ops  # cached
    assert proj.subsets(1) == [proj.operator]


def test_to_moves_and_returns_self():
    proj = Projector(16)
    assert proj.to("cpu") is proj and proj.device == torch.device("cpu")
    proj.to(torch.float64)
    assert proj.dtype == torch.float64 and proj.sensitivity.dtype == torch.float64
    assert proj.forward(torch.rand(1, 1, 16, 16)).dtype == torch.float64
    with pytest.raises(ValueError, match="dtype"):
        proj.to(torch.int32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_follows_cuda_inputs():
    proj = Projector(16)
    x = torch.rand(2, 1, 16, 16)
    y_cpu = proj.forward(x)
    y = proj.forward(x.cuda())
    assert y.device.type == "cuda" and proj.device.type == "cuda"
    torch.testing.assert_close(y.cpu(), y_cpu, rtol=1e-5, atol=1e-6)
    assert proj.adjoint(y).device.type == "cuda"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p: p.forward(torch.rand(2, 16, 16)), r"x: expected shape \(B, C, H, W\)"),
        (lambda p: p.forward(torch.rand(2, 1, 16, 15)), r"x: expected images of size \(H, W\) = \(16, 16\)"),
        (lambda p: p.forward(torch.rand(2, 3, 16, 16)), "x: expected 1 channel"),
        (lambda p: p.forward(torch.ones(2, 1, 16, 16, dtype=torch.int64)), "x: expected a floating-point"),
        (lambda p: p.adjoint(torch.rand(2, 16, 32)), r"y: expected a floating tensor of shape .* \(B, 32, 16\)"),
        (lambda p: p.adjoint(np.zeros((2, 32, 16))), "y: expected a torch.Tensor"),
        (lambda p: p.subsets(0), "subsets"),
        (lambda p: p.subsets(33), "subsets"),
    ],
)
def test_rejects_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call(Projector(16))


@pytest.mark.parametrize(
    ("mu", "match"),
    [
        (torch.rand(16, 15), r"attenuation: expected a floating \(H, W\)"),
        (torch.full((16, 16), -0.1), "attenuation: expected non-negative"),
        (torch.full((16, 16), float("nan")), "attenuation: expected finite"),
        (torch.ones(16, 16, dtype=torch.int64), "attenuation"),
    ],
)
def test_rejects_bad_attenuation(mu, match):
    with pytest.raises(ValueError, match=match):
        Projector(16, attenuation=mu)


def test_explicit_transpose_equals_dense_transpose():
    proj = Projector(Geometry(12, n_angles=10, n_bins=15))
    a, a_t = proj.operator.matrix.to_dense(), proj.operator.matrix_t.to_dense()
    torch.testing.assert_close(a_t, a.T, rtol=0, atol=0)
    crow, cols = proj.operator.matrix_t.crow_indices().long(), proj.operator.matrix_t.col_indices().long()
    assert all(bool((cols[crow[i] + 1 : crow[i + 1]] > cols[crow[i] : crow[i + 1] - 1]).all()) for i in range(144))


def test_pickle_and_deepcopy_round_trip():
    import copy
    import pickle

    proj = Projector(16, attenuation=torch.full((16, 16), 0.2))
    proj.subsets(4)
    x = torch.rand(2, 1, 16, 16)
    for clone in (pickle.loads(pickle.dumps(proj)), copy.deepcopy(proj)):
        assert torch.equal(clone.forward(x), proj.forward(x))
        assert torch.equal(
            clone.subsets(4)[1].adjoint_flat(torch.ones(128, 1)), proj.subsets(4)[1].adjoint_flat(torch.ones(128, 1))
        )
        assert clone.geometry == proj.geometry and torch.equal(clone.attenuation_factors, proj.attenuation_factors)


def test_blockwise_float64_row_sums():
    from petdiff.physics import sparse

    m = Projector(Geometry(12, n_angles=10, n_bins=15)).operator.matrix_t
    dense = m.to_dense().double().sum(1)
    for block in (1, 7, 50, 1 << 22):  # blocks smaller than a row, odd sizes, one block
        torch.testing.assert_close(sparse.row_sums(m, block_nnz=block), dense, rtol=1e-12, atol=0)
