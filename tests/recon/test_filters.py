"""Gaussian post-filter: identity at fwhm 0, the σ–FWHM relation, padding modes, an independent reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from petdiff.recon import gaussian_filter, gaussian_kernel1d


def test_fwhm_zero_is_identity():
    x = torch.rand(2, 3, 9, 11)
    out = gaussian_filter(x, 0)
    assert torch.equal(out, x) and out is not x


def test_impulse_response_has_the_requested_fwhm():
    fwhm = 5.0
    x = torch.zeros(1, 1, 61, 61, dtype=torch.float64)
    x[0, 0, 30, 30] = 1
    # truncate at 8σ: the lost tail mass (~1e-15) cannot hide a wrong σ–FWHM factor
    out = gaussian_filter(x, fwhm, padding="zeros", truncate=8.0)[0, 0]
    assert out.sum().item() == pytest.approx(1.0, abs=1e-12)
    k = torch.arange(61, dtype=torch.float64) - 30
    profile = out.sum(0)
    var = (profile * k**2).sum().item()
    sigma = fwhm / (2 * math.sqrt(2 * math.log(2)))
    # a sampled Gaussian of σ ≥ 1 has variance σ² up to terms of order exp(−2π²σ²)
    assert var == pytest.approx(sigma**2, rel=1e-9)
    # separable: the 2D response is the outer product of two 1D kernels
    torch.testing.assert_close(out, torch.outer(out.sum(1), out.sum(0)), rtol=1e-10, atol=1e-14)
    # half maximum reached at ±FWHM/2 (continuous Gaussian, evaluated through the kernel formula)
    g = gaussian_kernel1d(sigma, dtype=torch.float64)
    centre = (g.shape[0] - 1) // 2
    assert math.exp(-0.5 * (fwhm / 2 / sigma) ** 2) == pytest.approx(0.5, rel=1e-12)
    assert g[centre + 2].item() > g[centre].item() / 2 > g[centre + 3].item()


def test_constant_image_is_unchanged_with_reflect_padding():
    x = torch.full((2, 1, 16, 16), 3.5)
    torch.testing.assert_close(gaussian_filter(x, 4.0), x)
    torch.testing.assert_close(gaussian_filter(x, 4.0, padding="replicate"), x)
    assert gaussian_filter(x, 4.0, padding="zeros")[0, 0, 0, 0] < 3.5  # activity leaks out at the border


@pytest.mark.parametrize(
    ("padding", "mode"), [("reflect", "mirror"), ("zeros", "constant"), ("replicate", "nearest"), ("circular", "wrap")]
)
def test_matches_scipy(padding, mode):
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    x = rng.random((2, 1, 20, 24))
    fwhm = 3.3
    sigma = fwhm / (2 * math.sqrt(2 * math.log(2)))
    expected = np.stack([ndimage.gaussian_filter(im[0], sigma, mode=mode, truncate=4.0) for im in x])[:, None]
    out = gaussian_filter(torch.from_numpy(x), fwhm, padding=padding)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_channels_are_filtered_independently():
    x = torch.rand(2, 3, 12, 12)
    out = gaussian_filter(x, 2.5)
    for c in range(3):
        torch.testing.assert_close(out[:, c : c + 1], gaussian_filter(x[:, c : c + 1], 2.5))


@pytest.mark.parametrize(
    ("images", "kwargs", "match"),
    [
        (torch.rand(1, 16, 16), {"fwhm": 2}, r"images: expected shape \(B, C, H, W\)"),
        (torch.rand(1, 1, 16, 16), {"fwhm": -1}, "fwhm: expected a finite number ≥ 0"),
        (torch.rand(1, 1, 16, 16), {"fwhm": float("nan")}, "fwhm"),
        (torch.rand(1, 1, 16, 16), {"fwhm": "wide"}, "fwhm"),
        (torch.rand(1, 1, 16, 16), {"fwhm": 2, "padding": "mirror"}, "padding: expected one of"),
        (torch.rand(1, 1, 8, 8), {"fwhm": 20}, "fwhm: kernel radius"),
        (torch.rand(1, 1, 8, 8), {"fwhm": 2, "truncate": 0}, "truncate"),
    ],
)
def test_rejects_bad_inputs(images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gaussian_filter(images, **kwargs)
