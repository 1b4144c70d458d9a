"""MLEM / OSEM: likelihood ascent, count preservation, convergence to the phantom, batching, tol, validation."""

from __future__ import annotations

import itertools

import pytest
import torch

from petdiff.physics import Projector, poisson_sinogram
from petdiff.recon import mlem


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PETDIFF_CACHE_DIR", str(tmp_path / "cache"))


N = 16


def phantom(batch: int = 1) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(-1, 1, N), torch.linspace(-1, 1, N), indexing="ij")
    img = ((x**2 + y**2) < 0.7).double() + ((x - 0.3) ** 2 + (y - 0.1) ** 2 < 0.08).double()
    scale = torch.arange(1, batch + 1, dtype=torch.float64)[:, None, None, None]
    return img.expand(batch, 1, N, N) * scale


@pytest.fixture
def proj64() -> Projector:
    return Projector(N).to(torch.float64)


def loglik(y: torch.Tensor, proj: Projector, lam: torch.Tensor, s: float = 0.0) -> torch.Tensor:
    """Poisson log-likelihood Σ_i Y_i log(Aλ + s)_i − (Aλ + s)_i per sample (Y log 0 := 0 when Y = 0)."""
    mean = proj.forward(lam) + s
    return (torch.xlogy(y, mean) - mean).sum((1, 2))


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    return ((x - ref).norm() / ref.norm()).item()


def test_loglikelihood_never_decreases(proj64):
    y = poisson_sinogram(
        phantom(2).float(), proj64.to(torch.float32), counts=2e4, generator=torch.Generator().manual_seed(0)
    )
    proj64.to(torch.float64)
    y = y.double()
    lam = None
    values = []
    for _ in range(15):
        lam = mlem(y, proj64, n_iter=1 if lam is None else 2, init=lam)
        values.append(loglik(y, proj64, lam))
    values = torch.stack(values)
    steps = values[1:] - values[:-1]
    # float64 rounding of a sum of 512 terms of size ~|L|: allow 1e-12 relative
    assert bool((steps >= -1e-12 * values[1:].abs()).all())
    assert bool((values[-1] > values[0]).all())


def test_counts_preserved_after_each_iteration(proj64):
    y = poisson_sinogram(
        phantom(3).float(), Projector(N), counts=1e4, generator=torch.Generator().manual_seed(1)
    ).double()
    sens = proj64.sensitivity
    for n_iter in (1, 5):
        lam = mlem(y, proj64, n_iter=n_iter)
        # Σ_j (Aᵀ1)_j λ_j = Σ_i Y_i whenever every LOR with counts has Aλ > 0
        torch.testing.assert_close((sens * lam).sum((1, 2, 3)), y.sum((1, 2)), rtol=1e-10, atol=0)


def test_counts_preserved_with_unnormalised_matrix():
    proj = Projector(N, normalize=False).to(torch.float64)
    y = proj.forward(phantom(1))
    lam = mlem(y, proj, n_iter=1)
    torch.testing.assert_close((proj.sensitivity * lam).sum(), y.sum(), rtol=1e-10, atol=0)


def test_zero_sinogram_gives_zero_image_without_nan(proj64):
    y = torch.zeros(2, 2 * N, N, dtype=torch.float64)
    for kwargs in ({}, {"subsets": 4}, {"tol": 1e-3}):
        lam = mlem(y, proj64, n_iter=5, **kwargs)
        assert torch.equal(lam, torch.zeros_like(lam))


def test_lines_with_counts_but_no_activity_do_not_produce_nan(proj64):
    y = torch.zeros(1, 2 * N, N, dtype=torch.float64)
    y[0, 0, 3] = 7.0  # a count on a LOR whose pixels the init sets to zero
    init = torch.zeros(1, 1, N, N, dtype=torch.float64)
    init[0, 0, 8, 8] = 1.0
    lam = mlem(y, proj64, n_iter=3, init=init)
    assert bool(torch.isfinite(lam).all())


def test_noiseless_reconstruction_approaches_phantom(proj64):
    truth = phantom(1)
    y = proj64.forward(truth)
    lam, errors = None, []
    for k in (5, 15, 60, 220):  # continued: 5, 20, 80, 300 iterations
        lam = mlem(y, proj64, n_iter=k, init=lam)
        errors.append(rel_err(lam, truth))
    assert all(a > b for a, b in itertools.pairwise(errors))
    assert errors[-1] < 0.08


