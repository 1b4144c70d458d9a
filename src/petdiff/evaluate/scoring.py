"""Scores of every method on the same scans: image metrics vs truth and vs full dose, regions, calibration.

Scaling convention (the reference figures were measured this way): against the truth a reconstruction is first
put on the true total activity (x · Σtruth / Σx per slice); against the full-dose reconstruction it is compared
as it is, in full-dose units (low-dose images / f). PSNR's data range is the reference slice's maximum.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from petdiff.evaluate.calibration import calibration
from petdiff.evaluate.metrics import image_metrics, region_bias_noise, scale_to_total

FULL_DOSE = "full_dose_mlem"
LOW_DOSE = "low_dose_mlem"


def summarise(values: torch.Tensor) -> dict[str, float | int]:
    """Mean and standard error of the mean over slices (NaN entries left out), and how many slices counted."""
    v = values.double().flatten()
    v = v[torch.isfinite(v)]
    n = v.numel()
    mean = float(v.mean()) if n else float("nan")
    sem = float(v.std() / math.sqrt(n)) if n > 1 else float("nan")
    return {"mean": mean, "sem": sem, "n": n}


def score_images(
    images: Mapping[str, torch.Tensor],
    truth: torch.Tensor,
    mask: torch.Tensor,
    regions: torch.Tensor | None = None,
    region_names: tuple[str, ...] = ("other",),
) -> dict[str, dict]:
    """Per method: per-slice metrics vs truth (scaled to its total) and vs the full-dose MLEM image, region stats.

    vs_truth also holds psnr_gain = PSNR(method) − PSNR(low-dose MLEM) per slice (paired), when that is present.
    """
    full = images.get(FULL_DOSE)
    out: dict[str, dict] = {}
    for name, x in images.items():
        scaled = scale_to_total(x, truth)
        entry: dict[str, dict] = {"vs_truth": image_metrics(scaled, truth, mask)}
        if full is not None and name != FULL_DOSE:
            entry["vs_full_dose"] = image_metrics(x, full, mask)
        if regions is not None and len(region_names) > 1:
            bias, noise = region_bias_noise(scaled, truth, regions, len(region_names))
            entry["regions"] = {
                region: {"bias": bias[:, k], "noise": noise[:, k]} for k, region in enumerate(region_names) if k > 0
            }
        out[name] = entry
    # slice-to-slice spread dwarfs the differences between methods; the paired gain per slice does not
    if LOW_DOSE in out:
        base = out[LOW_DOSE]["vs_truth"]["psnr"]
        for entry in out.values():
            entry["vs_truth"]["psnr_gain"] = entry["vs_truth"]["psnr"] - base
    return out


def aggregate(per_slice: Mapping[str, dict]) -> dict[str, dict]:
    """Replace every per-slice tensor of score_images' result by its summarise() dict."""

    def walk(node):
        if isinstance(node, torch.Tensor):
            return summarise(node)
        return {key: walk(value) for key, value in node.items()}

    return {name: walk(entry) for name, entry in per_slice.items()}


def score_posterior(
    mean: torch.Tensor,
    std: torch.Tensor,
    truth: torch.Tensor,
    full_dose: torch.Tensor,
    mask: torch.Tensor,
    n_samples: int,
    samples: torch.Tensor | None = None,
) -> dict[str, dict[str, float]]:
    """Calibration of a K-sample posterior (full-dose units) against the full-dose MLEM image and the truth."""
    return {
        "vs_full_dose": calibration(full_dose, mean, std, mask, samples=samples, n_samples=n_samples),
        "vs_truth": calibration(truth, mean, std, mask, samples=samples, n_samples=n_samples),
    }


def best_baseline(summary: Mapping[str, dict], candidates: tuple[str, ...]) -> str:
    """The candidate with the highest mean PSNR against the truth."""
    present = [c for c in candidates if c in summary]
    if not present:
        raise ValueError(f"summary: expected at least one of {candidates}, found {sorted(summary)}")
    return max(present, key=lambda c: summary[c]["vs_truth"]["psnr"]["mean"])
