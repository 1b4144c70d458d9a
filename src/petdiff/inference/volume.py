"""The volume as the unit of work: slices with their ±k neighbours, streamed in slabs, whole or tiled.

`enhance_volume` takes a volume (N, 1, H, W) of low-dose counts per pixel on the model's grid and runs an
`Enhancer` over it:

1. Context. Slice i goes in with its k neighbours each side, channels (i−k … i+k), the missing ones at the
   ends of the volume replaced by the edge slice (replicate padding along z); `independent=True` treats the
   slices as unrelated (each one's neighbours are itself). Every slice is computed from its own stack, so
   there is no seam along z.
2. Slabs. At most `slab` slices are stacked and run at a time, and a network call holds at most
   `PIXELS_PER_CALL` input pixels (fewer samples per call on large slices), so memory stays bounded on any scan;
   the outputs are streamed into the posterior statistics (`PosteriorStats`, one per slab) sample by sample.
3. Whole or tiled. A model that runs at any size (`ModelSpec.whole_slices`) gets each slice whole, zero-padded
   to a multiple of its down-sampling, unless a slice exceeds `max_pixels`: then (and for fixed-size models,
   at their training resolution) overlapping tiles are blended by a Gaussian window (`tiling.sliding_window`)
   with the overlap the blending needs (fixed-size models: 1/2, the window's σ = tile/8; large slices: 1/4).
4. Samples. The K samples are drawn in chunks of seeds (sample k always from seed k); each chunk is blended
   across tiles, mapped to the output grid by `to_output`, and added to the statistics; the regression comes
   with the first chunk. All-zero slices are not enhanced (outputs 0).
5. Recalibration. A pair recalibrated by `petdiff finetune` (`ModelSpec.std_scale` c ≠ 1) reports the std
   c× wider and the mean unchanged; this is the one place c is applied. Samples that are kept or shown to a
   `callback` are widened about the slab's posterior mean, x̄ + c·(x_k − x̄), clipped at 0, so statistics over
   them (e.g. the lesion report's intervals) carry the same calibration; they are then held until the slab's
   mean is known (a slab's K samples in memory) instead of streamed one by one.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from petdiff.inference.context import context_stack
from petdiff.inference.enhancers import Enhancer
from petdiff.inference.posterior import PosteriorStats, SampleCallback
from petdiff.inference.settings import SamplingSettings
from petdiff.inference.tiling import sliding_window, tile_count

FIXED_TILE_OVERLAP = 0.5  # fixed-size (old) models: tiles at the training resolution, half overlapping
LARGE_SLICE_OVERLAP = 0.25  # whole-slice models on slices above the memory budget
MAX_PIXELS = 1024 * 1024  # per network input: larger slices are tiled
PIXELS_PER_CALL = 512 * 1024  # per network call (batch × input pixels): bounds the activations on large slices
SLAB = 8  # slices per step (bounds the float64 blending accumulators and the samples in flight)
TILES_PER_CALL = 8  # tiles per enhancer call when slices are tiled
Progress = Callable[[int, int], None]  # (network inputs done, in total)


@dataclass(frozen=True)
class VolumeEnhancement:
    """Outputs on the output grid (after `to_output`): mean, std (K ≥ 2), regression, samples (keep_samples)."""

    mean: torch.Tensor  # (N, 1, H', W')
    std: torch.Tensor | None
    regression: torch.Tensor | None
    samples: torch.Tensor | None  # (K, N, 1, H', W')
    levels: torch.Tensor  # the dose level the networks were told, one per network input (tile or slice)
    tile: tuple[int, int]  # the network input size
    tiles_per_slice: int
    overlap: float | None  # None: slices ran whole
    empty: tuple[int, ...]  # all-zero slices (not enhanced)


def network_tile(spec_shape: tuple[int, int], whole: bool, multiple: int, shape: tuple[int, int],
                 max_pixels: int) -> tuple[tuple[int, int], float | None]:
    """(input size, overlap or None for whole slices) for slices of `shape` (see the module docstring, 3)."""
    if not whole:
        return spec_shape, FIXED_TILE_OVERLAP
    padded = tuple(multiple * math.ceil(s / multiple) for s in shape)
    if padded[0] * padded[1] <= max_pixels:
        return padded, None
    side = max(multiple, multiple * int(math.isqrt(max_pixels) // multiple))
    return (min(side, padded[0]), min(side, padded[1])), LARGE_SLICE_OVERLAP


def _seed_chunks(seeds: Sequence[int], size: int) -> list[list[int]]:
    """Consecutive chunks of at most `size` seeds, of even length (antithetic pairs stay together)."""
    size = max(2, size - size % 2) if len(seeds) > 1 else 1
    return [list(seeds[i:i + size]) for i in range(0, len(seeds), size)]


def enhance_volume(enhancer: Enhancer, low: torch.Tensor, fraction: float, settings: SamplingSettings, *,
                   independent: bool = False, to_output: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   keep_samples: bool = False, callback: SampleCallback | None = None,
                   progress: Progress | None = None, max_pixels: int = MAX_PIXELS, slab: int = SLAB
                   ) -> VolumeEnhancement:
    """Enhance a volume (N, 1, H, W) of low-dose counts per pixel at dose fraction f (module docstring).

    `low` may also be stacks (N, 2k+1, H, W) that already hold each slice's context (centre = channel k).
    """
    spec = enhancer.spec
    if low.ndim != 4 or low.shape[1] not in (1, spec.channels):
        raise ValueError(f"low: expected a volume (N, 1, H, W) or context stacks (N, {spec.channels}, H, W), found "
                         f"shape {tuple(low.shape)}")
    low = low.detach().to("cpu", torch.float32)
    k = spec.context
    stacked = low.shape[1] > 1
    to_output = to_output or (lambda x: x)
    n, h, w = low.shape[0], *low.shape[-2:]
    tile, overlap = network_tile(spec.resolution, spec.whole_slices, spec.size_multiple, (h, w), max_pixels)
    per_call = max(1, min(settings.batch_size, PIXELS_PER_CALL // (tile[0] * tile[1])))
    run_settings = dataclasses.replace(settings, batch_size=per_call)
    per_slice = tile_count((h, w), tile, overlap or 0.5)
    live = [i for i in range(n) if bool(low[i, k if stacked else 0].amax() > 0)]
    empty = tuple(i for i in range(n) if i not in set(live))
    seeds = list(settings.seeds) if settings.method != "mean" else []
    chunks = _seed_chunks(seeds, settings.batch_size) if seeds else [[]]
    out_shape = to_output(low[:1, :1]).shape[1:]
    regression = torch.zeros((n, *out_shape)) if "regression" in _outputs(settings) else None
    mean = torch.zeros((n, *out_shape)) if seeds else regression
    std = torch.zeros((n, *out_shape)) if len(seeds) >= 2 else None
    samples = torch.zeros((len(seeds), n, *out_shape)) if keep_samples and seeds else None
    levels: list[torch.Tensor] = []
    total, done = len(live) * per_slice * len(chunks), 0
    c_scale = spec.std_scale
    widen = c_scale != 1.0 and (samples is not None or callback is not None)
    pending: list[tuple[int, torch.Tensor]] = []  # a slab's samples, when they are widened about its mean

    def emit(seed_index: int, rows: list[int], x: torch.Tensor) -> None:
        """Store sample k of these slices (keep_samples) and show it to the callback."""
        if samples is not None:
            samples[seed_index, rows] = x
        if callback is not None:
            callback(seed_index, rows, x)

    def run(tiles: torch.Tensor, chunk: list[int]) -> dict[str, torch.Tensor]:
        """Enhancer outputs for a batch of tiles; tiles whose centre slice is empty give 0."""
        nonlocal done
        centre = tiles[:, k:k + 1]
        keep = centre.flatten(1).amax(dim=1) > 0
        shape = (tiles.shape[0], 1, *tiles.shape[-2:])
        out = {"regression": tiles.new_zeros(shape), "samples": tiles.new_zeros((shape[0], len(chunk), *shape[2:]))}
        if bool(keep.any()):
            if chunk is chunks[0]:
                levels.append(enhancer.dose_level(centre[keep].to(enhancer.device)).cpu())
            result = enhancer.run(tiles[keep], fraction, run_settings, chunk)
            for name, value in result.items():
                out[name][keep] = value.to(out[name].device, out[name].dtype)
        done += int(tiles.shape[0])
        if progress is not None:
            progress(min(done, total), total)
        return {name: out[name] for name in _outputs(settings) if name != "samples" or chunk}

    for start in range(0, len(live), slab):
        rows = live[start:start + slab]
        stack = low[rows] if stacked else context_stack(low, rows, k, independent)
        stats = PosteriorStats((len(rows), *out_shape), len(seeds))  # per slab: bounded float64 accumulators
        for c, chunk in enumerate(chunks):
            blended = sliding_window(lambda t, chunk=chunk: run(t, chunk), stack, tile, overlap or 0.5, "gaussian",
                                     TILES_PER_CALL if overlap is not None else slab)
            if c == 0 and regression is not None:
                regression[rows] = to_output(blended["regression"])
            for j, seed_index in enumerate(range(sum(map(len, chunks[:c])), sum(map(len, chunks[:c + 1])))):
                x = to_output(blended["samples"][:, j:j + 1]).float()
                stats.update(x)
                if widen:  # shown once the slab's mean is known (see 5.)
                    pending.append((seed_index, x))
                else:
                    emit(seed_index, rows, x)
        if seeds:
            mean[rows], slab_std = stats.result()
            if std is not None:
                std[rows] = slab_std * c_scale  # a recalibrated pair: the std a user reads, c× wider
            for seed_index, x in pending:
                emit(seed_index, rows, (mean[rows] + c_scale * (x - mean[rows])).clamp_min(0))
            pending.clear()
    levels_all = torch.cat(levels) if levels else torch.zeros(0)
    _warn_outside_training(enhancer, fraction, levels_all)
    return VolumeEnhancement(mean=mean, std=std, regression=regression, samples=samples,
                             levels=levels_all, tile=tile,
                             tiles_per_slice=per_slice, overlap=overlap, empty=empty)


def _warn_outside_training(enhancer: Enhancer, fraction: float, levels: torch.Tensor) -> None:
    """One warning per scan when f, or the dose levels the networks were told, lie outside training."""
    spec, problems = enhancer.spec, []
    if spec.fraction_range is not None:
        lo, hi = spec.fraction_range
        if not lo - 1e-6 <= fraction <= hi + 1e-6:
            problems.append(f"fraction {fraction:.4g} (trained on {lo:.4g}…{hi:.4g})")
    span = spec.dose_level_range(fraction)
    if span is not None and len(levels):
        outside = levels[(levels < span[0] * (1 - 1e-6)) | (levels > span[1] * (1 + 1e-6))]
        if len(outside):
            problems.append(f"{len(outside)} of {len(levels)} network inputs at dose levels {float(outside.min()):.4g}…"
                            f"{float(outside.max()):.4g} ({spec.dose_label}; trained on {span[0]:.4g}…{span[1]:.4g} at "
                            f"fraction {fraction:.4g})")
    if problems:
        warnings.warn(f"dose outside the training range: {'; '.join(problems)}; the output may be miscalibrated",
                      stacklevel=4)


def _outputs(settings: SamplingSettings) -> tuple[str, ...]:
    """The outputs a method gives: the regression (mean, posterior) and the samples (posterior, denoiser)."""
    return {"mean": ("regression",), "posterior": ("regression", "samples"), "denoiser": ("samples",)}[settings.method]


def enhance_slices(enhancer: Enhancer, low: torch.Tensor, fraction: float, settings: SamplingSettings,
                   keep_samples: bool = False) -> VolumeEnhancement:
    """Enhance unrelated slices (B, 1, H, W) of low-dose counts (each its own context): outputs in full-dose counts."""
    return enhance_volume(enhancer, low, fraction, settings, independent=True, keep_samples=keep_samples)
