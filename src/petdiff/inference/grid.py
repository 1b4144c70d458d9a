"""Slices onto the model's pixel size and back (antialiased bilinear), keeping counts or concentrations.

A slice of H×W pixels of size (dy, dx) mm covers H·dy × W·dx mm; on the model's pixel size (my, mx) it has
H' = round(H·dy / my) × W' = round(W·dx / mx) pixels over the same field of view. Concentrations (Bq/mL,
SUV) are intensive: the values are interpolated as they are. Counts are extensive: each value is also
scaled by the pixel-area ratio (H·W)/(H'·W'), so a slice's total counts are kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from petdiff.utils.validation import check_image_batch

EXTENSIVE_UNITS = ("counts",)


def model_shape(shape: tuple[int, int], pixel_size: tuple[float, float],
                model_pixel_size: tuple[float, float]) -> tuple[int, int]:
    """(H', W') covering the same field of view as `shape` at `pixel_size` with the model's pixel size (mm)."""
    (h, w), (dy, dx), (my, mx) = shape, pixel_size, model_pixel_size
    for name, v in (("pixel_size", dy), ("pixel_size", dx), ("model_pixel_size", my), ("model_pixel_size", mx)):
        if not v > 0:
            raise ValueError(f"{name}: expected positive spacings in mm, found {v!r}")
    return max(1, round(h * dy / my)), max(1, round(w * dx / mx))


def resample(images: torch.Tensor, size: tuple[int, int], units: str) -> torch.Tensor:
    """Images (N, C, H, W) → (N, C, H', W') over the same field of view; counts scaled by (H·W)/(H'·W')."""
    check_image_batch("images", images, channels=None)
    h, w = images.shape[-2:]
    size = (int(size[0]), int(size[1]))
    if size == (h, w):
        return images
    out = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
    if units in EXTENSIVE_UNITS:
        out = out * (h * w / (size[0] * size[1]))
    return out


def to_model_grid(images: torch.Tensor, pixel_size: tuple[float, float], model_pixel_size: tuple[float, float],
                  units: str) -> torch.Tensor:
    """Slices (N, 1, H, W) at `pixel_size` (dy, dx) mm resampled to the model's pixel size."""
    return resample(images, model_shape(tuple(images.shape[-2:]), pixel_size, model_pixel_size), units)


def from_model_grid(images: torch.Tensor, shape: tuple[int, int], units: str) -> torch.Tensor:
    """Slices on the model's grid resampled back to the input's (H, W) (the inverse of `to_model_grid`)."""
    return resample(images, shape, units)
