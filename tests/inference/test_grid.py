"""Resampling to the model's pixel size and back: shapes, counts preserved, concentrations preserved."""

from __future__ import annotations

import pytest
import torch

from petdiff.inference.grid import from_model_grid, model_shape, to_model_grid


def _blob(h, w):
    """A smooth non-negative slice that is zero near the border."""
    y = torch.linspace(-1, 1, h).view(-1, 1)
    x = torch.linspace(-1, 1, w).view(1, -1)
    return (torch.exp(-(x**2 + y**2) / 0.1) * 100.0).view(1, 1, h, w)


def test_model_shape_covers_the_same_field_of_view():
    assert model_shape((128, 128), (2.0, 2.0), (4.0, 4.0)) == (64, 64)
    assert model_shape((96, 80), (3.0, 3.0), (4.0, 4.0)) == (72, 60)
    with pytest.raises(ValueError, match="model_pixel_size"):
        model_shape((8, 8), (1.0, 1.0), (0.0, 1.0))


@pytest.mark.parametrize(("shape", "pixel"), [((128, 128), (2.0, 2.0)), ((96, 80), (3.0, 2.5))])
def test_counts_are_preserved_there_and_back(shape, pixel):
    x = _blob(*shape)
    down = to_model_grid(x, pixel, (4.0, 4.0), "counts")
    assert down.shape[-2:] == model_shape(shape, pixel, (4.0, 4.0))
    torch.testing.assert_close(down.sum(), x.sum(), rtol=2e-3, atol=0)
    back = from_model_grid(down, shape, "counts")
    assert back.shape == x.shape
    torch.testing.assert_close(back.sum(), x.sum(), rtol=2e-3, atol=0)


def test_concentrations_keep_their_values():
    x = torch.full((2, 1, 128, 96), 5.5)
    down = to_model_grid(x, (2.0, 2.0), (4.0, 4.0), "Bq/mL")
    assert down.shape == (2, 1, 64, 48)
    torch.testing.assert_close(down, torch.full_like(down, 5.5))
    blob = _blob(128, 128)
    suv = to_model_grid(blob, (2.0, 2.0), (4.0, 4.0), "SUV")
    torch.testing.assert_close(suv.mean(), blob.mean(), rtol=2e-3, atol=0)  # mean value, not total, is kept


def test_same_pixel_size_is_a_no_op():
    x = _blob(40, 30)
    assert to_model_grid(x, (4.0, 4.0), (4.0, 4.0), "counts") is x
