import numpy as np
import pytest
import torch

from petdiff.data.normalization import Normalizer
from petdiff.data.pair_file import PairFileDataset, write_pairs
from petdiff.data.pairs import PairSimulator, perturb_activity
from petdiff.data.sources import FileSource, phantom_source
from petdiff.physics import Projector, expected_sinogram, poisson_sinogram, thin
from petdiff.recon import mlem

RES = 32


@pytest.fixture(scope="module")
def projector(tmp_path_factory):
    import os

    os.environ.setdefault("PETDIFF_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    return Projector(RES)


@pytest.fixture(scope="module")
def phantoms():
    source = phantom_source("procedural", RES)
    return source.draw(6, torch.Generator().manual_seed(1))


def test_same_seed_same_pairs_and_different_seed_differs(projector, phantoms):
    activity, labels = phantoms
    sim = PairSimulator(projector, counts=2e5, fraction=0.25, n_iter=10, alpha=30.0)
    a = sim(activity, labels, torch.Generator().manual_seed(5))
    b = sim(activity, labels, torch.Generator().manual_seed(5))
    c = sim(activity, labels, torch.Generator().manual_seed(6))
    assert torch.equal(a.full_dose, b.full_dose) and torch.equal(a.low_dose, b.low_dose)
    assert not torch.equal(a.low_dose, c.low_dose)


def test_pair_coupling_low_counts_never_exceed_full(projector, phantoms):
    # The coupling the simulator relies on: the low-dose sinogram is a thinning of the full one.
    activity, _ = phantoms
    g = torch.Generator().manual_seed(0)
    full = poisson_sinogram(activity, projector, counts=1e5, generator=g)
    low = thin(full, torch.full((activity.shape[0],), 0.25), generator=g)
    assert bool((low <= full).all())
    assert abs(float(low.sum() / full.sum()) - 0.25) < 5 * np.sqrt(0.25 * 0.75 / float(full.sum()))


def test_pairs_match_manual_pipeline_and_invert_to_recon_units(projector, phantoms):
    activity, labels = phantoms
    sim = PairSimulator(projector, counts=2e5, fraction=0.5, n_iter=8)
    pairs = sim(activity, labels, torch.Generator().manual_seed(3))
    # Replay the same random stream by hand.
    g = torch.Generator().manual_seed(3)
    sim.draw_settings(activity.shape[0], g)
    unit = expected_sinogram(activity, projector, counts=1.0)
    full_counts = torch.poisson(unit.true * 2e5, generator=g)
    low_counts = thin(full_counts, torch.full((activity.shape[0],), 0.5), generator=g)
    full = mlem(full_counts, projector, n_iter=8)
    low = mlem(low_counts, projector, n_iter=8)
    inv = sim.normalizer.invert
    torch.testing.assert_close(inv(pairs.full_dose, pairs.scale), full, rtol=1e-4, atol=1e-3)
    # The low-dose image is in full-dose units: low / fraction.
    torch.testing.assert_close(inv(pairs.low_dose, pairs.scale), low / 0.5, rtol=1e-4, atol=1e-3)
    # The truth is t·λ, whose total equals the expected true counts (columns of A sum to 1).
    torch.testing.assert_close(
        inv(pairs.truth, pairs.scale).sum(dim=(1, 2, 3)), torch.full((6,), 2e5), rtol=1e-4, atol=0
    )


def test_normalization_round_trip_and_range(projector, phantoms):
    activity, _ = phantoms
    norm = Normalizer("quantitative")
    scale = norm.scale(activity, 1.0)
    x = norm.normalize(activity, scale)
    torch.testing.assert_close(norm.invert(x, scale), activity, rtol=1e-6, atol=1e-5)
    assert float(x.min()) == pytest.approx(-1.0)
    ref = Normalizer("reference")
    y = ref.normalize(activity, ref.scale(activity, 1.0))
    torch.testing.assert_close(y.flatten(1).amax(1), torch.ones(6))  # x / (max / 2) - 1 peaks at 1
    with pytest.raises(ValueError, match="normalization"):
        Normalizer("minmax")


def test_settings_ranges_are_respected(projector):
    sim = PairSimulator(projector, counts=(1e5, 1e6), fraction=(0.1, 0.5))
    counts, fraction = sim.draw_settings(4000, torch.Generator().manual_seed(0))
    assert 1e5 <= float(counts.min()) and float(counts.max()) <= 1e6
    assert 0.1 <= float(fraction.min()) and float(fraction.max()) <= 0.5
    # log-uniform: the median of log counts is the midpoint of the log range
    assert abs(float(counts.log().median()) - np.log(np.sqrt(1e11))) < 0.1
    with pytest.raises(ValueError, match="fraction"):
        PairSimulator(projector, fraction=(0.5, 0.1))
    with pytest.raises(ValueError, match="counts"):
        PairSimulator(projector, counts=-1)


def test_perturb_activity_scales_classes_and_keeps_background(phantoms):
    activity, labels = phantoms
    out = perturb_activity(activity, labels, alpha=5.0, generator=torch.Generator().manual_seed(0))
    assert bool((out[activity == 0] == 0).all())
    # every pixel of a class is scaled by the same factor
    ratio = torch.where(activity > 0, out / activity.clamp_min(1e-12), torch.zeros_like(out))
    for i in range(activity.shape[0]):
        for c in labels[i].unique():
            r = ratio[i][(labels[i] == c) & (activity[i] > 0)]
            if r.numel():
                assert float(r.max() - r.min()) <= 1e-4 * float(r.max())
    assert not torch.allclose(out, activity)


def test_pair_file_round_trip_memmapped(tmp_path, projector, phantoms):
    activity, labels = phantoms
    sim = PairSimulator(projector, counts=1e5, n_iter=4)
    g = torch.Generator().manual_seed(0)
    chunks = [sim(activity[:4], labels[:4], g), sim(activity[4:], labels[4:], g)]
    path = write_pairs(tmp_path / "pairs.npz", iter(chunks), 5, {"resolution": RES})
    ds = PairFileDataset(path)
    assert len(ds) == 5 and ds.resolution == RES and ds.meta["resolution"] == RES
    assert isinstance(ds.arrays["full_dose"], np.memmap)
    torch.testing.assert_close(ds[4]["full_dose"], chunks[1].full_dose[0])
    torch.testing.assert_close(ds[2]["scale"], chunks[0].scale[2])
    # also a plain np.load reads it
    assert np.load(path)["low_dose"].shape == (5, 1, RES, RES)


def test_pair_file_errors(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="corrupt or truncated"):
        PairFileDataset(bad)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match="missing fields"):
        PairFileDataset(other)
    with pytest.raises(ValueError, match="not found"):
        PairFileDataset(tmp_path / "nope.npz")


