"""Lesion numbers against closed forms on synthetic spheres: SUVpeak, the 41 % isocontour MTV, TLG, hotspots."""

from __future__ import annotations

import math

import numpy as np
import pytest

from petdiff.evaluate.lesions import (
    hotspot_labels,
    lesion_intervals,
    lesion_numbers,
    lesion_table,
    sphere_offsets,
)

VOXEL = (2.0, 2.0, 2.0)


def _radius_mm(shape, centre, voxel=VOXEL) -> np.ndarray:
    """Distance (mm) of every voxel centre from `centre` (voxel indices)."""
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, voxel)))


def test_the_peak_sphere_holds_one_millilitre():
    offsets = sphere_offsets((1.0, 1.0, 1.0))
    assert abs(len(offsets) * 1e-3 - 1.0) < 0.03  # 1 mm voxels: the count approximates 1000 mm³
    assert len(sphere_offsets((4.0, 4.0, 4.0))) == 19  # within 6.20 mm = 1.55 voxels: 1 + 6 (at 1) + 12 (at √2)
    flat = sphere_offsets((4.0, 2.0, 2.0))
    assert np.abs(flat[:, 0]).max() == 1 and np.abs(flat[:, 1]).max() == 3  # anisotropic voxels: reach in mm


def test_uniform_two_centimetre_sphere():
    shape, centre, value = (24, 24, 24), (12, 12, 12), 7.5
    rho = _radius_mm(shape, centre)
    image = np.where(rho <= 10.0, value, 1.0)  # 2 cm diameter, background 1 (below 41 % of 7.5)
    mask = rho <= 12.0  # the lesion mask is a little larger than the sphere
    numbers = lesion_numbers(image, mask, VOXEL)
    assert numbers.max == value and numbers.peak == pytest.approx(value, abs=1e-12)  # the 1 mL sphere fits inside
    assert numbers.mean == pytest.approx(value)
    exact = 4.0 / 3.0 * math.pi * 1.0**3  # mL
    layer = 4.0 * math.pi * 1.0**2 * 0.2  # one voxel layer over the surface, mL
    assert abs(numbers.mtv_ml - exact) < layer
    assert numbers.mtv_ml == pytest.approx((rho <= 10.0).sum() * 8e-3)
    assert numbers.tlg == pytest.approx(numbers.mean * numbers.mtv_ml)


def test_the_41_percent_isocontour_of_a_smooth_blob():
    shape, centre, s = (40, 40, 40), (20, 20, 20), 8.0
    rho = _radius_mm(shape, centre)
    image = 5.0 * np.exp(-(rho**2) / (2 * s**2))
    numbers = lesion_numbers(image, rho <= 30.0, VOXEL)
    r41 = s * math.sqrt(-2.0 * math.log(0.41))  # the isocontour's radius, closed form
    exact = 4.0 / 3.0 * math.pi * (r41 / 10.0) ** 3
    assert abs(numbers.mtv_ml - exact) < 4.0 * math.pi * (r41 / 10.0) ** 2 * 0.2
    # mean inside the contour, closed form: ∫ f 4πρ² dρ / V over ρ ≤ r41, by quadrature
    grid = np.linspace(0.0, r41, 20001)
    f = 5.0 * np.exp(-(grid**2) / (2 * s**2))
    mean = np.trapezoid(f * grid**2, grid) / np.trapezoid(grid**2, grid)
    assert numbers.mean == pytest.approx(mean, rel=0.03)
    assert numbers.peak < numbers.max == pytest.approx(5.0)  # a peaked blob: the sphere mean is below the max


def test_the_isocontour_keeps_only_the_region_connected_to_the_maximum():
    image = np.zeros((1, 20, 20))
    image[0, 2:5, 2:5] = 10.0
    image[0, 12:15, 12:15] = 6.0  # above 41 % of 10 but not connected to the hottest voxel
    numbers = lesion_numbers(image, np.ones_like(image), (4.0, 4.0, 4.0))
    assert numbers.voxels == 9 and numbers.mean == 10.0 and numbers.mtv_ml == pytest.approx(9 * 0.064)
    cold = lesion_numbers(-image, image > 0, (4.0, 4.0, 4.0))  # no positive maximum: no isocontour
    assert cold.max == -6.0 and math.isnan(cold.mtv_ml) and math.isnan(cold.tlg)


def test_table_hotspots_and_intervals():
    image = np.zeros((3, 16, 16))
    image[1, 2:4, 2:4], image[1, 10:13, 10:13], image[0, 8, 2] = 8.0, 5.0, 3.0
    labels = hotspot_labels(image, threshold=4.0, n=5)
    assert labels.max() == 2 and (labels == 1).sum() == 4 and (labels == 2).sum() == 9  # 1 = the hottest
    assert hotspot_labels(image, threshold=4.0, n=1).max() == 1
    table = lesion_table(image, labels, (4.0, 4.0, 4.0))
    assert table[1].max == 8.0 and table[2].max == 5.0
    samples = np.stack([image * a for a in np.linspace(0.8, 1.2, 21)])
    intervals = lesion_intervals(samples, labels, (4.0, 4.0, 4.0))
    lo, hi = intervals[1]
    assert lo["max"] == pytest.approx(8.0 * 0.82) and hi["max"] == pytest.approx(8.0 * 1.18)
    assert lo["mtv_ml"] == hi["mtv_ml"] == pytest.approx(table[1].mtv_ml)  # scaling leaves the contour alone
    with pytest.raises(ValueError, match="empty mask"):
        lesion_numbers(image, np.zeros_like(image), (4.0, 4.0, 4.0))
