"""The one posterior-statistics step: samples streamed in, mean and std out, memory independent of K.

Samples x_1 … x_K of a volume (N, 1, H, W) arrive one (or a chunk) at a time, already blended across tiles
and on the input's grid; Welford's update keeps the running mean and the sum of squared deviations in
float64 (the spread can be small next to the mean):

    m_k = m_{k−1} + (x_k − m_{k−1})/k,    M2_k = M2_{k−1} + (x_k − m_{k−1})(x_k − m_k),    s² = M2_K/(K − 1).

`volume.enhance_volume` keeps one of these per slab (so the float64 accumulators never span the whole volume) and
can also store every sample (`keep_samples`, e.g. for per-sample lesion statistics) or show each one to a
`callback(k, slices, sample)` as it arrives, without storing it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from petdiff.diffusion.ensemble import RunningMoments

SampleCallback = Callable[[int, list[int], torch.Tensor], None]  # (sample k, slice indices, their sample k)


class PosteriorStats:
    """Running mean / unbiased std over the samples of a stack of shape (n, C, H, W) (`RunningMoments`, CPU)."""

    def __init__(self, shape: tuple[int, ...], samples: int):
        self.shape, self.samples = tuple(shape), int(samples)
        self.moments = RunningMoments(self.shape)

    def update(self, x: torch.Tensor) -> None:
        """Add one sample (n, C, H, W) of every slice."""
        self.moments.update(slice(None), x.detach().to("cpu", torch.float32))

    def result(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mean, unbiased std or None for K < 2) as float32."""
        std = self.moments.variance().sqrt().float() if self.samples >= 2 else None
        return self.moments.mean.float(), std
