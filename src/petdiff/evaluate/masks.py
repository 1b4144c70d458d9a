"""Binary morphology on (B, 1, H, W) masks in torch ops (any device): dilation, hole filling, depth, head mask."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from petdiff.utils.validation import check_image_batch


def _check_mask(name: str, mask: torch.Tensor) -> torch.Tensor:
    """Require a (B, 1, H, W) boolean tensor."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.ndim != 4 or mask.shape[1] != 1:
        found = f"shape {tuple(mask.shape)} and dtype {mask.dtype}" if isinstance(mask, torch.Tensor) else type(mask)
        raise ValueError(f"{name}: expected a boolean tensor of shape (B, 1, H, W), found {found}")
    return mask


def dilate(mask: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Dilation by the (2r+1)² square: out = max over the window (outside the image counts as False)."""
    _check_mask("mask", mask)
    if radius <= 0:
        return mask.clone()
    return F.max_pool2d(mask.float(), 2 * radius + 1, stride=1, padding=radius) > 0


def erode(mask: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Erosion by the (2r+1)² square; pixels beyond the border count as False, so the border erodes too."""
    _check_mask("mask", mask)
    if radius <= 0:
        return mask.clone()
    padded = F.pad(mask.float(), (radius,) * 4, value=0.0)
    return -F.max_pool2d(-padded, 2 * radius + 1, stride=1) > 0


def _dilate_cross(mask: torch.Tensor) -> torch.Tensor:
    """One step of 4-connected dilation (the pixel and its edge neighbours)."""
    out = mask.clone()
    out[..., 1:, :] |= mask[..., :-1, :]
    out[..., :-1, :] |= mask[..., 1:, :]
    out[..., :, 1:] |= mask[..., :, :-1]
    out[..., :, :-1] |= mask[..., :, 1:]
    return out


def fill_holes(mask: torch.Tensor) -> torch.Tensor:
    """mask ∪ (background not 4-connected to the image border), like scipy.ndimage.binary_fill_holes."""
    _check_mask("mask", mask)
    free = ~mask
    border = torch.zeros_like(mask)
    border[..., 0, :] = border[..., -1, :] = True
    border[..., :, 0] = border[..., :, -1] = True
    outside = free & border
    # flood fill from the border through the background; at most H·W steps, in practice about H
    while True:
        grown = _dilate_cross(outside) & free
        if torch.equal(grown, outside):
            return ~outside
        outside = grown


def depth(mask: torch.Tensor) -> torch.Tensor:
    """Chessboard distance to the nearest pixel outside the mask: the number of 3×3 erosions a pixel survives."""
    _check_mask("mask", mask)
    out = torch.zeros(mask.shape, dtype=torch.int64, device=mask.device)
    current = mask
    while bool(current.any()):
        out += current.to(torch.int64)
        current = erode(current, 1)
    return out


def head_mask(truth: torch.Tensor, dilation: int = 2) -> torch.Tensor:
    """The head: fill_holes(dilate(truth > 0, r)) with r = 2 px, so zero-activity CSF and a rim of air are inside."""
    check_image_batch("truth", truth)
    return fill_holes(dilate(truth > 0, dilation))
