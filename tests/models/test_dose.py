import math

import pytest
import torch

from petdiff.models.dose import REFERENCE_LOG10_COUNTS, dose_labels


def test_labels_are_log_counts_and_fraction():
    labels = dose_labels(torch.tensor([1e5, 2.5e5]), torch.tensor([0.25, 0.1]))
    assert labels.shape == (2, 2)
    assert labels[0].tolist() == pytest.approx([5.0 - REFERENCE_LOG10_COUNTS, 0.25])
    assert labels[1, 0].item() == pytest.approx(math.log10(2.5e5) - REFERENCE_LOG10_COUNTS, abs=1e-6)


def test_scalars_broadcast_to_the_batch():
    assert dose_labels(1e4, 0.5, batch=3).shape == (3, 2)
    assert torch.equal(dose_labels(torch.tensor([1e4, 1e6]), 0.5)[:, 1], torch.tensor([0.5, 0.5]))


@pytest.mark.parametrize(("counts", "fraction", "field"), [(0.0, 0.25, "count_level"), (float("nan"), 0.25,
                         "count_level"), (1e5, 0.0, "fraction"), (1e5, 1.5, "fraction"),
                         (torch.ones(3), torch.full((2,), 0.25), "count_level, fraction")])
def test_bad_doses_are_refused(counts, fraction, field):
    with pytest.raises(ValueError, match=field):
        dose_labels(counts, fraction)


def test_peak_density_is_the_smoothed_peak_of_the_centre_slice_in_counts_per_pixel():
    from petdiff.models.dose import density_from_labels, density_labels, peak_density

    low = torch.zeros(2, 3, 32, 32)
    low[0, 1] = 40.0  # a flat slice: the smoothed peak is its value
    low[1, 1, 8:24, 8:24] = 7.0
    low[1, 0] = 1000.0  # neighbours do not count
    assert torch.allclose(peak_density(low), torch.tensor([40.0, 7.0]), rtol=1e-5)
    labels = density_labels(low)
    assert labels.shape == (2, 1)
    assert torch.allclose(labels[:, 0], torch.log10(torch.tensor([40.0, 7.0])) - 1.0, atol=1e-6)
    assert torch.allclose(density_from_labels(labels), torch.tensor([40.0, 7.0]), rtol=1e-5)


def test_density_label_of_an_empty_tile_is_the_floor_not_minus_infinity():
    from petdiff.models.dose import density_labels

    labels = density_labels(torch.zeros(1, 1, 16, 16))
    assert torch.isfinite(labels).all() and float(labels) == pytest.approx(-4.0)
