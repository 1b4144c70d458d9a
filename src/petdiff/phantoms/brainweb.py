"""BrainWeb phantoms in the reference format: an .npz whose key `phantoms` holds (N, H·W) or (N, H, W) activity."""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from petdiff.io.arrays import check_numeric, read_npz_array
from petdiff.utils.validation import check_image_batch, check_non_negative


def load_brainweb(path: str | os.PathLike) -> torch.Tensor:
    """Activity slices (N, 1, H, W) float32 from `path` (key `phantoms`; flat rows must have a square H·W)."""
    key, arr = read_npz_array(path, ("phantoms",))
    if arr.size == 0:
        raise ValueError(f"{path} [{key}]: expected a non-empty array, found shape {arr.shape}")
    if arr.ndim == 2:
        side = math.isqrt(arr.shape[1])
        if side * side != arr.shape[1] or side == 0:
            raise ValueError(
                f"{path} [{key}]: expected (N, H*W) with a square number of pixels per row, "
                f"found shape {arr.shape} ({arr.shape[1]} is not a square)"
            )
        arr = arr.reshape(arr.shape[0], side, side)
    elif arr.ndim != 3:
        raise ValueError(f"{path} [{key}]: expected shape (N, H*W) or (N, H, W), found shape {arr.shape}")
    data = check_numeric(path, key, arr)
    return torch.from_numpy(np.ascontiguousarray(data)).unsqueeze(1)


def brainweb_labels(activity: torch.Tensor, max_classes: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels (N,1,H,W) int64, concentrations (N, K) float32): class k = the k-th smallest distinct level.

    In BrainWeb-format slices every tissue has one activity level, so each distinct value is a class and
    activity == concentrations[i, labels[i]] exactly; level 0 (background, CSF) is class 0 with concentration 0.
    """
    check_image_batch("activity", activity)
    check_non_negative("activity", activity)
    levels, inverse = torch.unique(activity, sorted=True, return_inverse=True)
    if levels.numel() > max_classes:
        raise ValueError(
            f"activity: expected at most {max_classes} distinct tissue levels (BrainWeb-format slices), "
            f"found {levels.numel()}; continuous images have no tissue classes"
        )
    concentrations = levels.to(torch.float32).unsqueeze(0).expand(activity.shape[0], -1).contiguous()
    return inverse.to(torch.int64), concentrations
