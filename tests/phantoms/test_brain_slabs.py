"""Brain slabs: shapes, reproducibility, tracer contrasts in SUV, partial volume, z-context and field of view."""

from __future__ import annotations

import pytest
import torch

from petdiff.phantoms.brain_slabs import brain_slabs
from petdiff.phantoms.config import CLASS_NAMES, CSF, DEEP_GREY, GREY, WHITE
from petdiff.phantoms.lesions import LesionConfig

NONE = LesionConfig(count=(0, 0))


@pytest.fixture(scope="module")
def fdg():
    return brain_slabs(16, 96, (1.8, 2.6), 2.0, 1, generator=21, tracers=(1.0, 0.0, 0.0), lesions=NONE)


def test_shapes_types_and_determinism(fdg):
    assert fdg.activity.shape == (16, 3, 96, 96) and fdg.activity.dtype == torch.float32
    assert fdg.labels.dtype == torch.int64 and fdg.lesions.shape == fdg.labels.shape
    assert bool((fdg.activity >= 0).all()) and fdg.class_names == CLASS_NAMES and fdg.kinds == ("brain",) * 16
    a = brain_slabs(3, 48, 2.5, 2.0, 1, generator=1)
    b = brain_slabs(3, 48, 2.5, 2.0, 1, generator=1)
    c = brain_slabs(3, 48, 2.5, 2.0, 1, generator=2)
    assert torch.equal(a.activity, b.activity) and torch.equal(a.lesions, b.lesions)
    assert not torch.equal(a.activity, c.activity)


def test_fdg_grey_white_csf_levels(fdg):
    for i in range(len(fdg)):
        act, lab = fdg.activity[i], fdg.labels[i]
        grey = act[lab == GREY]
        white = act[lab == WHITE]
        if grey.numel() < 50 or white.numel() < 50:
            continue
        assert 6.0 < float(grey.quantile(0.9)) < 13.0
        assert 2.2 < float(white.median()) < 4.5
        csf = act[lab == CSF]
        assert float(csf.quantile(0.1)) < float(white.median())


def test_amyloid_and_striatal_contrasts():
    amyloid = brain_slabs(8, 96, 2.0, 2.0, 0, generator=3, tracers=(0.0, 1.0, 0.0), lesions=NONE)
    striatal = brain_slabs(8, 96, 2.0, 2.0, 0, generator=3, tracers=(0.0, 0.0, 1.0), lesions=NONE)
    for s in (amyloid, striatal):
        assert bool((s.activity >= 0).all())
    for i in range(8):
        lab = amyloid.labels[i]
        if (lab == GREY).sum() > 50 and (lab == WHITE).sum() > 50:
            assert float(amyloid.activity[i][lab == WHITE].median()) > float(amyloid.activity[i][lab == GREY].median())
    has_striatum = [(striatal.labels[i] == DEEP_GREY).sum() > 20 for i in range(8)]
    for i in [i for i, h in enumerate(has_striatum) if h]:
        lab, act = striatal.labels[i], striatal.activity[i]
        assert float(act[lab == DEEP_GREY].max()) > 2.0 * float(act[lab == GREY].median())


def test_partial_volume_and_smooth_z():
    s = brain_slabs(8, 96, 2.0, 2.0, 3, generator=4, lesions=NONE)
    # Tissue maps are smooth: many intermediate values between white and grey matter, not a few levels.
    assert s.activity[0, 3].unique().numel() > 1000
    near = (s.activity[:, 3] - s.activity[:, 4]).abs().mean()
    far = (s.activity[:, 3] - s.activity[:, 6]).abs().mean()
    assert 0 < near < 0.7 * far


def test_field_of_view_and_lesions():
    small = brain_slabs(16, 128, 1.2, 2.0, 0, generator=5, lesions=NONE)  # 154 mm: a part of the head
    edges = [small.labels[:, 0, 0], small.labels[:, 0, -1], small.labels[:, 0, :, 0], small.labels[:, 0, :, -1]]
    touches = (torch.cat(edges, 1) > 0).any(1)
    assert float(touches.float().mean()) > 0.6
    big = brain_slabs(16, 128, 2.2, 2.0, 0, generator=5, lesions=NONE)  # 282 mm: the whole head
    border = torch.cat([big.labels[:, 0, 0], big.labels[:, 0, -1], big.labels[:, 0, :, 0], big.labels[:, 0, :, -1]], 1)
    assert int((border > 0).sum()) == 0
    with_lesions = brain_slabs(16, 64, 3.0, 3.0, 1, generator=6, lesions=LesionConfig(count=(2, 2)))
    assert bool((with_lesions.lesions > 0).flatten(1).any(1).float().mean() > 0.8)
    with pytest.raises(ValueError, match="tracers"):
        brain_slabs(2, 32, 2.0, 2.0, 0, tracers=(0.0, 0.0, 0.0))
