"""Procedural brain phantoms: reproducibility, anatomy, activity calibration and BrainWeb-like statistics."""

from __future__ import annotations

import math

import pytest
import torch

import petdiff.phantoms.procedural as procedural
from petdiff.phantoms import CLASS_NAMES, PhantomConfig, load_brainweb, procedural_phantoms

IDX = {name: k for k, name in enumerate(CLASS_NAMES)}
HEAD_THRESHOLD = 0.5  # BrainWeb's smallest non-zero level is 1; the skull (≈ 0) is not counted as head


@pytest.fixture(scope="module")
def batch():
    return procedural_phantoms(240, 64, generator=123)


def test_same_seed_same_phantoms_different_seed_differs():
    a = procedural_phantoms(6, 64, generator=7)
    b = procedural_phantoms(6, 64, generator=torch.Generator().manual_seed(7))
    c = procedural_phantoms(6, 64, generator=8)
    assert torch.equal(a.activity, b.activity) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.activity, c.activity)
    assert (a.activity != c.activity).flatten(1).any(1).all()  # every phantom differs, not just one


def test_chunked_rendering_does_not_change_the_result(monkeypatch):
    whole = procedural_phantoms(5, 32, generator=3)
    monkeypatch.setattr(procedural, "_CHUNK_PIXELS", 32 * 32 * 2)
    assert torch.equal(procedural_phantoms(5, 32, generator=3).activity, whole.activity)


@pytest.mark.parametrize("resolution", [32, 48, 128, 512])
def test_any_resolution(resolution):
    ph = procedural_phantoms(2, resolution, generator=0)
    assert ph.activity.shape == (2, 1, resolution, resolution) and ph.activity.dtype == torch.float32
    assert ph.labels.shape == (2, 1, resolution, resolution) and ph.labels.dtype == torch.int64
    assert ph.concentrations.shape == (2, len(CLASS_NAMES)) and len(ph) == 2


def test_head_fraction_is_resolution_independent():
    lo = procedural_phantoms(8, 32, generator=5).activity > HEAD_THRESHOLD
    hi = procedural_phantoms(8, 128, generator=5).activity > HEAD_THRESHOLD
    frac_lo, frac_hi = lo.float().mean((1, 2, 3)), hi.float().mean((1, 2, 3))
    # Same phantoms sampled at two resolutions: areas agree up to the ~perimeter/pixel sampling error.
    assert torch.all((frac_lo - frac_hi).abs() < 0.03)


def test_labels_are_consistent_with_activity(batch):
    rebuilt = torch.gather(batch.concentrations, 1, batch.labels.flatten(1)).reshape(batch.activity.shape)
    assert torch.equal(rebuilt, batch.activity)
    assert float(batch.activity.min()) >= 0
    assert torch.all(batch.activity[batch.labels == IDX["background"]] == 0)


def test_fdg_like_ratios_within_configured_ranges(batch):
    cfg = PhantomConfig()
    conc = batch.concentrations
    ratio = conc[:, IDX["grey_matter"]] / conc[:, IDX["white_matter"]]
    assert float(ratio.min()) >= cfg.grey_white_ratio[0] - 1e-5 and float(ratio.max()) <= cfg.grey_white_ratio[1] + 1e-5
    assert abs(float(ratio.mean()) - 4.0) < 0.2  # grey ≈ 4× white on average
    grey = conc[:, IDX["grey_matter"]]
    assert float(grey.min()) >= cfg.grey_level[0] - 1e-5 and float(grey.max()) <= cfg.grey_level[1] + 1e-5
    assert torch.all(conc[:, IDX["csf"]] == 0)  # CSF ≈ 0 (exactly 0 by default)
    for low_class in ("scalp", "skull"):
        assert torch.all(conc[:, IDX[low_class]] < 0.5 * grey + 1e-6)


