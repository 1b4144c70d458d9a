"""Batch sources: the dose labels the pair networks are told, from a pair file and from on-the-fly pairs."""

import numpy as np
import pytest
import torch

from petdiff.data.pair_file import PairFileDataset, write_pairs
from petdiff.data.pairs import PairSimulator
from petdiff.models.dose import dose_labels
from petdiff.phantoms.label_fields import label_field_phantoms
from petdiff.physics import Projector
from petdiff.training.batches import DatasetBatches, SimulatedPairBatches


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PETDIFF_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "matrix-cache"))


def test_pair_file_batches_carry_the_dose_of_each_pair(tmp_path):
    g = torch.Generator().manual_seed(0)
    simulator = PairSimulator(Projector(16), counts=(1e4, 1e5), fraction=(0.1, 0.5), n_iter=3)
    pairs = simulator(label_field_phantoms(6, 16, generator=g).activity, generator=g)
    path = write_pairs(tmp_path / "p.npz", [pairs], 6, {"resolution": 16})
    dataset = PairFileDataset(path)
    images, condition, labels = next(iter(DatasetBatches(dataset, 6, torch.device("cpu"), 0, 1, seed=0,
                                                         target="truth", with_dose=True)))
    assert images.shape == condition.shape == (6, 1, 16, 16) and labels.shape == (6, 2)
    counts = torch.stack([dataset[i]["counts"] for i in range(6)])
    fraction = torch.stack([dataset[i]["fraction"] for i in range(6)])
    expected = dose_labels(counts * fraction, fraction)
    # every row of the batch is one of the file's pairs, with that pair's own dose
    for row, low in zip(labels, condition):
        match = [i for i in range(6) if torch.equal(dataset[i]["low_dose"], low)]
        assert len(match) == 1 and torch.allclose(row, expected[match[0]])
    _, _, none = next(iter(DatasetBatches(dataset, 2, torch.device("cpu"), 0, 1, seed=0)))
    assert none is None


def test_simulated_batches_label_the_drawn_dose():
    data = {"phantoms": "mixed", "resolution": 16, "counts": [1e4, 1e5], "fraction": [0.1, 0.5], "n_iter": 2,
            "normalization": "quantitative", "target": "truth", "dose_labels": True}
    batches = SimulatedPairBatches(data, 4, torch.device("cpu"), torch.Generator().manual_seed(1))
    _, _, labels = next(iter(batches))
    assert labels.shape == (4, 2)
    assert bool(((labels[:, 1] >= 0.1) & (labels[:, 1] <= 0.5)).all())
    low_counts = 10 ** (labels[:, 0] + 5)
    assert bool(((low_counts >= 1e4 * labels[:, 1] * 0.999) & (low_counts <= 1e5 * labels[:, 1] * 1.001)).all())


def test_informative_pairs_leave_out_patches_without_counts(tmp_path):
    from petdiff.data.pair_file import PairFileDataset
    from petdiff.training.batches import informative_pairs
    from tests.conftest import save_tiny_scan_pairs

    dataset = PairFileDataset(save_tiny_scan_pairs(tmp_path / "scans.npz", n=12))
    density = np.asarray(dataset.arrays["density"])
    threshold = float(np.median(density))
    kept = informative_pairs(dataset, threshold)
    assert len(kept) == int((density >= threshold).sum()) and 0 < len(kept) < len(dataset)
    assert all(float(kept[i]["density"]) >= threshold for i in range(len(kept)))
    assert informative_pairs(dataset, None) is dataset
    with pytest.raises(ValueError, match="min_density"):
        informative_pairs(dataset, 1e12)
