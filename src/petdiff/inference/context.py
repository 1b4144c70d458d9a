"""2.5D context: each slice of a stack with its k neighbours on each side, as the scan models see it."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def context_stack(volume: torch.Tensor, rows: Sequence[int], k: int, independent: bool = False) -> torch.Tensor:
    """(len(rows), 2k+1, H, W): slice i with slices i−k … i+k, clamped to the volume (replicate along z)."""
    n = volume.shape[0]
    offsets = torch.arange(-k, k + 1)
    index = torch.as_tensor(list(rows))[:, None] + (0 * offsets if independent else offsets)[None, :]
    index = index.clamp(0, n - 1).flatten().to(volume.device)
    return volume[index, 0].reshape(len(rows), 2 * k + 1, *volume.shape[-2:])


def with_context(slices: torch.Tensor, k: int) -> torch.Tensor:
    """(N, 1, H, W) adjacent slices → (N, 2k+1, H, W): channel j of slice n is slice n + j − k, the end slices repeated.

    k = 0 returns the slices unchanged; a single slice becomes itself repeated 2k+1 times (a 2D input).
    """
    if slices.ndim != 4 or slices.shape[1] != 1:
        raise ValueError(f"slices: expected a (N, 1, H, W) stack of adjacent slices, found {tuple(slices.shape)}")
    if k < 0:
        raise ValueError(f"k: expected a number of context slices ≥ 0, found {k}")
    return context_stack(slices, range(slices.shape[0]), k)
