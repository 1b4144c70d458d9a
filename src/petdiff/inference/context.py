"""2.5D context: each slice of a stack with its k neighbours on each side, as the scan models see it."""

from __future__ import annotations

import torch


def with_context(slices: torch.Tensor, k: int) -> torch.Tensor:
    """(N, 1, H, W) adjacent slices → (N, 2k+1, H, W): channel j of slice n is slice n + j − k, the end slices repeated.

    k = 0 returns the slices unchanged; a single slice becomes itself repeated 2k+1 times (a 2D input).
    """
    if slices.ndim != 4 or slices.shape[1] != 1:
        raise ValueError(f"slices: expected a (N, 1, H, W) stack of adjacent slices, found {tuple(slices.shape)}")
    if k < 0:
        raise ValueError(f"k: expected a number of context slices ≥ 0, found {k}")
    n = slices.shape[0]
    index = (torch.arange(n)[:, None] + torch.arange(-k, k + 1)[None, :]).clamp(0, n - 1).to(slices.device)
    return slices[:, 0][index]
