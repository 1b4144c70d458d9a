"""The simulator's slab source: the body/brain/field mix, fields of view, merged class names, field slabs along z."""

from __future__ import annotations

import pytest
import torch

from petdiff.phantoms.lesions import LesionConfig
from petdiff.phantoms.scan_slabs import field_slabs, scan_slabs
from petdiff.phantoms.slabs import concat_slabs


@pytest.fixture(scope="module")
def mixed():
    return scan_slabs(40, 64, None, (2.0, 4.0), 1, generator=7, mix=(0.4, 0.3, 0.3))


def test_mix_order_and_shapes(mixed):
    assert mixed.activity.shape == (40, 3, 64, 64) and len(mixed.kinds) == 40
    counts = {k: mixed.kinds.count(k) for k in ("body", "brain", "field")}
    assert all(c >= 5 for c in counts.values())
    assert mixed.kinds != tuple(sorted(mixed.kinds))  # interleaved, not grouped by kind
    assert bool((mixed.activity >= 0).all())
    only_brain = scan_slabs(6, 32, 2.0, 2.0, 0, generator=1, mix=(0.0, 1.0, 0.0))
    assert only_brain.kinds == ("brain",) * 6


def test_fields_of_view_hold_the_anatomy(mixed):
    fov = mixed.pixel_size_mm * 64
    for kind, lo, hi in (("body", 350.0, 600.0), ("brain", 200.0, 260.0)):
        sel = torch.tensor([k == kind for k in mixed.kinds])
        pixel = mixed.pixel_size_mm[sel]
        expected = ((fov[sel] >= lo - 1e-3) & (fov[sel] <= hi + 1e-3)) | (pixel == 1.5) | (pixel == 4.5)
        assert bool(expected.all()), kind
    assert float(mixed.pixel_size_mm.min()) >= 1.5 and float(mixed.pixel_size_mm.max()) <= 4.5


def test_merged_class_names_keep_each_kinds_tissues(mixed):
    names = mixed.class_names
    assert len(set(names)) == len(names)
    for i, kind in enumerate(mixed.kinds):
        present = {names[j] for j in mixed.labels[i].unique().tolist()}
        if kind == "brain":
            assert present & {"grey_matter", "white_matter", "scalp"} and not present & {"liver", "lung", "fat"}
        if kind == "body":
            assert "fat" in present and not present & {"grey_matter", "region_0"}


def test_field_slabs_change_smoothly_along_z():
    g = torch.Generator().manual_seed(3)
    s = field_slabs(8, 64, torch.full((8,), 3.0), torch.full((8,), 3.0), 2, g, LesionConfig(count=(0, 0)))
    assert s.activity.shape == (8, 5, 64, 64) and s.kinds == ("field",) * 8
    near = (s.activity[:, 2] - s.activity[:, 3]).abs().mean()
    far = (s.activity[:, 2] - s.activity[:, 4]).abs().mean()
    assert 0 < near < far


def test_determinism_concat_and_bad_mix():
    a = scan_slabs(6, 32, None, 2.0, 1, generator=5)
    b = scan_slabs(6, 32, None, 2.0, 1, generator=5)
    assert torch.equal(a.activity, b.activity) and a.kinds == b.kinds
    both = concat_slabs([a.select(torch.tensor([0])), a.select(torch.tensor([1, 2]))])
    assert torch.equal(both.activity, a.activity[:3])
    assert [both.class_names[j] for j in both.labels.flatten().tolist()] == [
        a.class_names[j] for j in a.labels[:3].flatten().tolist()
    ]
    with pytest.raises(ValueError, match="mix"):
        scan_slabs(2, 32, 2.0, 2.0, 0, mix=(0.0, 0.0, 0.0))
