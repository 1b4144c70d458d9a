"""SUVmax / MTV relative errors of the phantoms' hot lesions, per method, against the truth."""

from __future__ import annotations

import pytest
import torch

from petdiff.evaluate.lesion_scores import hot_lesions, lesion_errors

NAMES = ("other", "grey_matter", "hot_lesion")


def _phantom() -> tuple[torch.Tensor, torch.Tensor]:
    regions = torch.zeros(2, 1, 16, 16, dtype=torch.int64)
    regions[0, 0, 2:5, 2:5] = 2
    regions[0, 0, 10:12, 10:12] = 2  # a second lesion on the same slice
    regions[1, 0, 6:9, 6:9] = 2
    truth = torch.where(regions == 2, 8.0, 2.0)
    return regions, truth


def test_relative_errors_of_max_and_mtv():
    regions, truth = _phantom()
    assert len(hot_lesions(regions, NAMES)) == 3
    brighter = truth * 1.1
    wider = truth.clone()
    wider[0, 0, 2:5, 5] = 8.0  # lesion 1 grows by a column of 3 of its 9 pixels
    errors = lesion_errors({"truth": truth, "brighter": brighter, "wider": wider}, truth, regions, NAMES)
    assert errors["truth"]["max"] == {"bias": 0.0, "mean_abs": 0.0} and errors["truth"]["n"] == 3
    assert errors["brighter"]["max"]["bias"] == pytest.approx(0.1) and errors["brighter"]["mtv_ml"]["bias"] == 0.0
    # the mask is the true lesion: the isocontour stays inside it, so a wider blob does not grow the MTV
    assert errors["wider"]["mtv_ml"]["bias"] == 0.0
    darker = truth.clone()
    darker[1, 0, 6:9, 6:9] = torch.tensor([[8.0, 2.0, 2.0], [2.0, 2.0, 2.0], [2.0, 2.0, 2.0]])
    shrunk = lesion_errors({"m": darker}, truth, regions, NAMES)["m"]["mtv_ml"]  # 1 of 9 pixels stays above 41 %
    assert shrunk["bias"] == pytest.approx((1 / 9 - 1) / 3) and shrunk["mean_abs"] == pytest.approx((8 / 9) / 3)
    assert lesion_errors({"m": truth}, truth, None, NAMES) is None
