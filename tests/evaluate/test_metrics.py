"""Image metrics and masks against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from petdiff.evaluate.masks import depth, dilate, erode, fill_holes, head_mask
from petdiff.evaluate.metrics import image_metrics, mse, nrmse, psnr, region_bias_noise, scale_to_total, ssim


def phantom(batch: int = 2, size: int = 24, seed: int = 0) -> torch.Tensor:
    """Positive blobs on a zero background, (B, 1, size, size)."""
    g = torch.Generator().manual_seed(seed)
    c = torch.linspace(-1, 1, size)
    disc = ((c[None, :] ** 2 + c[:, None] ** 2) < 0.6).float()
    return disc * (2.0 + 3.0 * torch.rand(batch, 1, size, size, generator=g))


def test_psnr_of_a_constant_error_is_closed_form():
    ref = phantom()
    c = 0.25
    peak = ref.flatten(1).amax(dim=1).double()
    expected = 10 * torch.log10(peak**2 / c**2)
    torch.testing.assert_close(psnr(ref + c, ref), expected)
    torch.testing.assert_close(psnr(ref - c, ref), expected)
    torch.testing.assert_close(mse(ref + c, ref), torch.full((2,), c**2, dtype=torch.float64))


def test_psnr_inside_a_mask_sees_only_the_masked_error():
    ref = phantom()
    mask = torch.zeros_like(ref, dtype=torch.bool)
    mask[..., :12, :] = True  # top half
    x = ref + 0.5 * mask  # error 0.5 inside the mask only
    peak = ref.flatten(1).amax(dim=1).double()
    torch.testing.assert_close(psnr(x, ref, mask), 10 * torch.log10(peak**2 / 0.25))
    torch.testing.assert_close(psnr(x, ref), 10 * torch.log10(peak**2 / (0.25 / 2)))  # half the pixels are wrong
    torch.testing.assert_close(psnr(x, ref, data_range=torch.tensor([1.0, 2.0])),
                               10 * torch.log10(torch.tensor([1.0, 4.0], dtype=torch.float64) / 0.125))


def test_nrmse_of_a_scaled_image_is_the_scale_error():
    ref = phantom()
    torch.testing.assert_close(nrmse(1.1 * ref, ref), torch.full((2,), 0.1, dtype=torch.float64))
    torch.testing.assert_close(nrmse(ref, ref), torch.zeros(2, dtype=torch.float64))


def test_ssim_of_identical_images_is_one_and_drops_with_noise():
    ref = phantom()
    torch.testing.assert_close(ssim(ref, ref), torch.ones(2, dtype=torch.float64))
    mask = head_mask(ref)
    torch.testing.assert_close(ssim(ref, ref, mask), torch.ones(2, dtype=torch.float64))
    noisy = ref + 0.5 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    assert bool((ssim(noisy, ref) < 0.95).all())


def test_ssim_of_constant_images_is_the_luminance_term():
    # σ_x = σ_y = σ_xy = 0: SSIM = (2ab + C1)/(a² + b² + C1), C1 = (0.01 L)², L = max(reference) = b
    a, b = 3.0, 4.0
    c1 = (0.01 * b) ** 2
    got = ssim(torch.full((1, 1, 16, 16), a), torch.full((1, 1, 16, 16), b))
    assert got.item() == pytest.approx((2 * a * b + c1) / (a**2 + b**2 + c1), rel=1e-9)


def test_scale_to_total_matches_sums_and_makes_psnr_scale_invariant():
    ref = phantom()
    x = ref + 0.3 * torch.rand(ref.shape, generator=torch.Generator().manual_seed(2))
    scaled = scale_to_total(x, ref)
    torch.testing.assert_close(scaled.sum(dim=(1, 2, 3)), ref.sum(dim=(1, 2, 3)))
    torch.testing.assert_close(psnr(scale_to_total(7.0 * x, ref), ref), psnr(scaled, ref))


def test_image_metrics_has_whole_image_and_head_versions():
    ref = phantom()
    out = image_metrics(ref * 1.05, ref)
    assert set(out) == {"psnr", "ssim", "nrmse", "psnr_head", "ssim_head", "nrmse_head"}
    assert all(v.shape == (2,) for v in out.values())
    # the error lives inside the head only, so the head-masked MSE is larger and its PSNR lower
    assert bool((out["psnr_head"] < out["psnr"]).all())
    torch.testing.assert_close(out["nrmse_head"], out["nrmse"])  # ref is 0 outside the head: same norms


def test_region_bias_and_noise_by_hand():
    truth = torch.zeros(1, 1, 4, 4)
    labels = torch.zeros(1, 1, 4, 4, dtype=torch.int64)
    labels[..., :2, :] = 1  # region 1: 8 pixels with truth 2
    labels[..., 2, :] = 2  # region 2: 4 pixels with truth 0 (a cold lesion)
    truth[labels == 1] = 2.0
    x = truth.clone()
    x[labels == 1] = torch.tensor([1.0, 3.0] * 4)  # mean 2 → bias 0; std (unbiased) = sqrt(8/7)
    x[labels == 2] = 1.0
    bias, noise = region_bias_noise(x, truth, labels, 3, min_pixels=4)
    assert bias.shape == (1, 3)
    assert math.isnan(bias[0, 0]) and math.isnan(noise[0, 0])  # 'other' is not scored
    assert bias[0, 1].item() == pytest.approx(0.0, abs=1e-12)
    assert noise[0, 1].item() == pytest.approx(math.sqrt(8 / 7) / 2)
    assert math.isnan(bias[0, 2])  # zero true mean: relative bias undefined
    assert noise[0, 2].item() == pytest.approx(0.0)
    x2 = x.clone()
    x2[labels == 1] *= 1.5
    assert region_bias_noise(x2, truth, labels, 3, min_pixels=4)[0][0, 1].item() == pytest.approx(0.5)
    # too few pixels → NaN
    assert math.isnan(region_bias_noise(x, truth, labels, 3, min_pixels=9)[0][0, 1])


def test_bad_inputs_are_rejected_naming_the_argument():
    ref = phantom()
    with pytest.raises(ValueError, match=r"x: expected the reference's shape"):
        psnr(ref[:1], ref)
    with pytest.raises(ValueError, match=r"x: expected finite"):
        psnr(ref * float("nan"), ref)
    with pytest.raises(ValueError, match=r"reference: expected shape \(B, C, H, W\)"):
        nrmse(ref, ref[0])
    with pytest.raises(ValueError, match=r"mask: expected a boolean"):
        psnr(ref, ref, mask=torch.ones_like(ref))
    with pytest.raises(ValueError, match=r"labels: expected values in \[0, 2\)"):
        region_bias_noise(ref, ref, torch.full(ref.shape, 2, dtype=torch.int64), 2)


def test_fill_holes_fills_enclosed_background_only():
    ring = torch.zeros(1, 1, 9, 9, dtype=torch.bool)
    ring[..., 2:7, 2:7] = True
    ring[..., 3:6, 3:6] = False  # a 3×3 hole
    filled = fill_holes(ring)
    assert bool(filled[..., 2:7, 2:7].all()) and int(filled.sum()) == 25
    opened = ring.clone()
    opened[..., 4, 2] = False  # an edge-connected gap: the hole is reachable from outside
    assert int(fill_holes(opened).sum()) == int(opened.sum())
    diagonal = ring.clone()
    diagonal[..., 2, 2] = False  # a corner gap touches the hole only diagonally: still enclosed (4-connectivity)
    assert int(fill_holes(diagonal).sum()) == 24


def test_depth_and_morphology_of_a_square():
    square = torch.zeros(1, 1, 11, 11, dtype=torch.bool)
    square[..., 1:10, 1:10] = True  # 9×9
    d = depth(square)
    assert int(d[0, 0, 5, 5]) == 5 and int(d[0, 0, 1, 1]) == 1 and int(d[0, 0, 0, 0]) == 0
    assert int(erode(square, 1).sum()) == 49 and int(dilate(square, 1).sum()) == 121
    assert torch.equal(erode(dilate(square, 1), 1), square)  # closing of a square is the square


def test_head_mask_contains_zero_activity_inside_the_head():
    truth = phantom(1, 24)
    truth[..., 10:14, 10:14] = 0.0  # 'ventricles' with no activity
    mask = head_mask(truth)
    assert bool(mask[..., 10:14, 10:14].all())
    assert bool(mask[truth > 0].all())
    assert not bool(mask[..., 0, 0])
