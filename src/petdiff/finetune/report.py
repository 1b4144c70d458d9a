"""OUTDIR/report.json, report.md and report.png of a fine-tune: data, stages, calibration, before and after."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from petdiff.evaluate.report import panel_figure
from petdiff.finetune.assess import VolumeEnhancement
from petdiff.finetune.pairs import ScanPair
from petdiff.utils.io import atomic_write

ROWS = (("low_dose", "low dose ÷ f"), ("regression", "regression mean"), ("posterior_mean", "posterior mean"))


def _number(value: Any, digits: int = 3) -> str:
    """A table cell."""
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    """The human-readable report."""
    before, after = report["before"]["mean"], report["after"]["mean"]
    pairs = report["pairs"]
    lines = ["# petdiff finetune", "",
             f"Network to use: `petdiff enhance --network {report['network']}` (relative to this folder).", "",
             f"Started from `{report['start_network']['file']}` (sha256 {str(report['start_network']['sha256'])[:12]}…)"
             f" on {report['device']}; {len(pairs['train'])} training and {len(pairs['val'])} validation pairs, "
             f"{len(pairs['skipped'])} skipped; {report.get('time_s', 0):.0f} s.", "",
             "## Validation pairs against their full-dose scans (mean over pairs)", "",
             "| method | PSNR dB before | after | SSIM before | after | NRMSE before | after | hot-spot max ratio "
             "before | after |", "|---|---|---|---|---|---|---|---|---|"]
    for key, label in ROWS:
        b, a = before.get(key) or {}, after.get(key) or {}
        lines.append(f"| {label} | {_number(b.get('psnr'), 2)} | {_number(a.get('psnr'), 2)} | "
                     f"{_number(b.get('ssim'))} | {_number(a.get('ssim'))} | {_number(b.get('nrmse'))} | "
                     f"{_number(a.get('nrmse'))} | {_number(b.get('hotspot_max_ratio'))} | "
                     f"{_number(a.get('hotspot_max_ratio'))} |")
    lines += ["", "Organ-like regions (object split by the smoothed full dose into low, medium, high uptake): relative "
              "error of the posterior mean's region means against the full dose's.", "",
              "| region | before | after |", "|---|---|---|"]
    b_regions = (before.get("posterior_mean") or {}).get("region_rel_error") or {}
    a_regions = (after.get("posterior_mean") or {}).get("region_rel_error") or {}
    for name in a_regions:
        lines.append(f"| {name} | {_number(b_regions.get(name))} | {_number(a_regions.get(name))} |")
    calibration = report["calibration"]
    cov_b, cov_a = before.get("coverage90") or {}, after.get("coverage90") or {}
    lines += ["", "## Uncertainty", "",
              f"Std scale c = {calibration['std_scale']:.3f} (stored as `std_scale` in the residual's sidecar).", "",
              "The 90 % intervals mean ± 1.645·c·std claim to hold the noise-free full-dose image (the full-dose "
              "reconstruction's expectation over repeated scans: its resolution, not the true activity's). The "
              "full-dose scan is itself noisy and shares the low dose's counts, so it is checked through the counts "
              "the low dose lacks, rest = (full − low)/(1 − f), whose noise is independent of the input and whose "
              "variance is estimated from the pair (f/(1 − f)² · local mean of (low/f − full)²): "
              "|rest − mean| ≤ 1.645·√(c²·std² + var_rest).", "",
              "| coverage of the 90 % intervals | before | after |", "|---|---|---|",
              f"| vs the remainder, with its noise | {_number(cov_b.get('vs_remainder_with_its_noise'))} | "
              f"{_number(cov_a.get('vs_remainder_with_its_noise'))} |",
              f"| vs the full dose, ignoring its noise | {_number(cov_b.get('vs_full_dose_ignoring_its_noise'))} | "
              f"{_number(cov_a.get('vs_full_dose_ignoring_its_noise'))} |", "",
              "## Stages", ""]
    for name, stage in report["stages"].items():
        lines.append(f"- {name}: validation loss {stage['initial_val_loss']:.5g} → {stage['best_val_loss']:.5g} "
                     f"(best at {stage['best_kimg']:.3f} kimg of {stage['kimg']:.3f}; {stage['stopped']})")
    if pairs["skipped"]:
        lines += ["", "## Skipped", ""] + [f"- {s['case']}: {s['reason']}" for s in pairs["skipped"]]
    lines += ["", "Cases are named by number and content hash (sha256 of the voxel values) in `report.json`; no "
              "names, paths or header fields are written.", "", "![validation example](report.png)", ""]
    return "\n".join(lines)


def figure(pair: ScanPair, before: VolumeEnhancement, after: VolumeEnhancement, std_scale: float) -> bytes:
    """The validation pair's most active slice: low dose, full dose, start and fine-tuned means, std, error."""
    s = int(pair.full.flatten(1).sum(1).argmax())
    cols = [("full dose", pair.full[s, 0].numpy(), "activity"),
            ("low dose ÷ f", (pair.low[s, 0] / pair.fraction).numpy(), "activity"),
            ("start pair: mean", before.mean[s, 0].numpy(), "activity"),
            ("fine-tuned: mean", after.mean[s, 0].numpy(), "activity")]
    if after.std is not None:
        cols.append((f"fine-tuned: std (× {std_scale:.2f})", after.std[s, 0].numpy(), "std"))
    cols.append(("fine-tuned mean − full dose", (after.mean[s, 0] - pair.full[s, 0]).numpy(), "error"))
    return panel_figure(cols, title=f"{pair.id}, slice {s}", units="full-dose units", ncols=3)


def write_report(folder: Path, report: dict[str, Any], pair: ScanPair, before: VolumeEnhancement,
                 after: VolumeEnhancement) -> None:
    """report.json, report.md and report.png in `folder` (the figure: one validation pair's scored slices)."""
    with atomic_write(folder / "report.png", "wb") as f:
        f.write(figure(pair, before, after, float(report["calibration"]["std_scale"])))
    with atomic_write(folder / "report.json", "w") as f:
        f.write(json.dumps(_finite(report), indent=1, allow_nan=False))
    with atomic_write(folder / "report.md", "w") as f:
        f.write(markdown(report))


def _finite(value: Any) -> Any:
    """NaN / inf → None, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
