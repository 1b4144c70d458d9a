"""Sliding-window tiling: identity is exact, per-pixel functions leave no seam, tile offsets blend smoothly."""

from __future__ import annotations

import pytest
import torch

from petdiff.inference.tiling import sliding_window, window


@pytest.mark.parametrize("shape", [(128, 128), (96, 80), (40, 30), (64, 64)])
@pytest.mark.parametrize("kind", ["gaussian", "cosine"])
def test_identity_reproduces_the_input_exactly(shape, kind):
    x = torch.rand(2, 1, *shape, generator=torch.Generator().manual_seed(0))
    out = sliding_window(lambda t: t, x, tile=64, overlap=0.5, kind=kind, batch_size=3)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, x)


def test_per_pixel_function_leaves_no_seam_on_a_flat_phantom():
    x = torch.full((1, 1, 128, 96), 3.0)
    out = sliding_window(lambda t: 2.0 * t**2 + 1.0, x, tile=48, overlap=0.25)
    assert torch.equal(out, torch.full_like(x, 19.0))


@pytest.mark.parametrize("kind", ["gaussian", "cosine"])
def test_tile_dependent_offsets_blend_without_a_step(kind):
    # Each tile adds its own constant (a network that is not translation invariant): the blend must fade
    # between tiles, so no neighbouring pixels differ by more than a small part of the offsets' spread.
    offsets = iter((torch.arange(9) / 8).tolist())  # 3×3 tiles; neighbours differ by 1/8 (across) or 3/8 (down)

    def biased(t):
        return t + torch.tensor([next(offsets) for _ in range(len(t))]).view(-1, 1, 1, 1)

    x = torch.zeros(1, 1, 128, 128)
    out = sliding_window(biased, x, tile=64, overlap=0.5, kind=kind, batch_size=1)
    step = max(out.diff(dim=-1).abs().max().item(), out.diff(dim=-2).abs().max().item())
    assert out.max() - out.min() > 0.5  # the tiles did differ
    assert step < 0.1  # a hard stitch would jump by 3/8 between vertical neighbours


def test_small_image_is_padded_to_one_tile():
    seen = []

    def record(t):
        seen.append(tuple(t.shape))
        return t + 1

    x = torch.rand(3, 1, 20, 30)
    out = sliding_window(record, x, tile=64)
    assert seen == [(3, 1, 64, 64)] and out.shape == x.shape
    torch.testing.assert_close(out, x + 1)


def test_window_and_argument_checks():
    w = window((9, 7))
    assert w.shape == (9, 7) and w.max() == 1 and w.min() > 0 and w[4, 3] == 1
    x = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match="overlap"):
        sliding_window(lambda t: t, x, tile=4, overlap=0.1)
    with pytest.raises(ValueError, match=r"fn: expected output tiles of shape"):
        sliding_window(lambda t: t[..., :2], x, tile=4)


def test_object_tiles_keep_the_tiles_of_the_object_not_the_air():
    from petdiff.inference.tiling import object_tiles

    stacks = torch.zeros(2, 3, 128, 128)
    stacks[0, :, 0:20, 0:20] = 5.0  # an object in one corner (tiles start every 32 pixels)
    tiles = object_tiles(stacks, (64, 64))
    assert tiles[0].shape[1:] == (3, 64, 64) and len(tiles[0]) == 1  # only the corner tile holds it
    assert float(tiles[0][0, 1].amax()) == 5.0
    assert len(tiles[1]) == 0  # an empty slice has no object tiles
    small = object_tiles(torch.ones(1, 1, 40, 50), (64, 64))[0]
    assert small.shape == (1, 1, 64, 64)  # padded to a tile
