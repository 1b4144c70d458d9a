"""Files of an evaluation: metrics.json (strict JSON), metrics.md, one panel PNG per example, PSNR-vs-dose plot."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petdiff.evaluate.metrics import scale_to_total
from petdiff.evaluate.pipeline import DoseResult, Evaluation
from petdiff.evaluate.regions import __doc__ as REGIONS_DOC
from petdiff.evaluate.report import (
    METHOD_LABELS,
    calibration_table,
    dose_figure,
    metrics_table,
    panel_figure,
    region_table,
)
from petdiff.utils.io import atomic_write


def json_safe(value: Any) -> Any:
    """Plain JSON values: tensors → lists / numbers, NaN and ±inf → None, tuples → lists."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def method_labels(result: DoseResult) -> dict[str, str]:
    """Display names with the tuned parameters, e.g. 'MLEM + Gaussian filter (FWHM 1.25 px)'."""
    s = result.settings
    return {
        **METHOD_LABELS,
        "low_dose_mlem": f"low-dose MLEM ({s.n_iter} it.)",
        "early_stop_mlem": f"early-stopped MLEM ({s.early_stop_iter} it.)",
        "post_filter": f"MLEM + Gaussian filter (FWHM {s.fwhm:g} px)",
        "full_dose_mlem": f"full-dose MLEM ({s.n_iter} it.)",
        "noiseless_mlem": f"noiseless MLEM ({s.n_iter} it.)",
    }


def result_json(result: DoseResult) -> dict[str, Any]:
    """One dose fraction: tuned baselines (with their training curves), summaries, calibration, per-slice PSNR."""
    s = result.settings
    return {
        "fraction": result.fraction,
        "baselines": {
            "early_stop_iter": s.early_stop_iter,
            "fwhm_px": s.fwhm,
            "tuned_on": {"phantoms": "procedural", "n": s.n, "seed": s.seed, "counts": s.counts,
                         "fraction": s.fraction, "resolution": s.resolution},
            "training_psnr_by_iter": list(s.psnr_by_iter),
            "training_psnr_by_fwhm": list(s.psnr_by_fwhm),
        },
        "best_baseline": result.best_baseline,
        "methods": result.summary,
        "calibration": result.calibration,
        "lesions": result.lesions,
        "per_slice_psnr_vs_truth": {name: entry["vs_truth"]["psnr"] for name, entry in result.per_slice.items()},
    }


def evaluation_json(evaluation: Evaluation, settings: dict[str, Any], note: str) -> dict[str, Any]:
    """The whole metrics.json document."""
    ph = evaluation.phantoms
    regions = {"names": list(ph.region_names[1:])}
    if ph.region_names and "grey_matter" in ph.region_names and ph.source != "procedural":
        regions["definition"] = " ".join(REGIONS_DOC.split())
    return json_safe({
        "settings": {**settings, "phantoms": ph.source, "slices": ph.indices},
        "model": evaluation.model_info,
        "note": note,
        "conventions": (
            "vs truth: x scaled to the true total (x·Σtruth/Σx per slice); vs full dose: full-dose units "
            "(low-dose images / fraction); PSNR data range = reference slice max; *_head inside the head mask "
            "(fill_holes(dilate(truth > 0, 2 px))); mean ± s.e.m. over slices; region bias = relative error of the "
            "region mean, noise = std/mean inside the region"
        ),
        "regions": regions,
        "results": [result_json(r) for r in evaluation.results],
    })


def markdown(evaluation: Evaluation, note: str) -> str:
    """metrics.md: one section per dose fraction with the metric, region and calibration tables."""
    lines = ["# petdiff evaluation", "", note, ""]
    for r in evaluation.results:
        labels = method_labels(r)
        lines += [f"## dose fraction {r.fraction:g} ({evaluation.scans.counts:g} full-dose counts, "
                  f"{len(evaluation.phantoms.indices)} slices of {evaluation.phantoms.source})", "",
                  metrics_table(r.summary, labels), ""]
        regions = region_table(r.summary, labels)
        if regions:
            lines += ["Regions (vs truth):", "", regions, ""]
        if r.calibration:
            lines += ["Posterior calibration inside the head, observed (expected if calibrated):", "",
                      calibration_table(r.calibration), ""]
    return "\n".join(lines)


def example_columns(evaluation: Evaluation, result: DoseResult, i: int) -> list[tuple[str, np.ndarray, str]]:
    """Panel columns of slice i: truth, full dose, low dose, best baseline, posterior mean / std, error map."""
    labels = method_labels(result)
    images = result.images

    def img(t: torch.Tensor) -> np.ndarray:
        return t[i, 0].detach().cpu().float().numpy()

    truth = evaluation.scans.truth
    cols = [("truth", img(truth), "activity"),
            (labels["full_dose_mlem"], img(images["full_dose_mlem"]), "activity"),
            (f"{labels['low_dose_mlem']} / f", img(images["low_dose_mlem"]), "activity")]
    best = result.best_baseline
    if best != "low_dose_mlem":
        cols.append((labels[best], img(images[best]), "activity"))
    shown = next((name for name in ("posterior_mean", "regression_mean") if name in images), best)
    if "regression_mean" in images:
        cols.append((labels["regression_mean"], img(images["regression_mean"]), "activity"))
    if "posterior_mean" in images:
        cols.append(("posterior mean", img(images["posterior_mean"]), "activity"))
    if result.std is not None:
        cols.append(("posterior std", img(result.std), "std"))
    error = scale_to_total(images[shown][i : i + 1], truth[i : i + 1]) - truth[i : i + 1]
    cols.append((f"error: {METHOD_LABELS[shown]} − truth", error[0, 0].cpu().numpy(), "error"))
    return cols


def example_slices(n: int, count: int) -> list[int]:
    """`count` batch positions spread evenly over n slices (centres of equal parts)."""
    count = min(count, n)
    return [int((k + 0.5) * n / count) for k in range(count)]


def write_outputs(
    out: str | os.PathLike, evaluation: Evaluation, settings: dict[str, Any], note: str, examples: int = 3
) -> list[Path]:
    """Write metrics.json, metrics.md, example_<slice>.png (main fraction = the first) and psnr_vs_dose.png."""
    out = Path(out)
    written = []

    def put(name: str, data: bytes | str) -> None:
        path = out / name
        with atomic_write(path, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        written.append(path)

    doc = evaluation_json(evaluation, settings, note)
    put("metrics.json", json.dumps(doc, indent=1, allow_nan=False) + "\n")
    put("metrics.md", markdown(evaluation, note) + "\n")
    main = evaluation.results[0]
    ids = evaluation.phantoms.indices
    for i in example_slices(len(ids), examples):
        title = (f"slice {ids[i]} of {Path(evaluation.phantoms.source).name}, {evaluation.scans.counts:g} counts, "
                 f"dose fraction {main.fraction:g}")
        put(f"example_{ids[i]:03d}.png", panel_figure(example_columns(evaluation, main, i), title, ncols=4))
    if len(evaluation.results) > 1:
        ordered = sorted(evaluation.results, key=lambda r: r.fraction)
        methods = [m for m in ordered[0].summary if all(m in r.summary for r in ordered)]
        psnr = {m: [(r.summary[m]["vs_truth"]["psnr"]["mean"], r.summary[m]["vs_truth"]["psnr"]["sem"])
                    for r in ordered] for m in methods}
        put("psnr_vs_dose.png", dose_figure([r.fraction for r in ordered], psnr))
    return written
