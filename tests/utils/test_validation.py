import pytest
import torch

from petdiff.utils import check_fraction, check_image_batch, check_non_negative


def test_validation_messages_name_the_argument():
    with pytest.raises(ValueError, match=r"activity: expected shape \(B, C, H, W\)"):
        check_image_batch("activity", torch.zeros(3, 3))
    with pytest.raises(ValueError, match="activity: expected non-negative"):
        check_non_negative("activity", torch.tensor([1.0, -2.0]))
    with pytest.raises(ValueError, match="NaN"):
        check_non_negative("activity", torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match=r"fraction: expected a number in \(0, 1\]"):
        check_fraction("fraction", 1.5)
