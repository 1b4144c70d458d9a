"""Resampling of activity images to a square resolution: pad to a square, then area-average or interpolate."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from petdiff.utils.validation import check_image_batch


def square_padding(h: int, w: int) -> tuple[int, int]:
    """(rows added on top, columns added on the left) to centre an H×W image in a max(H, W) square."""
    side = max(h, w)
    return (side - h) // 2, (side - w) // 2


def pad_to_square(images: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) zero-padded to a centred max(H, W) square."""
    h, w = images.shape[-2:]
    side = max(h, w)
    top, left = square_padding(h, w)
    return F.pad(images, (left, side - w - left, top, side - h - top))


def resample_images(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Images (N, C, H, W) → (N, C, R, R): pad to a centred square, then area-average (down) or bilinear (up).

    Pixel values are concentrations, so they are kept: a constant image stays constant, and for an integer
    down-sampling factor the mean value is exact (the physical total, Σ x · pixel area, is preserved).
    """
    check_image_batch("images", images, channels=None)
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution: expected a positive int, found {resolution!r}")
    square = pad_to_square(images)
    side = square.shape[-1]
    if side == resolution:
        return square
    if resolution < side:
        return F.interpolate(square, size=(resolution, resolution), mode="area")
    return F.interpolate(square, size=(resolution, resolution), mode="bilinear", align_corners=False)
