"""One contract, every enhancer (as deepinv runs one adjointness test over every operator).

Parametrised over the old 64×64-style pair (1 channel, count-level labels, fixed tiles), the scan-model pair
(2.5D context, density labels, whole slices at the input's pixel size) and the single denoiser of older
snapshots (a deterministic stand-in, D(x; σ, y) = y, so that the flat-image identity is exact for it too).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from petdiff.inference.enhancers import DenoiserEnhancer, load_enhancer
from petdiff.inference.scan import enhance_scan
from petdiff.inference.volume import enhance_volume
from petdiff.io import Scan, scaling_affine
from tests.conftest import RES, save_pair, save_scan_pair, stub_model

ENHANCERS = ("old_pair", "scan_pair", "denoiser")


@pytest.fixture(scope="module", params=ENHANCERS)
def enhancer(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "old_pair":
        return load_enhancer(save_pair(folder)[1], device="cpu")
    if request.param == "scan_pair":
        return load_enhancer(save_scan_pair(folder)[1], device="cpu")
    return DenoiserEnhancer(stub_model(0.0))


def method(enhancer) -> str:
    """The method that samples: the pair's posterior, the denoiser's own."""
    return enhancer.methods[-1]


def volume(n: int = 4, h: int = RES + 8, w: int = RES + 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = torch.linspace(-1, 1, w)[None, :] ** 2 + torch.linspace(-1, 1, h)[:, None] ** 2
    base = 20.0 + 60.0 * (c < 0.4).float()
    return torch.poisson(base.expand(n, 1, h, w) * (1 + 0.3 * torch.rand(n, 1, 1, 1, generator=g)), generator=g)


def scan_of(images: torch.Tensor, units: str = "counts") -> Scan:
    size = (2.0, 4.0, 4.0)
    return Scan(images=images, units=units, voxel_size=size, affine=scaling_affine(size), space="RAS",
                fraction=0.25, kind="nifti")


def test_units_round_trip(enhancer):
    # A Bq/mL scan with K counts per unit holds the same counts as the counts scan: its output is o·f/K.
    low, k, f = volume(2), 50.0, 0.25
    settings = enhancer.settings(method(enhancer), samples=2)
    counts = enhance_scan(enhancer, scan_of(low), settings)
    conc = enhance_scan(enhancer, scan_of(low / k, "Bq/mL"), settings, counts_per_unit=k)
    assert conc.mean.units == "Bq/mL" and counts.mean.units == "counts"
    torch.testing.assert_close(conc.mean.images, counts.mean.images * f / k, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(conc.std.images, counts.std.images * f / k, rtol=1e-3, atol=1e-6)
    assert counts.mean.shape == low[:, 0].shape and counts.report["counts_per_unit"] == 1.0


def test_seed_and_batch_invariance(enhancer):
    low = volume(3)
    name = method(enhancer)
    a = enhance_volume(enhancer, low, 0.25, enhancer.settings(name, samples=4, batch_size=32), keep_samples=True)
    b = enhance_volume(enhancer, low, 0.25, enhancer.settings(name, samples=4, batch_size=1), keep_samples=True,
                       slab=1)
    torch.testing.assert_close(a.samples, b.samples, rtol=1e-4, atol=1e-4)
    # a slice's samples do not depend on the other slices of its slab
    k = enhancer.spec.context
    part = enhance_volume(enhancer, low[1 - k:2 + k] if k else low[1:2], 0.25,
                          enhancer.settings(name, samples=4), keep_samples=True)
    torch.testing.assert_close(part.samples[:, k if k else 0], a.samples[:, 1], rtol=1e-4, atol=1e-4)
    # the seeds decide the samples: same seeds, same samples; other seeds, other samples (for a sampling network)
    c = enhance_volume(enhancer, low, 0.25, enhancer.settings(name, samples=4, seeds="10-13"), keep_samples=True)
    assert torch.equal(c.samples, a.samples) == (enhancer.methods == ("denoiser",))  # the stand-in ignores noise


def test_empty_slices_give_zeros_and_run_no_network(enhancer):
    low = volume(3)
    low[1] = 0
    out = enhance_scan(enhancer, scan_of(low), enhancer.settings(method(enhancer), samples=2))
    assert float(out.mean.images[1].abs().max()) == 0 and float(out.std.images[1].abs().max()) == 0
    assert out.report["empty_slices"] == [1] and "1" in out.report["notes"][0]
    assert float(out.mean.images[0].max()) > 0
    empty = enhance_volume(enhancer, torch.zeros(2, 1, RES, RES), 0.25, enhancer.settings(method(enhancer), samples=2))
    assert float(empty.mean.abs().max()) == 0 and len(empty.levels) == 0


def test_tiling_identity_on_a_flat_image(enhancer):
    # Untrained regression networks are the identity, the stand-in denoiser too: a flat slice comes back as low/f
    # everywhere, whether it runs whole or in blended tiles (max_pixels forces tiles on the whole-slice model).
    flat = torch.full((1, 1, 3 * RES, 3 * RES), 40.0)
    deterministic = "mean" if "mean" in enhancer.methods else "denoiser"
    for max_pixels in (10**6, (RES + 2) ** 2):
        out = enhance_volume(enhancer, flat, 0.25, enhancer.settings(deterministic, samples=1), max_pixels=max_pixels)
        assert out.tiles_per_slice > 1 or max_pixels == 10**6
        np.testing.assert_allclose(out.mean.numpy(), 160.0, rtol=2e-3)


@contextlib.contextmanager
def perturbed(enhancer):
    """The enhancer with its networks' weights jittered for the duration (untrained networks ignore their
    condition: their output layers start at zero)."""
    saved = [{k: v.clone() for k, v in m.net.state_dict().items()} for m in enhancer.models]
    g = torch.Generator().manual_seed(3)
    try:
        with torch.no_grad():
            for model in enhancer.models:
                for p in model.net.parameters():
                    p.add_(0.05 * torch.randn(p.shape, generator=g))
        yield enhancer
    finally:
        for model, state in zip(enhancer.models, saved):
            model.net.load_state_dict(state)


def test_context_slices(enhancer):
    # Slice i is computed from slices i−k … i+k (replicated at the ends): a sub-volume holding them gives the same
    # result, and changing a neighbour changes it only for a model with context.
    with perturbed(enhancer):
        _check_context(enhancer)


def _check_context(enhancer):
    """The assertions of test_context_slices."""
    low, k = volume(5), enhancer.spec.context
    settings = enhancer.settings(method(enhancer), samples=2)
    whole = enhance_volume(enhancer, low, 0.25, settings, keep_samples=True)
    part = enhance_volume(enhancer, low[2 - k:3 + k], 0.25, settings, keep_samples=True)
    torch.testing.assert_close(part.samples[:, k], whole.samples[:, 2], rtol=1e-4, atol=1e-4)
    edge = enhance_volume(enhancer, torch.cat([low[:1]] * k + [low[:1 + k]]), 0.25, settings, keep_samples=True)
    torch.testing.assert_close(edge.samples[:, k], whole.samples[:, 0], rtol=1e-4, atol=1e-4)
    changed = low.clone()
    changed[3] *= 3
    other = enhance_volume(enhancer, changed, 0.25, settings, keep_samples=True)
    differs = not torch.allclose(other.samples[:, 2], whole.samples[:, 2], rtol=1e-4, atol=1e-4)
    assert differs == (k > 0 and enhancer.methods != ("denoiser",))


def test_bfloat16_precision_stays_close_to_float32(enhancer):
    low = volume(2)
    name = method(enhancer)
    exact = enhance_volume(enhancer, low, 0.25, enhancer.settings(name, samples=2))
    fast = enhance_volume(enhancer, low, 0.25, enhancer.settings(name, samples=2, precision="bfloat16"))
    scale = float(exact.mean.abs().max())
    assert float((fast.mean - exact.mean).abs().max()) <= 0.02 * scale