def test_batched_equals_per_sample():
    proj = Projector(N)
    y = poisson_sinogram(phantom(4).float(), proj, counts=1e4, generator=torch.Generator().manual_seed(2))
    batched = mlem(y, proj, n_iter=20)
    assert batched.shape == (4, 1, N, N) and batched.dtype == torch.float32
    for b in range(4):
        torch.testing.assert_close(batched[b : b + 1], mlem(y[b : b + 1], proj, n_iter=20), rtol=1e-5, atol=1e-6)


def test_large_batches_are_chunked_without_changing_results(proj64):
    from petdiff.recon.mlem import cpu_chunk

    assert cpu_chunk(8192) == 32 and cpu_chunk(32768) == 8 and cpu_chunk(512) == 32
    y = proj64.forward(phantom(1)).expand(37, -1, -1).clone()
    y[::3] = 0.0
    s = torch.rand(37, 1, 1, dtype=torch.float64)
    out = mlem(y, proj64, n_iter=6, tol=1e-3, background=s)  # 37 > 32: two chunks
    for b in (0, 1, 33, 36):
        torch.testing.assert_close(
            out[b : b + 1], mlem(y[b : b + 1], proj64, n_iter=6, tol=1e-3, background=s[b : b + 1])
        )


def test_lors_without_counts_are_skipped_exactly(proj64):
    from petdiff.recon import em_update
    from petdiff.recon.mlem import skip_empty_lors

    small = torch.zeros(2, 1, N, N, dtype=torch.float64)
    small[:, 0, 3:6, 9:13] = 1.0  # a small object off-centre: most LORs see nothing
    small[1] *= 2
    y = proj64.forward(small)
    y[y < 1e-9] = 0.0
    counted = (y.reshape(2, -1) > 0).any(0)
    op = skip_empty_lors(proj64.operator, counted)
    assert op is not proj64.operator and op.lors.numel() == int(counted.sum()) < 0.5 * counted.numel()
    assert torch.equal(op.sensitivity, proj64.operator.sensitivity)  # the update still divides by the full Aᵀ1
    for subsets in (1, 4):
        ops = proj64.subsets(subsets)
        x = torch.ones(N * N, 2, dtype=torch.float64)
        flat = y.reshape(2, -1).t()
        for _ in range(6):  # reference: the full operators, nothing skipped
            for sub in ops:
                rows = slice(None) if sub.lors is None else sub.lors
                x = em_update(x, flat[rows], sub, 1 / sub.sensitivity, None)
        torch.testing.assert_close(mlem(y, proj64, n_iter=6, subsets=subsets).reshape(2, -1).t(), x, rtol=1e-13, atol=0)
    # nothing to skip: the operator is returned as is
    assert skip_empty_lors(proj64.operator, torch.ones_like(counted)) is proj64.operator


def _first_converged(y, proj, tol, n_iter):
    """Iteration after which ‖λ^k − λ^{k−1}‖ ≤ tol‖λ^{k−1}‖ first holds (n_iter if never), by single EM steps."""
    from petdiff.recon import em_update

    op = proj.operator
    flat = y.reshape(1, -1).t()
    prev = torch.ones(N * N, 1, dtype=y.dtype)
    for k in range(1, n_iter + 1):
        lam = em_update(prev, flat, op, 1 / op.sensitivity, None)
        if (lam - prev).norm() <= tol * prev.norm():
            return k
        prev = lam
    return n_iter


def test_tol_stops_each_sample_on_its_own(proj64):
    truth = phantom(3)
    y = proj64.forward(truth)
    y[1] = poisson_sinogram(truth[1:2].float(), Projector(N), counts=300, generator=torch.Generator().manual_seed(0))[0]
    y[2] = 0.0  # converges after two iterations (λ¹ = 0, then no change)
    tol, n_iter = 2e-3, 60
    out = mlem(y, proj64, n_iter=n_iter, tol=tol)
    stops = [_first_converged(y[b : b + 1], proj64, tol, n_iter) for b in range(3)]
    # sample 2 stops at once, sample 0 later, the noisy low-count sample 1 runs all n_iter iterations
    assert stops[2] == 2 and 2 < stops[0] < n_iter and stops[1] == n_iter
    for b, k in enumerate(stops):
        torch.testing.assert_close(out[b : b + 1], mlem(y[b : b + 1], proj64, n_iter=k), rtol=1e-12, atol=0)
    # without tol the same call iterates all n_iter times
    assert rel_err(mlem(y[:1], proj64, n_iter=n_iter), out[:1]) > 1e-6


