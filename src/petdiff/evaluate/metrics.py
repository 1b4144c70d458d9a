"""Image-quality metrics per slice: PSNR, SSIM, NRMSE (whole image and inside a mask), region bias and noise.

All functions take (B, 1, H, W) tensors and return one value per slice, (B,) float64 on the input's device
(SSIM runs in scikit-image on the CPU). Aggregation over slices is left to the caller (`nanmean`).
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity

from petdiff.evaluate.masks import head_mask
from petdiff.utils.validation import check_finite, check_image_batch


def _pair(x: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate an (image, reference) pair of equal (B, 1, H, W) shapes; return both as float64."""
    check_image_batch("x", x)
    check_image_batch("reference", reference)
    if x.shape != reference.shape:
        raise ValueError(f"x: expected the reference's shape {tuple(reference.shape)}, found {tuple(x.shape)}")
    check_finite("x", x)
    check_finite("reference", reference)
    return x.double(), reference.to(x.device).double()


def _mask(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """The mask as float64 (B, 1, H, W) (all ones when None)."""
    if mask is None:
        return torch.ones_like(like)
    if mask.shape != like.shape or mask.dtype != torch.bool:
        raise ValueError(
            f"mask: expected a boolean tensor of shape {tuple(like.shape)}, found {tuple(mask.shape)} {mask.dtype}"
        )
    return mask.to(like.device).double()


def scale_to_total(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """x · Σreference / Σx per slice: a reconstruction put on the reference's total activity."""
    xd, rd = _pair(x, reference)
    total = xd.sum(dim=(1, 2, 3), keepdim=True)
    factor = torch.where(total > 0, rd.sum(dim=(1, 2, 3), keepdim=True) / total, torch.ones_like(total))
    return (xd * factor).to(x.dtype)


def mse(x: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error Σ m (x − ref)² / Σ m per slice (the whole image when mask is None)."""
    xd, rd = _pair(x, reference)
    m = _mask(mask, xd)
    return (m * (xd - rd) ** 2).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3)).clamp_min(1)


def psnr(
    x: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor | None = None, data_range: torch.Tensor | None = None
) -> torch.Tensor:
    """PSNR = 10 log10(R² / MSE) dB per slice with R = max(reference) of the slice unless given."""
    err = mse(x, reference, mask)
    r = reference.double().flatten(1).amax(dim=1).to(err.device) if data_range is None else data_range.double()
    return 10.0 * torch.log10(r**2 / err)


def nrmse(x: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """NRMSE = ‖m (x − ref)‖ / ‖m ref‖ per slice."""
    xd, rd = _pair(x, reference)
    m = _mask(mask, xd)
    return (m * (xd - rd)).flatten(1).norm(dim=1) / (m * rd).flatten(1).norm(dim=1)


def ssim(x: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """SSIM per slice (scikit-image, 7×7 window, data_range = max(reference)); with a mask, the map's mean inside it."""
    xd, rd = _pair(x, reference)
    xs, rs = xd[:, 0].cpu().numpy(), rd[:, 0].cpu().numpy()
    ms = None if mask is None else _mask(mask, xd)[:, 0].cpu().numpy() > 0
    out = np.empty(xs.shape[0])
    for i in range(xs.shape[0]):
        data_range = float(rs[i].max()) or 1.0  # an all-zero reference: any positive range gives the same answer
        value, smap = structural_similarity(xs[i], rs[i], data_range=data_range, full=True)
        out[i] = value if ms is None else (smap[ms[i]].mean() if ms[i].any() else np.nan)
    return torch.from_numpy(out).to(xd.device)


def image_metrics(
    x: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """{psnr, ssim, nrmse} on the whole image and {psnr_head, ssim_head, nrmse_head} inside the mask, per slice.

    The mask defaults to head_mask(reference). PSNR's data range is the reference's max in both cases.
    """
    if mask is None:
        mask = head_mask(reference)
    return {
        "psnr": psnr(x, reference),
        "ssim": ssim(x, reference),
        "nrmse": nrmse(x, reference),
        "psnr_head": psnr(x, reference, mask),
        "ssim_head": ssim(x, reference, mask),
        "nrmse_head": nrmse(x, reference, mask),
    }


def region_bias_noise(
    x: torch.Tensor, truth: torch.Tensor, labels: torch.Tensor, n_regions: int, min_pixels: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per slice and region k ≥ 1: bias = (x̄_k − t̄_k) / t̄_k and noise = std_k(x) / x̄_k (unbiased std) → (B, K).

    x̄_k, t̄_k are the region means of x and of the truth. Regions with fewer than `min_pixels` pixels, or a
    non-positive true (for noise: estimated) mean, give NaN. Column 0 ("other") is NaN too.
    """
    xd, td = _pair(x, truth)
    if labels.shape != x.shape or labels.dtype != torch.int64:
        raise ValueError(f"labels: expected an int64 tensor of shape {tuple(x.shape)}, found {tuple(labels.shape)}")
    index = labels.to(xd.device).flatten(1)
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n_regions):
        raise ValueError(f"labels: expected values in [0, {n_regions}), found [{int(index.min())}, {int(index.max())}]")
    b = xd.shape[0]

    def region_sum(values: torch.Tensor) -> torch.Tensor:
        return torch.zeros(b, n_regions, dtype=torch.float64, device=xd.device).scatter_add_(1, index, values)

    n = region_sum(torch.ones_like(xd.flatten(1)))
    x_mean = region_sum(xd.flatten(1)) / n.clamp_min(1)
    t_mean = region_sum(td.flatten(1)) / n.clamp_min(1)
    centred = xd.flatten(1) - torch.gather(x_mean, 1, index)
    x_std = (region_sum(centred**2) / (n - 1).clamp_min(1)).sqrt()
    nan = torch.full_like(n, float("nan"))
    valid = n >= min_pixels
    valid[:, 0] = False
    bias = torch.where(valid & (t_mean > 0), (x_mean - t_mean) / t_mean, nan)
    noise = torch.where(valid & (x_mean > 0), x_std / x_mean, nan)
    return bias, noise
