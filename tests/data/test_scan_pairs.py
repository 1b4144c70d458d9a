import math

import pytest
import torch

from petdiff.data.normalization import Normalizer
from petdiff.data.scan_pairs import ScanPairSimulator, ScanSimulation, blur_mm, field_of_view
from petdiff.models.dose import peak_density


def _disc_slabs(n: int, grid: int, depth: int = 3, value: float = 2.0) -> torch.Tensor:
    c = (torch.arange(grid) + 0.5) / grid * 2 - 1
    disc = ((c[None, :] ** 2 + c[:, None] ** 2) <= 0.5**2).float() * value
    return disc.expand(n, depth, grid, grid).clone()


def _simulator(**kw) -> ScanPairSimulator:
    settings = ScanSimulation(grid=32, patch=32, patches_per_slab=1, **kw)
    return ScanPairSimulator(settings)


def test_blur_keeps_the_total_and_zero_fwhm_is_the_identity():
    images = _disc_slabs(2, 32)
    blurred = blur_mm(images, torch.tensor([6.0, 0.0]), torch.tensor([2.0, 2.0]))
    assert torch.allclose(blurred.sum(dim=(2, 3)), images.sum(dim=(2, 3)), rtol=1e-4)
    assert torch.equal(blurred[1], images[1])
    assert blurred[0].amax() < images[0].amax()  # the disc's edge is spread out


def test_field_of_view_is_the_inscribed_circle():
    fov = field_of_view(64)
    assert fov[32, 32] == 1 and fov[0, 0] == 0 and fov[0, 32] == 1
    assert float(fov.mean()) == pytest.approx(math.pi / 4, abs=0.03)


def test_pairs_are_in_counts_per_pixel_with_the_dose_fraction_between_them():
    sim = _simulator(no_postfilter=1.0, single_slice=0.0, mlem_share=1.0)  # MLEM keeps counts exactly; OSEM nearly
    g = torch.Generator().manual_seed(0)
    activity = _disc_slabs(6, 32)
    pixel = torch.full((6,), 4.0)
    pairs = sim(activity, pixel, g)
    norm = Normalizer("quantitative")
    full = norm.invert(pairs.full_dose, pairs.scale)
    low = norm.invert(pairs.low_dose, pairs.scale * pairs.fraction)
    truth = norm.invert(pairs.truth, pairs.scale)
    counts = pairs.counts.double()
    # MLEM with a column-normalised matrix keeps the measured counts: Poisson around the expected counts.
    assert torch.all((full.sum(dim=(1, 2, 3)).double() - counts).abs() < 5 * counts.sqrt() + 1)
    low_counts = low[:, 1].sum(dim=(1, 2)).double()
    expected_low = counts * pairs.fraction.double()
    assert torch.all((low_counts - expected_low).abs() < 5 * expected_low.sqrt() + 1)
    # The truth is the unblurred activity at the same scale: same total as the blurred counts (disc inside the FOV).
    assert torch.allclose(truth.sum(dim=(1, 2, 3)).double(), counts, rtol=1e-3)
    # The label: the peak low-dose counts per pixel of the patch itself.
    assert torch.allclose(pairs.density, peak_density(low), rtol=1e-4)
    assert pairs.fraction.min() >= 0.02 and pairs.fraction.max() <= 0.6
    assert pairs.low_dose.shape == (6, 3, 32, 32) and pairs.truth.shape == (6, 1, 32, 32)


def test_scanner_blur_and_post_filter_smooth_the_reconstruction_but_not_the_truth():
    g = torch.Generator().manual_seed(1)
    sharp = _simulator(no_postfilter=1.0, scanner_fwhm_mm=(0.01, 0.01), counts_per_suv_cm2=(1e6, 1e6))
    soft = _simulator(postfilter_mm=(6.0, 6.0), no_postfilter=0.0, scanner_fwhm_mm=(7.0, 7.0),
                      counts_per_suv_cm2=(1e6, 1e6))
    activity, pixel = _disc_slabs(2, 32), torch.full((2,), 4.0)
    a, b = sharp(activity, pixel, g), soft(activity, pixel, torch.Generator().manual_seed(1))
    edge = lambda x: (x[..., 1:] - x[..., :-1]).abs().amax()  # noqa: E731
    assert edge(b.full_dose) < 0.6 * edge(a.full_dose)
    norm = Normalizer("quantitative")
    for pairs in (a, b):  # a hard-edged disc: the truth jumps from 0 to its full value in one pixel
        truth = norm.invert(pairs.truth, pairs.scale)
        assert float(edge(truth) / truth.amax()) == pytest.approx(1.0, abs=1e-5)
    assert torch.all(b.postfilter == 6.0) and torch.all(a.postfilter == 0.0)


def test_single_slice_patches_repeat_the_centre_and_a_seed_repeats_everything():
    sim = _simulator(single_slice=1.0)
    activity = _disc_slabs(2, 32)
    activity[:, 0] *= 3.0
    pixel = torch.full((2,), 3.0)
    a = sim(activity, pixel, torch.Generator().manual_seed(5))
    assert torch.equal(a.low_dose[:, 0], a.low_dose[:, 1]) and torch.equal(a.low_dose[:, 2], a.low_dose[:, 1])
    b = sim(activity, pixel, torch.Generator().manual_seed(5))
    assert torch.equal(a.low_dose, b.low_dose) and torch.equal(a.truth, b.truth)


def test_slabs_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match="slabs"):
        _simulator()(torch.ones(1, 1, 32, 32), torch.ones(1), torch.Generator())
