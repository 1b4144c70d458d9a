"""lesions.csv of `petdiff enhance --lesions MASK | --hotspots N --hotspot-threshold T`: per-lesion numbers.

Lesions come from a mask on the case's grid (`petdiff.io.lesion_masks`: NIfTI label map, DICOM SEG, RT-STRUCT) or
are the N hottest connected regions of the enhanced mean above T (in the output units). `--lesions` names a mask
file (one case), or a folder of masks matched by case name: `<case>.nii.gz`, `<case>.nii`, `<case>.dcm`, or a
sub-folder `<case>/` holding one SEG / RT-STRUCT / NIfTI file.

One row per lesion and estimate, numbers as defined in `petdiff.evaluate.lesions` (max, peak, mean, mtv_ml, tlg;
SUVmax, SUVpeak, SUVmean when the units are SUV), in the outputs' units:
  low_dose        the input (counts: divided by the dose fraction, i.e. at full dose like the outputs)
  enhanced_mean   the enhanced image (posterior mean, or the regression mean for --method mean)
  posterior_p05, posterior_p95   the 5th and 95th percentile of each number over the posterior samples
                                 (a 90 % interval; only with samples).
No patient identifiers: the case name, label, segment / ROI name and numbers only.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from petdiff.evaluate.lesions import FIELDS, hotspot_labels, lesion_intervals, lesion_table
from petdiff.inference.scan import ScanEnhancement
from petdiff.io import Scan
from petdiff.io.lesion_masks import LesionMask, read_lesion_mask

COLUMNS = ("case", "lesion", "name", "estimate", "units", *FIELDS, "voxels")
MASK_NAMES = ("{}.nii.gz", "{}.nii", "{}.dcm", "{}")


def mask_path(lesions: Path, case: str, n_cases: int) -> Path:
    """The mask of one case: the file itself (one case), or the entry named after the case in a folder of masks."""
    if lesions.is_file():
        if n_cases > 1:
            raise ValueError(f"--lesions {lesions}: one mask file for {n_cases} cases; give a folder of masks "
                             "named after the cases (<case>.nii.gz, <case>.dcm or <case>/)")
        return lesions
    if not lesions.is_dir():
        raise ValueError(f"--lesions {lesions}: expected a mask file or a folder of masks, found nothing")
    for pattern in MASK_NAMES:
        candidate = lesions / pattern.format(case)
        if candidate.exists():
            return candidate
    tried = ", ".join(p.format(case) for p in MASK_NAMES)
    raise ValueError(f"--lesions {lesions}: expected a mask for case {case!r} ({tried}), found none")


def case_lesions(scan: Scan, result: ScanEnhancement, lesions: Path | None, n_cases: int, case: str,
                 hotspots: int | None, threshold: float | None) -> LesionMask:
    """The case's lesions: its mask on the scan's grid, or the hotspots of the enhanced mean."""
    if lesions is not None:
        return read_lesion_mask(mask_path(lesions, case, n_cases), scan)
    labels = hotspot_labels(result.mean.images.detach().cpu().numpy(), float(threshold), int(hotspots))
    if not labels.any():
        raise ValueError(f"--hotspot-threshold {threshold:g}: no voxel of the enhanced mean reaches it "
                         f"(max {float(result.mean.images.max()):.4g} {scan.units})")
    return LesionMask(labels, {k: f"hotspot {k}" for k in range(1, int(labels.max()) + 1)}, "hotspots")


def lesion_rows(case: str, scan: Scan, result: ScanEnhancement, mask: LesionMask) -> list[dict[str, object]]:
    """Rows of lesions.csv for one case (every label present in the mask)."""
    fraction = float(result.report["fraction"])
    low = scan.images.detach().cpu().numpy().astype(np.float64)
    if scan.units == "counts":
        low = low / fraction
    size = scan.voxel_size
    estimates = {"low_dose": lesion_table(low, mask.labels, size),
                 "enhanced_mean": lesion_table(result.mean.images.detach().cpu().numpy(), mask.labels, size)}
    intervals = None
    if result.samples is not None and result.samples.shape[0] >= 2:
        intervals = lesion_intervals(result.samples.detach().cpu().numpy(), mask.labels, size)
    units = result.mean.units
    rows = []
    for label in sorted(estimates["low_dose"]):
        base = {"case": case, "lesion": label, "name": mask.names.get(label, f"label {label}"), "units": units}
        for estimate, table in estimates.items():
            numbers = table[label]
            rows.append({**base, "estimate": estimate, **{f: getattr(numbers, f) for f in FIELDS},
                         "voxels": numbers.voxels})
        if intervals is not None:
            lo, hi = intervals[label]
            rows.append({**base, "estimate": "posterior_p05", **lo, "voxels": ""})
            rows.append({**base, "estimate": "posterior_p95", **hi, "voxels": ""})
    return rows


def lesions_csv(rows: list[dict[str, object]]) -> str:
    """The rows as CSV text (numbers with 6 significant digits)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    return buffer.getvalue()