def test_per_phantom_variation_of_activity(batch):
    grey = batch.concentrations[:, IDX["grey_matter"]]
    # U(5, 8) has standard deviation 3/√12 ≈ 0.87.
    assert abs(float(grey.std()) - 3 / math.sqrt(12)) < 0.15


def test_anatomy_by_level():
    mid = procedural_phantoms(40, 64, generator=1, lesions=False, config=PhantomConfig(level=(0.4, 0.55)))
    centre = mid.labels[:, 0, 20:44, 22:42]
    assert (centre == IDX["csf"]).flatten(1).any(1).float().mean() > 0.9  # ventricles near the centre
    assert (mid.labels == IDX["deep_grey"]).flatten(1).any(1).float().mean() > 0.9  # basal ganglia / thalami
    for tissue in ("scalp", "grey_matter", "white_matter"):
        assert (mid.labels == IDX[tissue]).flatten(1).any(1).all()
    low = procedural_phantoms(20, 64, generator=2, lesions=False, config=PhantomConfig(level=(0.0, 0.15)))
    assert (low.labels == IDX["cerebellum"]).flatten(1).any(1).all()
    top = procedural_phantoms(20, 64, generator=3, lesions=False, config=PhantomConfig(level=(0.9, 1.0)))
    head = lambda ph: (ph.labels > 0).float().mean((1, 2, 3))  # noqa: E731
    assert float(head(top).mean()) < 0.6 * float(head(mid).mean())  # slices near the vertex are smaller
    assert not (top.labels == IDX["deep_grey"]).any()


def test_lesions_flag():
    without = procedural_phantoms(30, 64, generator=4, lesions=False)
    assert not ((without.labels == IDX["hot_lesion"]) | (without.labels == IDX["cold_lesion"])).any()
    with_ = procedural_phantoms(30, 64, generator=4, lesions=True)
    assert (with_.labels == IDX["hot_lesion"]).any() and (with_.labels == IDX["cold_lesion"]).any()


def test_partial_volume_rendering_keeps_geometry():
    point = procedural_phantoms(6, 64, generator=9)
    pv = procedural_phantoms(6, 64, generator=9, supersample=4)
    rel = (pv.activity.sum((1, 2, 3)) - point.activity.sum((1, 2, 3))).abs() / point.activity.sum((1, 2, 3))
    assert torch.all(rel < 0.05)
    assert float(pv.activity.min()) >= 0
    # Partial volume makes intermediate values: more distinct levels than there are classes.
    assert pv.activity[0].unique().numel() > len(CLASS_NAMES)
    assert torch.equal(pv.concentrations, point.concentrations)


def test_statistics_comparable_to_brainweb(batch, brainweb_path):
    bw = load_brainweb(brainweb_path)

    def per_slice(x):
        head = x > HEAD_THRESHOLD
        frac = head.float().mean((1, 2, 3))
        mean_in_head = (x * head).sum((1, 2, 3)) / head.sum((1, 2, 3)).clamp_min(1)
        return frac, mean_in_head

    for ours, ref in zip(per_slice(batch.activity), per_slice(bw)):
        # The band is BrainWeb's own slice-to-slice spread: our average slice must look like a typical one,
        # and our spread must be of the same order.
        assert abs(float(ours.mean()) - float(ref.mean())) < float(ref.std())
        assert 0.33 < float(ours.std()) / float(ref.std()) < 3.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n:"),
        ({"n": 2, "resolution": 4}, "resolution"),
        ({"n": 2, "supersample": 0}, "supersample"),
        ({"n": 2, "config": {"grey_level": (1, 2)}}, "config"),
        ({"n": 2, "generator": "seed"}, "generator"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        procedural_phantoms(**kwargs)


def test_config_validation():
    with pytest.raises(ValueError, match="grey_level"):
        PhantomConfig(grey_level=(5.0, 4.0))
    with pytest.raises(ValueError, match="level"):
        PhantomConfig(level=(0.5, 1.5))
