"""Lesion insertion: counts, sizes, contrast to the local background, placement in every tissue and near hot
structures, and the lesion label volume."""

from __future__ import annotations

import math

import pytest
import torch

from petdiff.phantoms.body import body_slabs
from petdiff.phantoms.lesions import LesionConfig, insert_lesions
from petdiff.phantoms.slabs import Slabs


def _uniform_slabs(n: int, grid: int, context: int, pixel: float, slice_mm: float) -> Slabs:
    """A background of 2.0 (class 1) in a central square, class 2 in a small corner of it, air around."""
    act = torch.zeros((n, 2 * context + 1, grid, grid))
    labels = torch.zeros_like(act, dtype=torch.int64)
    lo, hi = grid // 4, 3 * grid // 4
    act[..., lo:hi, lo:hi], labels[..., lo:hi, lo:hi] = 2.0, 1
    labels[..., lo : lo + 6, lo : lo + 6] = 2
    return Slabs(
        activity=act,
        labels=labels,
        lesions=torch.zeros_like(labels),
        class_names=("background", "a", "b"),
        pixel_size_mm=torch.full((n,), pixel),
        slice_mm=torch.full((n,), slice_mm),
        kinds=("test",) * n,
        lesion_diameter_mm=torch.zeros((n, 0)),
        lesion_contrast=torch.zeros((n, 0)),
    )


def test_counts_sizes_and_contrast_ranges():
    cfg = LesionConfig(count=(1, 4))
    s = insert_lesions(_uniform_slabs(64, 48, 1, 2.0, 2.0), generator=0, config=cfg)
    on = ~torch.isnan(s.lesion_diameter_mm)
    assert s.lesion_diameter_mm.shape == (64, 4)
    assert bool((on.sum(1) >= 1).all()) and bool((on.sum(1) <= 4).all())
    d = s.lesion_diameter_mm[on]
    assert float(d.min()) >= 3.0 and float(d.max()) <= 30.0 and float(d.max()) > 15.0
    ratio = s.lesion_contrast[on]
    hot = ratio >= 1.5
    assert bool(((ratio <= 0.5) | hot).all()) and bool((ratio <= 10.0).all())
    assert 0.6 < float(hot.float().mean()) < 0.9  # 75 % hot
    assert int(s.lesions.max()) <= 4 and bool((s.activity >= 0).all())


def test_lesion_volume_and_peak_match_the_drawn_size_and_contrast():
    cfg = LesionConfig(count=(1, 1), diameter_mm=(10.0, 22.0), near_hot=0.0)
    base = _uniform_slabs(24, 96, 14, 1.0, 1.0)
    base.labels[:], base.activity[:] = 1, 2.0  # one tissue filling the grid: only the slab's faces cut a lesion
    s = insert_lesions(base, generator=1, config=cfg)
    checked = 0
    for i in range(len(s)):
        d, ratio = float(s.lesion_diameter_mm[i, 0]), float(s.lesion_contrast[i, 0])
        mask = s.lesions[i] == 1
        faces = (mask[0], mask[-1], mask[:, 0], mask[:, -1], mask[:, :, 0], mask[:, :, -1])
        if any(bool(f.any()) for f in faces):  # cut by the slab
            continue
        checked += 1
        volume = float(mask.sum())  # voxels of 1 mm³
        assert volume == pytest.approx(math.pi / 6 * d**3, rel=0.05)
        values = s.activity[i][mask]
        extreme = float(values.max()) if ratio > 1 else float(values.min())
        assert extreme == pytest.approx(2.0 * ratio, rel=0.05, abs=0.05)
    assert checked >= 8


def test_lesions_stay_inside_the_body():
    s = insert_lesions(_uniform_slabs(32, 48, 1, 2.0, 2.0), generator=5, config=LesionConfig(count=(3, 3)))
    assert int(((s.lesions > 0) & (s.labels == 0)).sum()) == 0
    assert float(s.activity[s.labels == 0].max()) == 0.0


def test_every_tissue_is_equally_likely():
    cfg = LesionConfig(count=(1, 1), diameter_mm=(3.0, 4.0), near_hot=0.0)
    s = insert_lesions(_uniform_slabs(300, 48, 0, 2.0, 2.0), generator=2, config=cfg)
    small_class = (s.labels == 2) & (s.lesions == 1)  # class b is 36 of 612 pixels of the square
    with_lesion = (s.lesions == 1).flatten(1).any(1)
    in_b = small_class.flatten(1).any(1) & with_lesion
    share = float(in_b.sum()) / float(with_lesion.sum())
    assert 0.3 < share < 0.75


def test_lesions_next_to_hot_structures():
    base = _uniform_slabs(40, 64, 0, 2.0, 2.0)
    base.activity[..., 30:34, 20:44] = 20.0  # a hot band
    cfg = LesionConfig(count=(1, 1), diameter_mm=(3.0, 5.0), near_hot=1.0)
    s = insert_lesions(base, generator=3, config=cfg)
    rows = torch.arange(64).view(1, 64, 1).expand(40, 64, 64)
    mask = s.lesions[:, 0] == 1
    assert bool(mask.flatten(1).any(1).all())
    centre_row = (rows * mask).flatten(1).sum(1) / mask.flatten(1).sum(1)
    distance = torch.clamp(torch.maximum(30 - centre_row, centre_row - 33), min=0)
    assert float(distance.max()) <= 4.0


def test_deterministic_no_lesions_and_bad_config():
    base = _uniform_slabs(4, 32, 1, 2.0, 2.0)
    a, b = insert_lesions(base, generator=4), insert_lesions(base, generator=4)
    assert torch.equal(a.activity, b.activity) and torch.equal(a.lesions, b.lesions)
    none = insert_lesions(base, generator=4, config=LesionConfig(count=(0, 0)))
    assert torch.equal(none.activity, base.activity) and int(none.lesions.max()) == 0
    with pytest.raises(ValueError, match="count"):
        LesionConfig(count=(3, 1))
    with pytest.raises(ValueError, match="hot_fraction"):
        LesionConfig(hot_fraction=1.5)


def test_body_slabs_carry_lesions_in_many_tissues():
    s = body_slabs(48, 64, 3.0, 3.0, 1, generator=9, lesions=LesionConfig(count=(2, 2)))
    hosts = s.labels[s.lesions > 0].unique()
    assert hosts.numel() >= 6  # lesions sit in many different tissues
    assert bool((s.lesions > 0).flatten(1).any(1).float().mean() > 0.8)
    plain = body_slabs(8, 64, 3.0, 3.0, 1, generator=9, lesions=LesionConfig(count=(0, 0)))
    assert int(plain.lesions.max()) == 0
