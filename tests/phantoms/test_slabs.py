"""The slab container and its helpers: per-slab sizes, pixel coordinates, windows, the soft painter, merging."""

from __future__ import annotations

import pytest
import torch

from petdiff.phantoms.slabs import Canvas, Window, per_slab, pixel_coordinates, slice_offsets


def test_per_slab_values():
    g = torch.Generator().manual_seed(0)
    dev = torch.device("cpu")
    assert torch.equal(per_slab("x", 2.0, 3, g, dev), torch.full((3,), 2.0))
    drawn = per_slab("x", (1.5, 4.5), 200, g, dev)
    assert float(drawn.min()) >= 1.5 and float(drawn.max()) <= 4.5 and float(drawn.std()) > 0.5
    assert torch.equal(per_slab("x", torch.tensor([1.0, 2.0]), 2, g, dev), torch.tensor([1.0, 2.0]))
    for bad in (0.0, (2.0, 1.0), "2", torch.tensor([1.0, -1.0])):
        with pytest.raises(ValueError, match="x"):
            per_slab("x", bad, 2, g, dev)


def test_pixel_coordinates_follow_the_image_convention():
    x, y = pixel_coordinates(4, torch.tensor([2.0]))
    assert x.shape == (1, 1, 4, 4)
    assert torch.equal(x[0, 0, 0], torch.tensor([-3.0, -1.0, 1.0, 3.0]))  # column 0 on the left (x < 0)
    assert torch.equal(y[0, 0, :, 0], torch.tensor([3.0, 1.0, -1.0, -3.0]))  # row 0 at the top (y > 0)
    assert torch.equal(slice_offsets(1, torch.tensor([2.5])).flatten(), torch.tensor([-2.5, 0.0, 2.5]))


def test_window_take_put_round_trip_and_clamping():
    t = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    win = Window(torch.tensor([1]), torch.tensor([0.0]), torch.tensor([7.0]), 3, 8)  # clamped into the grid
    part = win.take(t)
    assert torch.equal(part, t[1:2, :, 0:3, 5:8])
    win.put(t, torch.zeros_like(part))
    assert float(t[1, :, 0:3, 5:8].abs().sum()) == 0 and float(t[0, :, 0:3, 5:8].sum()) > 0


def test_canvas_paints_back_to_front():
    c = Canvas(1, 1, 4, torch.device("cpu"))
    full = torch.ones(1, 1, 4, 4)
    c.paint(None, full, torch.tensor(2.0), 1)
    half = torch.zeros(1, 1, 4, 4)
    half[..., :2] = 1.0
    half[..., 2] = 0.25  # a partial-volume column
    c.paint(None, half, torch.tensor(10.0), 2)
    assert torch.allclose(c.activity[0, 0, 0], torch.tensor([10.0, 10.0, 4.0, 2.0]))
    assert torch.equal(c.labels[0, 0, 0], torch.tensor([2, 2, 1, 1]))
    win = Window(torch.tensor([0]), torch.tensor([3.0]), torch.tensor([3.0]), 2, 4)
    c.paint(win, torch.ones(1, 1, 2, 2), torch.tensor(0.5), 3)
    assert int((c.labels == 3).sum()) == 4 and float(c.activity[0, 0, 3, 3]) == 0.5
