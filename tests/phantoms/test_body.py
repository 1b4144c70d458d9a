"""Whole-body slab phantoms: shapes, reproducibility, FDG activity ratios, z-consistency, edges and cropping."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from petdiff.phantoms.body import body_slabs
from petdiff.phantoms.body_anatomy import BODY_CLASS_NAMES, SUV_RANGES, TISSUE
from petdiff.phantoms.lesions import LesionConfig


@pytest.fixture(scope="module")
def batch():
    return body_slabs(96, 96, (2.0, 4.5), (2.0, 4.0), 1, generator=11, lesions=LesionConfig(count=(0, 0)))


def _eroded(labels: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of pixels whose 3×3 in-plane neighbourhood is all class k (away from partial-volume edges)."""
    m = (labels == k).float().flatten(0, 1)[:, None]
    return (-F.max_pool2d(-m, 3, 1, 1) > 0.5)[:, 0].view(labels.shape)


def test_shapes_types_and_ranges(batch):
    n, s, g = 96, 3, 96
    assert batch.activity.shape == (n, s, g, g) and batch.activity.dtype == torch.float32
    assert batch.labels.shape == (n, s, g, g) and batch.labels.dtype == torch.int64
    assert batch.lesions.shape == (n, s, g, g) and batch.lesions.dtype == torch.int64
    assert bool((batch.activity >= 0).all()) and bool(torch.isfinite(batch.activity).all())
    assert int(batch.labels.min()) >= 0 and int(batch.labels.max()) < len(BODY_CLASS_NAMES)
    assert batch.class_names == BODY_CLASS_NAMES and batch.kinds == ("body",) * n and batch.context == 1
    assert bool(((batch.pixel_size_mm >= 2.0) & (batch.pixel_size_mm <= 4.5)).all())
    assert bool(((batch.slice_mm >= 2.0) & (batch.slice_mm <= 4.0)).all())
    assert batch.pixel_size_mm.std() > 0.3  # drawn per slab, not one value for all


def test_same_seed_same_slabs_other_seed_differs():
    a = body_slabs(4, 48, 4.0, 3.0, 1, generator=5)
    b = body_slabs(4, 48, 4.0, 3.0, 1, generator=torch.Generator().manual_seed(5))
    c = body_slabs(4, 48, 4.0, 3.0, 1, generator=6)
    assert torch.equal(a.activity, b.activity) and torch.equal(a.labels, b.labels)
    assert (a.activity != c.activity).flatten(1).any(1).all()


def test_every_tissue_appears_and_sits_in_its_suv_range(batch):
    neck = body_slabs(24, 96, (1.5, 2.5), 2.0, 1, generator=12, regions=("neck",), lesions=LesionConfig(count=(0, 0)))
    for name, (lo, hi, _) in SUV_RANGES.items():
        if name in ("air", "bowel", "disc", "marrow"):  # air is 0; bowel is patchy; discs blend with marrow
            continue
        k = TISSUE[name]
        source = neck if name in ("tonsil", "salivary", "thyroid") else batch
        core = _eroded(source.labels, k)
        assert int(core.sum()) > 20, f"{name} never appears"
        per_slab = (source.activity * core).sum((1, 2, 3)) / core.sum((1, 2, 3)).clamp_min(1)
        present = core.sum((1, 2, 3)) > 10
        values = per_slab[present]
        assert float(values.min()) > 0.8 * lo and float(values.max()) < 1.2 * hi, name


def test_fdg_ratios(batch):
    def mean_of(name: str) -> float:
        core = _eroded(batch.labels, TISSUE[name])
        return float(batch.activity[core].mean())

    lung, muscle, liver = mean_of("lung"), mean_of("muscle"), mean_of("liver")
    assert lung < muscle < liver
    assert 2.0 < liver < 2.7  # the reference region: mean ≈ 2.3
    myocardium = batch.activity[batch.labels == TISSUE["myocardium"]]
    assert float(myocardium.max()) > liver
    bladder = batch.labels == TISSUE["bladder"]
    with_bladder = bladder.sum((1, 2, 3)) > 50
    assert int(with_bladder.sum()) >= 3
    for i in torch.nonzero(with_bladder).flatten().tolist():
        others = (batch.labels[i] != TISSUE["bladder"]) & (batch.labels[i] != TISSUE["kidney_pelvis"])
        assert float(batch.activity[i][bladder[i]].max()) > float(batch.activity[i][others].max())


