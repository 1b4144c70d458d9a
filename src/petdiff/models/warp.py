"""2D affine warps of image batches in centred pixel coordinates (x → columns, y ↓ rows, origin at the centre)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rotation(theta: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) homogeneous rotation [[cos θ, −sin θ, 0], [sin θ, cos θ, 0], [0, 0, 1]]."""
    c, s = theta.cos(), theta.sin()
    zero, one = torch.zeros_like(theta), torch.ones_like(theta)
    return torch.stack([c, -s, zero, s, c, zero, zero, zero, one], dim=-1).reshape(*theta.shape, 3, 3)


def scaling(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) homogeneous scaling diag(sx, sy, 1)."""
    zero, one = torch.zeros_like(sx), torch.ones_like(sx)
    return torch.stack([sx, zero, zero, zero, sy, zero, zero, zero, one], dim=-1).reshape(*sx.shape, 3, 3)


def translation(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) homogeneous translation by (tx, ty) pixels."""
    zero, one = torch.zeros_like(tx), torch.ones_like(tx)
    return torch.stack([one, zero, tx, zero, one, ty, zero, zero, one], dim=-1).reshape(*tx.shape, 3, 3)


def warp_affine(images: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """out(p) = images(G⁻¹·p) for every output pixel centre p, with bicubic interpolation and mirrored borders.

    `inverse` is the (N, 3, 3) matrix G⁻¹ in centred pixel coordinates. Bicubic interpolation is exact at pixel
    centres, so transforms that map the pixel grid onto itself (e.g. 90° rotations of square images) are exact;
    mirrored borders suit PET images whose background is ≈ 0 near the edge.
    """
    n, _, h, w = images.shape
    # Centred pixels → grid_sample's normalised coordinates (align_corners=False): u = x·2/W, v = y·2/H.
    to_unit = torch.diag(torch.tensor([2.0 / w, 2.0 / h, 1.0], device=images.device, dtype=inverse.dtype))
    from_unit = torch.diag(torch.tensor([w / 2.0, h / 2.0, 1.0], device=images.device, dtype=inverse.dtype))
    theta = (to_unit @ inverse @ from_unit)[:, :2, :].to(images.dtype)
    grid = F.affine_grid(theta, [n, images.shape[1], h, w], align_corners=False)
    return F.grid_sample(images, grid, mode="bicubic", padding_mode="reflection", align_corners=False)