def test_truncated_pair_file_is_rejected(tmp_path, projector, phantoms):
    activity, labels = phantoms
    sim = PairSimulator(projector, counts=1e5, n_iter=2)
    path = write_pairs(tmp_path / "p.npz", iter([sim(activity, labels)]), 6, {})
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.npz"):
        PairFileDataset(cut)


def test_file_source_reads_brainweb_with_labels(brainweb_path):
    source = FileSource(brainweb_path)
    assert source.resolution == 64 and len(source) > 200
    activity, labels = source.draw(3, torch.Generator().manual_seed(0))
    assert activity.shape == (3, 1, 64, 64) and labels.shape == (3, 1, 64, 64)


def test_file_source_reads_image_arrays_and_resamples(tmp_path):
    images = np.zeros((3, 32, 32), np.float32)
    images[:, 8:24, 8:24] = 2.0
    images[1] = 0.0  # an empty slice is dropped (it cannot be scaled to a count level)
    np.save(tmp_path / "vol.npy", images)
    source = FileSource(tmp_path / "vol.npy", resolution=16)
    assert len(source) == 2 and source.resolution == 16 and source.labels is not None
    with pytest.raises(ValueError, match=r"vol0\.npy"):
        FileSource(tmp_path / "vol0.npy")


def test_random_contrast_makes_any_tissue_the_hottest(projector, phantoms):
    activity, labels = phantoms
    g = torch.Generator().manual_seed(0)
    flat = torch.cat([perturb_activity(activity, labels, alpha=10.0, generator=g, flat=True) for _ in range(20)])
    fdg = torch.cat([perturb_activity(activity, labels, alpha=200.0, generator=g) for _ in range(20)])
    all_labels = labels.repeat(20, 1, 1, 1)

    def hottest(x):
        return torch.stack([all_labels[i][x[i] == x[i].max()][0] for i in range(x.shape[0])])

    # A mild FDG-like perturbation keeps one hottest class almost always; the flat prior spreads it around.
    assert hottest(flat).unique().numel() > hottest(fdg).unique().numel()
    sim = PairSimulator(projector, alpha=10.0, random_contrast=1.0, n_iter=2)
    assert sim.random_contrast == 1.0
    with pytest.raises(ValueError, match="random_contrast"):
        PairSimulator(projector, random_contrast=1.5)
