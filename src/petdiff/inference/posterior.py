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

SampleCallback = Callable[[int, torch.Tensor], None]  # (sample index k, sample (n, 1, H, W) of rows `rows`)


class PosteriorStats:
    """Running mean / unbiased std over the samples of a volume of shape (N, C, H, W)."""

    def __init__(self, shape: tuple[int, ...], samples: int, keep: bool = False,
                 callback: SampleCallback | None = None):
        self.shape, self.samples = tuple(shape), int(samples)
        self.mean = torch.zeros(self.shape, dtype=torch.float64)
        self.m2 = torch.zeros(self.shape, dtype=torch.float64)
        self.count = torch.zeros(self.shape[0], dtype=torch.int64)
        self.kept = torch.zeros((self.samples, *self.shape), dtype=torch.float32) if keep else None
        self.callback = callback

    def update(self, k: int, rows: slice | list[int], x: torch.Tensor) -> None:
        """Add sample k of the slices `rows` (x: (n, C, H, W))."""
        x = x.detach().to("cpu", torch.float64)
        self.count[rows] += 1
        n = self.count[rows].to(torch.float64).view(-1, *[1] * (x.ndim - 1))
        delta = x - self.mean[rows]
        self.mean[rows] += delta / n
        self.m2[rows] += delta * (x - self.mean[rows])
        if self.kept is not None:
            self.kept[k, rows] = x.float()
        if self.callback is not None:
            self.callback(k, x.float())

    def result(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mean, unbiased std or None for K < 2) as float32; slices never updated stay 0."""
        std = None
        if self.samples >= 2:
            k = self.count.clamp_min(2).to(torch.float64).view(-1, *[1] * (len(self.shape) - 1))
            std = (self.m2.clamp_min(0) / (k - 1)).sqrt().float()
        return self.mean.float(), std
