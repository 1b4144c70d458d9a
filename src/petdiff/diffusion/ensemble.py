"""Posterior ensembles: K conditional samples per input slice, summarised by their mean and spread.

The denoiser is conditional, so it is passed as a factory `make_denoise(condition_batch) -> denoise`
where `denoise(x, sigma) -> D(x; σ | condition_batch)` and row j of x belongs to row j of the
condition batch (e.g. `lambda y: (lambda x, sigma: net(x, sigma, condition=y))`). For an unconditional
denoiser use `lambda _: denoise`. Sample (b, k) gets its latent and churn noise from seeds[k] alone, so
with a batch-independent network it does not depend on batch_size or on the other inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from petdiff.diffusion.noise import StackedRandomGenerator, parse_seeds
from petdiff.diffusion.samplers import Denoiser, sample, sampler_options
from petdiff.utils.validation import check_finite, check_image_batch

DenoiserFactory = Callable[[torch.Tensor], Denoiser]


@dataclass(frozen=True)
class PosteriorEnsemble:
    """K posterior samples per input: mean (B,C,H,W), unbiased std (None when K = 1), samples (K,B,C,H,W) or None."""

    mean: torch.Tensor
    std: torch.Tensor | None
    samples: torch.Tensor | None
    seeds: tuple[int, ...]


class RunningMoments:
    """Welford per slice: m_k = m_{k−1} + (x_k − m_{k−1})/k, M2_k = M2_{k−1} + (x_k − m_{k−1})(x_k − m_k)."""

    def __init__(self, shape: Sequence[int], device: torch.device | str = "cpu"):
        # float64 accumulators: the M2 update subtracts nearly equal numbers when the spread is small
        self.count = torch.zeros(int(shape[0]), dtype=torch.int64, device=device)
        self.mean = torch.zeros(tuple(shape), dtype=torch.float64, device=device)
        self.m2 = torch.zeros_like(self.mean)

    def update(self, index: int | slice | Sequence[int], x: torch.Tensor) -> None:
        """Add one sample of slice `index` (x: (C, H, W)), or of the slices `index` (x: (n, C, H, W))."""
        x = x.to(self.mean.device, torch.float64)
        self.count[index] += 1
        k = self.count[index].to(torch.float64)
        k = k.view(-1, *[1] * (x.ndim - 1)) if k.ndim else k
        delta = x - self.mean[index]
        self.mean[index] += delta / k
        self.m2[index] += delta * (x - self.mean[index])

    def variance(self) -> torch.Tensor:
        """Unbiased variance M2/(k − 1) per slice (slices with k < 2 give 0)."""
        k = self.count.clamp_min(2).to(torch.float64).view(-1, *[1] * (self.m2.ndim - 1))
        return self.m2.clamp_min(0) / (k - 1)


def _check_positive_int(name: str, value: object) -> int:
    """Require an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, found {value!r}")
    return value


def posterior_ensemble(
    make_denoise: DenoiserFactory,
    condition: torch.Tensor,
    seeds: str | int | Sequence[int],
    *,
    image_channels: int = 1,
    sampler: str = "edm",
    batch_size: int = 32,
    keep_samples: bool = False,
    labels: torch.Tensor | None = None,
    antithetic: bool = False,
    **sample_opts: Any,
) -> PosteriorEnsemble:
    """Draw x_{b,k} ~ p(x | condition_b) for every seed k; return mean_k x_{b,k} and the unbiased std over k.

    At most `batch_size` samples go through the denoiser at once. Without `keep_samples` only a running
    (Welford) mean/variance is kept, so memory does not grow with K = len(seeds). `sample_opts` go to
    `sample()` (num_steps, S_churn, sigma_max, ...); the noise source is built here from the seeds. With
    per-input `labels` (B, L) the factory is called as make_denoise(condition_batch, labels_batch).

    `antithetic` pairs the samples: sample 2j+1 starts from the negated latent of sample 2j (its own seed still
    drives any churn noise). Each sample keeps its marginal law; with a deterministic (ODE) solver and a roughly
    symmetric posterior the pair's errors nearly cancel, so the mean's Monte-Carlo error drops far below the
    1/K of independent samples (antithetic variates). Needs an even number of seeds.
    """
    if not callable(make_denoise):
        raise ValueError(f"make_denoise: expected a callable condition_batch -> denoise, found {type(make_denoise)}")
    condition = check_finite("condition", check_image_batch("condition", condition, channels=None))
    seed_list = parse_seeds(seeds, distinct=True)
    image_channels = _check_positive_int("image_channels", image_channels)
    batch_size = _check_positive_int("batch_size", batch_size)
    if "noise" in sample_opts:
        raise ValueError("noise: expected no noise option; posterior_ensemble draws each sample's noise from its seed")
    pass_noise = "noise" in sampler_options(sampler)
    if antithetic and len(seed_list) % 2:
        raise ValueError(f"seeds: antithetic pairs need an even number of samples, found {len(seed_list)}")

    n_inputs, _, height, width = condition.shape
    if labels is not None and (labels.ndim != 2 or labels.shape[0] != n_inputs):
        raise ValueError(f"labels: expected one row per input ({n_inputs}, L), found {tuple(labels.shape)}")
    k_total = len(seed_list)
    shape = (n_inputs, image_channels, height, width)
    samples = condition.new_empty((k_total, *shape)) if keep_samples else None
    moments = None if keep_samples else RunningMoments(shape, condition.device)

    jobs = [(b, k) for b in range(n_inputs) for k in range(k_total)]
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        rows = torch.tensor([b for b, _ in chunk], device=condition.device)
        rnd = StackedRandomGenerator(condition.device, [seed_list[k] for _, k in chunk])
        latents = rnd.randn((len(chunk), image_channels, height, width), dtype=condition.dtype)
        if antithetic:
            mirrored = StackedRandomGenerator(condition.device, [seed_list[k - k % 2] for _, k in chunk])
            signs = torch.tensor([1.0 - 2.0 * (k % 2) for _, k in chunk], device=condition.device)
            latents = mirrored.randn(tuple(latents.shape), dtype=condition.dtype) * signs.view(-1, 1, 1, 1)
        noise_opt = {"noise": rnd} if pass_noise else {}
        denoise = make_denoise(condition[rows]) if labels is None else make_denoise(condition[rows], labels[rows])
        x = sample(denoise, latents, sampler, **noise_opt, **sample_opts)
        for j, (b, k) in enumerate(chunk):
            if samples is not None:
                samples[k, b] = x[j]
            else:
                moments.update(b, x[j])

    if samples is not None:
        mean = samples.mean(dim=0)
        std = samples.std(dim=0, correction=1) if k_total >= 2 else None
    else:
        mean = moments.mean.to(condition.dtype)
        std = moments.variance().sqrt().to(condition.dtype) if k_total >= 2 else None
    return PosteriorEnsemble(mean=mean, std=std, samples=samples, seeds=tuple(seed_list))
