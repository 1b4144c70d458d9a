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