def test_neighbouring_slices_are_closer_than_distant_ones():
    s = body_slabs(24, 64, 3.0, 2.0, 3, generator=2)
    near = (s.activity[:, 3] - s.activity[:, 4]).abs().mean()
    far = (s.activity[:, 3] - s.activity[:, 6]).abs().mean()
    assert 0 < near < 0.6 * far
    changed = (s.activity[:, 3] != s.activity[:, 4]).flatten(1).any(1)
    assert bool(changed.all())  # real z-context: no slab is a stack of copies


def test_edges_are_partial_volume(batch):
    # Just outside the skin the activity falls off smoothly: background-labelled pixels with a fraction of fat.
    fat = batch.activity.flatten(2).amax(2).clamp_min(1e-3)
    outside = batch.labels == 0
    partial = outside & (batch.activity > 0.02) & (batch.activity < 0.5 * fat[..., None, None])
    assert bool((partial.flatten(1).sum(1) > 0).float().mean() > 0.8)
    # Far more distinct values than tissue classes: not piecewise constant.
    assert batch.activity[0, 1].unique().numel() > 20 * batch.labels[0, 1].unique().numel()


def _widest_run(row: torch.Tensor) -> int:
    """Length of the longest run of True in a 1D bool tensor."""
    best = run = 0
    for v in row.tolist():
        run = run + 1 if v else 0
        best = max(best, run)
    return best


def test_body_width_and_field_of_view_cropping():
    big = body_slabs(48, 128, 4.7, 3.0, 0, generator=3)  # 600 mm field of view: the body fits
    widths = []
    for i in range(len(big)):
        inside = big.labels[i, 0] > 0
        widths.append(max(_widest_run(r) for r in inside) * 4.7)
    widths_t = torch.tensor(widths)
    assert 280 < float(widths_t.median()) < 520 and float(widths_t.max()) < 600
    assert float(widths_t.min()) < 250  # necks are narrow
    small = body_slabs(48, 128, 1.2, 3.0, 0, generator=3)  # 154 mm: most slabs show a part of the body
    touches = (small.labels[:, 0, :, 0] > 0).any(1) & (small.labels[:, 0, :, -1] > 0).any(1)
    assert float(touches.float().mean()) > 0.6


def test_per_slab_sizes_from_a_tensor_and_bad_input():
    sizes = torch.tensor([1.5, 3.0, 4.5])
    s = body_slabs(3, 32, sizes, 2.5, 0, generator=0)
    assert torch.equal(s.pixel_size_mm, sizes) and s.activity.shape == (3, 1, 32, 32)
    with pytest.raises(ValueError, match="pixel_size_mm"):
        body_slabs(3, 32, torch.tensor([1.0, 2.0]), 2.5, 0, generator=0)
    with pytest.raises(ValueError, match="slice_mm"):
        body_slabs(3, 32, 2.0, (3.0, 1.0), 0, generator=0)
    with pytest.raises(ValueError, match="context"):
        body_slabs(3, 32, 2.0, 2.0, -1, generator=0)
    with pytest.raises(ValueError, match="grid"):
        body_slabs(3, 8, 2.0, 2.0, 1, generator=0)
    with pytest.raises(ValueError, match="regions"):
        body_slabs(3, 32, 2.0, 2.0, 1, generator=0, regions=("head",))


def test_regions_restrict_the_anatomy():
    thorax = body_slabs(12, 64, 4.0, 3.0, 0, generator=4, regions=("thorax",))
    pelvis = body_slabs(12, 64, 4.0, 3.0, 0, generator=4, regions=("pelvis",))
    assert int((thorax.labels == TISSUE["lung"]).sum()) > 0 and int((thorax.labels == TISSUE["bladder"]).sum()) == 0
    assert int((pelvis.labels == TISSUE["lung"]).sum()) == 0
