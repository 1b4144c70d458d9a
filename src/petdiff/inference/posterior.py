"""The one posterior-statistics step: samples streamed in, mean and std out, memory independent of K.

Samples x_1 … x_K of a volume (N, 1, H, W) arrive one (or a chunk) at a time, already blended across tiles
and on the input's grid; Welford's update keeps the running mean and the sum of squared deviations in
float64 (the spread can be small next to the mean):

    m_k = m_{k−1} + (x_k − m_{k−1})/k,    M2_k = M2_{k−1} + (x_k − m_{k−1})(x_k − m_k),    s² = M2_K/(K − 1).

With `keep` the samples are also stored (K, N, 1, H, W) (e.g. for per-sample lesion statistics); a
`callback(k, sample)` sees each one as it arrives without storing it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from petdiff.diffusion.ensemble import RunningMoments

SampleCallback = Callable[[int, torch.Tensor], None]  # (sample index k, sample (n, 1, H, W) of rows `rows`)


class PosteriorStats:
    """Running mean / unbiased std over the samples of a volume of shape (N, C, H, W) (`RunningMoments` on the CPU)."""

    def __init__(self, shape: tuple[int, ...], samples: int, keep: bool = False,
                 callback: SampleCallback | None = None):
        self.shape, self.samples = tuple(shape), int(samples)
        self.moments = RunningMoments(self.shape)
        self.kept = torch.zeros((self.samples, *self.shape), dtype=torch.float32) if keep else None
        self.callback = callback

    def update(self, k: int, rows: slice | list[int], x: torch.Tensor) -> None:
        """Add sample k of the slices `rows` (x: (n, C, H, W))."""
        x = x.detach().to("cpu", torch.float32)
        self.moments.update(rows, x)
        if self.kept is not None:
            self.kept[k, rows] = x
        if self.callback is not None:
            self.callback(k, x)

    def result(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mean, unbiased std or None for K < 2) as float32; slices never updated stay 0."""
        std = self.moments.variance().sqrt().float() if self.samples >= 2 else None
        return self.moments.mean.float(), std
