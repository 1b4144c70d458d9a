"""Before/after scores of a pair of networks on the validation pairs, against their full-dose scans.

Each validation volume is already on the networks' grid in low-dose counts per pixel, so it goes straight to
`inference.volume.enhance_volume` (`enhance_pair`): the scan models run on whole slices with their k neighbour
slices, the first 64×64 pair on blended tiles. To bound the time, a fixed number of slices spread over each volume
is scored (`scored_slices`), each as its context stack. Scores, per method (low dose ÷ f, regression mean,
posterior mean), averaged over the slices holding activity:

* PSNR (data range = the full dose's slice maximum), SSIM and NRMSE against the full dose;
* organ-like regions — the object split by the smoothed full dose into low (5–20 % of its 99.9th percentile),
  medium (20–50 %) and high (≥ 50 %) uptake — and the relative error of each region's mean against the full dose's;
* hot spots — the 5 hottest connected regions of the smoothed full dose above half its maximum — and the ratio of
  each method's maximum in them to the full dose's (SUVmax ratio);
* the coverage of the 90 % intervals (see `calibrate`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from petdiff.evaluate.lesions import hotspot_labels
from petdiff.evaluate.metrics import nrmse, psnr, ssim
from petdiff.finetune.calibrate import Z90, coverage, object_mask, remainder
from petdiff.finetune.pairs import ScanPair
from petdiff.inference.context import context_stack
from petdiff.inference.enhancers import Enhancer
from petdiff.inference.settings import SamplingSettings
from petdiff.inference.volume import VolumeEnhancement, enhance_volume
from petdiff.recon import gaussian_filter

REGIONS = {"low_uptake": (0.05, 0.2), "medium_uptake": (0.2, 0.5), "high_uptake": (0.5, float("inf"))}
HOTSPOTS = 5


def scored_slices(pair: ScanPair, count: int) -> list[int]:
    """`count` slices spread evenly over those of the pair holding activity (all when fewer)."""
    live = [i for i in range(pair.full.shape[0]) if bool(pair.full[i].amax() > 0)]
    if len(live) <= count:
        return live
    return [live[int((j + 0.5) * len(live) / count)] for j in range(count)]


def restrict(pair: ScanPair, slices: list[int]) -> ScanPair:
    """The pair with only `slices` (for scoring a subset; their neighbours are not needed any more)."""
    return replace(pair, low=pair.low[slices], full=pair.full[slices])


def enhance_pair(enhancer: Enhancer, pair: ScanPair, settings: SamplingSettings, slices: list[int] | None = None
                 ) -> VolumeEnhancement:
    """Enhance one pair's low dose (or only `slices` of it, each with its neighbours) in full-dose units."""
    slices = list(range(pair.low.shape[0])) if slices is None else slices
    stacks = context_stack(pair.low, slices, enhancer.spec.context)
    return enhance_volume(enhancer, stacks, pair.fraction, settings)


def scaled(result: VolumeEnhancement, std_scale: float) -> VolumeEnhancement:
    """The std `enhance_volume` reports for the same pair recalibrated by c: the same mean, the std c× wider (the
    result of a pass at c = 1 reused; kept samples are not, so there must be none)."""
    if result.samples is not None:
        raise ValueError("scaled: expected an enhancement without kept samples (they would need widening)")
    return replace(result, std=None if result.std is None else result.std * std_scale)


def image_scores(x: torch.Tensor, full: torch.Tensor) -> dict[str, float]:
    """Mean PSNR / SSIM / NRMSE against the full dose over the slices holding activity."""
    live = full.flatten(1).amax(dim=1) > 0
    x, full = x[live], full[live]
    return {"psnr": float(psnr(x, full).mean()), "ssim": float(ssim(x, full).mean()),
            "nrmse": float(nrmse(x, full).mean())}