def test_osem_matches_mlem_with_one_subset_and_accelerates(proj64):
    truth = phantom(1)
    y = proj64.forward(truth)
    torch.testing.assert_close(mlem(y, proj64, n_iter=7, subsets=1), mlem(y, proj64, n_iter=7))
    osem = mlem(y, proj64, n_iter=10, subsets=4)
    assert rel_err(osem, truth) < rel_err(mlem(y, proj64, n_iter=10), truth)
    # four subset updates per pass: 10 OSEM passes land near 40 MLEM iterations
    assert rel_err(osem, truth) == pytest.approx(rel_err(mlem(y, proj64, n_iter=40), truth), rel=0.15)
    assert bool((osem >= 0).all())


def test_osem_subset_update_preserves_subset_counts(proj64):
    y = proj64.forward(phantom(1))
    op = proj64.subsets(4)[0]
    lam = mlem(y, proj64, n_iter=1, subsets=4)
    assert lam.shape == (1, 1, N, N)
    # the first subset's update alone preserves that subset's counts
    from petdiff.recon import em_update

    x1 = em_update(
        torch.ones(N * N, 1, dtype=torch.float64), y.reshape(1, -1).t()[op.lors], op, 1 / op.sensitivity, None
    )
    torch.testing.assert_close((op.sensitivity * x1).sum(), y.reshape(-1)[op.lors].sum(), rtol=1e-10, atol=0)


def test_attenuation_and_background_models_recover_the_phantom():
    truth = phantom(1)
    mu = 0.6 * (truth[0, 0] > 0).double()
    att = Projector(N, attenuation=mu).to(torch.float64)
    s = torch.full((1, 2 * N, N), 0.3, dtype=torch.float64)
    y = att.forward(truth) + s
    lam, errors = None, []
    for k in (10, 30, 120):  # continue from the previous estimate: 10, 40, 160 iterations
        lam = mlem(y, att, n_iter=k, background=s, init=lam)
        errors.append(rel_err(lam, truth))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.08
    # same data, model without attenuation or without background: far off
    assert rel_err(mlem(y, Projector(N).to(torch.float64), n_iter=160), truth) > 3 * errors[2]
    assert rel_err(mlem(y, att, n_iter=160), truth) > 2 * errors[2]
    # a scalar background means the same expected counts on every LOR
    torch.testing.assert_close(mlem(y, att, n_iter=20, background=0.3), mlem(y, att, n_iter=20, background=s))
    torch.testing.assert_close(
        mlem(y, att, n_iter=10, background=s, subsets=4), mlem(y, att, n_iter=10, background=0.3, subsets=4)
    )


def test_init_is_used(proj64):
    y = proj64.forward(phantom(1))
    init = torch.full((1, 1, N, N), 2.0, dtype=torch.float64)
    mlem(torch.cat([y, y * 0]), proj64, n_iter=3, tol=1e-3, init=torch.cat([init, init]))
    mlem(y, proj64, n_iter=3, tol=0.5, init=init)
    assert torch.equal(init, torch.full((1, 1, N, N), 2.0, dtype=torch.float64))  # the caller's tensor is untouched
    assert mlem(y[:0], proj64, n_iter=3).shape == (0, 1, N, N)
    two = mlem(y, proj64, n_iter=2)
    torch.testing.assert_close(mlem(y, proj64, n_iter=1, init=mlem(y, proj64, n_iter=1)), two)
    torch.testing.assert_close(mlem(y, proj64, n_iter=0), torch.ones(1, 1, N, N, dtype=torch.float64))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sinograms": torch.ones(1, N, 2 * N)}, r"sinograms: expected a floating tensor of shape .*\(B, 32, 16\)"),
        ({"sinograms": torch.ones(2 * N, N)}, "sinograms: expected"),
        ({"sinograms": -torch.ones(1, 2 * N, N)}, "sinograms: expected non-negative"),
        ({"sinograms": torch.full((1, 2 * N, N), float("inf"))}, "sinograms: expected finite"),
        ({"n_iter": -1}, "n_iter"),
        ({"n_iter": 2.5}, "n_iter"),
        ({"tol": 0.0}, "tol"),
        ({"tol": float("nan")}, "tol"),
        ({"subsets": 0}, "subsets"),
        ({"subsets": 2 * N + 1}, "subsets"),
        ({"background": -1.0}, "background"),
        ({"background": torch.ones(3, 2 * N, N)}, "background: expected a tensor broadcastable"),
        ({"background": -torch.ones(2 * N, N)}, "background: expected non-negative"),
        ({"init": torch.ones(1, 1, N, N + 1)}, r"init: expected shape \(1, 1, 16, 16\)"),
        ({"init": -torch.ones(1, 1, N, N)}, "init: expected non-negative"),
    ],
)
def test_rejects_bad_inputs(kwargs, match):
    args = {"sinograms": torch.ones(1, 2 * N, N), "projector": Projector(N), **kwargs}
    with pytest.raises(ValueError, match=match):
        mlem(**args)
