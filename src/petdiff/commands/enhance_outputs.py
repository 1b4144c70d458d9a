"""What `petdiff enhance` writes: one folder per case (staged: all of a run's files or none) and summary.csv.

Per case, on the input's grid and in its units:
  mean.nii.gz, std.nii.gz (posterior, K ≥ 2), regression.nii.gz (mean / posterior methods)
  mean_dicom/, std_dicom/   derived DICOM series (DICOM inputs)
  enhanced.npz   mean, std, regression, input (N, 1, H, W), samples (K, N, 1, H, W) with --keep-samples,
                 affine, seeds, fraction, meta (JSON: the report of enhance_scan, network, input)
  enhanced.png   input, posterior mean and std for up to three slices
  lesions.csv    per-lesion numbers with --lesions / --hotspots (`petdiff.commands.lesion_report`)
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from petdiff.commands.panel import enhancement_panel, panel_slices
from petdiff.inference.scan import ScanEnhancement
from petdiff.io import Scan, write_scan
from petdiff.utils.io import atomic_save_npz, atomic_write, staged_outputs

CASE_OUTPUTS = ("mean.nii.gz", "std.nii.gz", "regression.nii.gz", "enhanced.npz", "enhanced.png", "mean_dicom",
                "std_dicom", "lesions.csv")
PANEL_SLICES = 3
SUMMARY = "summary.csv"
SUMMARY_FIELDS = ("case", "status", "method", "units", "shape", "seconds", "message", "input", "output")

DESCRIPTIONS = {"mean": "petdiff posterior mean (full dose)", "std": "petdiff posterior std (full dose)"}


def _numpy(scan: Scan | None) -> np.ndarray | None:
    """The scan's images as a float32 array (N, 1, H, W)."""
    return None if scan is None else scan.images.detach().cpu().numpy().astype(np.float32)


def _panel(scan: Scan, result: ScanEnhancement) -> bytes:
    """The PNG overview; the input is shown in the outputs' units (counts / f; concentrations as they are)."""
    low = _numpy(scan)[:, 0]
    fraction = float(result.report["fraction"])
    counts = scan.units == "counts"
    shown = low / fraction if counts else low
    slices = panel_slices(len(low), low.reshape(len(low), -1).max(axis=1) > 0, PANEL_SLICES)
    std = _numpy(result.std)
    title = "low-dose input / f" if counts else f"low-dose input ({scan.units})"
    mean_title = "regression mean" if result.settings.method == "mean" else "posterior mean"
    return enhancement_panel(shown, _numpy(result.mean)[:, 0], None if std is None else std[:, 0], slices,
                             input_title=title, mean_title=mean_title)


def write_case(folder: Path, scan: Scan, result: ScanEnhancement, meta: dict[str, Any],
               lesions: str | None = None) -> list[str]:
    """Write one case's outputs (and lesions.csv text) into `folder` together (an earlier run's set is replaced
    whole); returns the names."""
    with staged_outputs(folder, replaces=CASE_OUTPUTS) as stage:
        if lesions is not None:
            with atomic_write(stage / "lesions.csv", "w") as f:
                f.write(lesions)
        write_scan(result.mean, stage / "mean.nii.gz", "petdiff posterior mean")
        if result.std is not None:
            write_scan(result.std, stage / "std.nii.gz", "petdiff posterior std")
        if result.regression is not None:
            write_scan(result.regression, stage / "regression.nii.gz", "petdiff regression mean")
        if scan.kind == "dicom":
            write_scan(result.mean, stage / "mean_dicom", DESCRIPTIONS["mean"], series_number=_series(scan, 1))
            if result.std is not None:
                write_scan(result.std, stage / "std_dicom", DESCRIPTIONS["std"], series_number=_series(scan, 2))
        arrays: dict[str, np.ndarray] = {"mean": _numpy(result.mean), "input": _numpy(scan), "affine": scan.affine,
                                         "seeds": np.asarray(result.settings.seeds, dtype=np.uint64),
                                         "fraction": np.float32(result.report["fraction"]),
                                         "meta": np.asarray(json.dumps(meta))}
        for name, value in (("std", result.std), ("regression", result.regression)):
            if value is not None:
                arrays[name] = _numpy(value)
        if result.samples is not None:
            arrays["samples"] = result.samples.detach().cpu().numpy().astype(np.float32)
        atomic_save_npz(stage / "enhanced.npz", **arrays)
        with atomic_write(stage / "enhanced.png", "wb") as f:
            f.write(_panel(scan, result))
        names = sorted(p.name for p in stage.iterdir() if not p.name.startswith("."))
    return names


def _series(scan: Scan, offset: int) -> int | None:
    """A derived series number after the source's (SeriesNumber·100 + offset), None when the source has none."""
    number = getattr(scan.header[0], "SeriesNumber", None) if scan.header else None
    return None if number in (None, "") else int(number) * 100 + offset


def read_summary(path: Path) -> list[dict[str, str]]:
    """The rows of an earlier summary.csv (none when absent or unreadable)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [row for row in csv.DictReader(f) if row.get("case")]
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


def write_summary(out: Path, rows: list[dict[str, Any]]) -> Path:
    """summary.csv in `out`: this run's rows, after the rows of earlier runs for other cases."""
    path = out / SUMMARY
    mine = {row["case"] for row in rows}
    merged = [row for row in read_summary(path) if row["case"] not in mine] + rows
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(merged)
    with atomic_write(path, "w") as f:
        f.write(buffer.getvalue())
    return path


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table (case, status, method, units, shape, seconds, message)."""
    fields = SUMMARY_FIELDS[:7]
    cells = [list(fields)] + [[str(row.get(k, "")) for k in fields] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(fields) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in cells]
    return "\n".join(line.rstrip() for line in lines)