def region_labels(full: torch.Tensor) -> dict[str, torch.Tensor]:
    """Organ-like regions from the smoothed full dose (see the module docstring)."""
    smooth = gaussian_filter(full, 2.0)
    top = float(torch.quantile(smooth.flatten()[::max(1, smooth.numel() // 1_000_000)], 0.999)) or 1.0
    return {name: (smooth >= lo * top) & (smooth < hi * top) for name, (lo, hi) in REGIONS.items()}


def region_errors(x: torch.Tensor, full: torch.Tensor, regions: dict[str, torch.Tensor]) -> dict[str, float | None]:
    """Relative error of each region's mean against the full dose's (None for an empty region)."""
    out: dict[str, float | None] = {}
    for name, mask in regions.items():
        ref = float(full[mask].double().mean()) if bool(mask.any()) else 0.0
        out[name] = float(x[mask].double().mean()) / ref - 1 if ref > 0 else None
    return out


def hotspot_ratios(x: torch.Tensor, full: torch.Tensor, hotspots: np.ndarray) -> list[float]:
    """max of x / max of the full dose in each hot spot."""
    xs, fs = x[:, 0].numpy(), full[:, 0].numpy()
    return [float(xs[hotspots == j].max() / fs[hotspots == j].max()) for j in range(1, int(hotspots.max()) + 1)
            if fs[hotspots == j].max() > 0]


def volume_scores(pair: ScanPair, result: VolumeEnhancement | None, std_scale: float = 1.0) -> dict[str, Any]:
    """Scores of the low dose and (given `result`) the networks' outputs on one validation pair.

    `result.std` is the std a user reads (a recalibrated pair's already c× wider); `std_scale` c is only recorded.
    """
    full, low_fd = pair.full, pair.low / pair.fraction
    regions = region_labels(full)
    smooth = gaussian_filter(full, 2.0)
    hotspots = hotspot_labels(smooth[:, 0].numpy(), 0.5 * float(smooth.max()), HOTSPOTS)
    methods = {"low_dose": low_fd}
    if result is not None:
        methods["regression"] = result.regression
        if result.std is not None:
            methods["posterior_mean"] = result.mean
    scores: dict[str, Any] = {}
    for name, x in methods.items():
        ratios = hotspot_ratios(x, full, hotspots)
        scores[name] = {**image_scores(x, full), "region_rel_error": region_errors(x, full, regions),
                        "hotspot_max_ratio": float(np.mean(ratios)) if ratios else None,
                        "hotspot_max_abs_error": float(np.mean([abs(r - 1) for r in ratios])) if ratios else None}
    if result is not None and result.std is not None and pair.fraction <= 0.9:
        rest, var_rest = remainder(pair.low, full, pair.fraction)
        mask = object_mask(full)
        error, std, var = rest[mask] - result.mean[mask], result.std[mask], var_rest[mask]
        scores["coverage90"] = {
            "vs_remainder_with_its_noise": coverage(error, std, var, 1.0),
            "vs_full_dose_ignoring_its_noise": float(((full - result.mean)[mask].abs()
                                                      <= Z90 * std).double().mean()),
            "voxels": int(mask.sum()), "std_scale": std_scale}
    return scores


def calibration_data(pair: ScanPair, result: VolumeEnhancement) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rest − mean, std, var_rest) at the object voxels of one validation pair (for `calibrate.std_scale`)."""
    rest, var_rest = remainder(pair.low, pair.full, pair.fraction)
    mask = object_mask(pair.full)
    return (rest - result.mean)[mask], result.std[mask], var_rest[mask]


def average(per_case: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of every number over the cases (nested dicts kept; None where no case has a value)."""
    first = per_case[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        if isinstance(value, dict):
            out[key] = average([case[key] for case in per_case if isinstance(case.get(key), dict)])
        elif isinstance(value, (int, float)) or value is None:
            values = [case.get(key) for case in per_case if isinstance(case.get(key), (int, float))]
            out[key] = float(np.mean(values)) if values else None
    return out
