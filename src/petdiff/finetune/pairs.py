"""A user's paired scans for fine-tuning: cases matched by name (or listed in a CSV), checked, put in network units.

A pair is one acquisition reconstructed twice: the low dose (list-mode data subsampled to a fraction f) and the full
dose, with the same protocol. `check_pair` refuses, naming the field, what was expected and what was found:

* different grids or geometry (shape, voxel size, affine), or different units;
* values that are not finite or negative, or an empty scan;
* a low dose that is not plausibly a fraction of the full dose. For counts (MLEM/OSEM preserve counts) the ratio
  r = Σ low / Σ full estimates f: it must lie within a factor 2 of a given f (or in (0, 0.95] when f is not given,
  and then f = r). For concentrations (Bq/mL, SUV) a dose does not change the values: r must lie in [2/3, 3/2],
  and f must be given.

`network_pair` puts a checked pair in the networks' units on their grid: low-dose counts per pixel x = K·low (K counts
per unit: 1 for counts) and the target in full-dose units (the low-dose scale ÷ f): K·full for counts, K·full/f for
concentrations, at the pixel size the networks run at (`ModelSpec.model_pixel_size`: the scan's own within the
trained range for the scan models, else the sidecar's pixel size). Names are kept for the console only; files get
`case-NN` and a content hash.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petdiff.commands.cases import expand_inputs
from petdiff.inference.grid import EXTENSIVE_UNITS, to_model_grid
from petdiff.io import Scan, stem

COUNT_RATIO_TOLERANCE = 2.0  # Σ low / Σ full within a factor 2 of the fraction (counts)
CONCENTRATION_RATIO = (2 / 3, 3 / 2)  # Σ low / Σ full of a concentration pair
MAX_ESTIMATED_FRACTION = 0.95
AFFINE_TOLERANCE_MM = 0.01


@dataclass(frozen=True)
class CasePaths:
    """One pair as the user gave it: a name (console only), the two paths, and a per-case fraction (CSV)."""

    name: str
    low: Path
    full: Path
    fraction: float | None = None


@dataclass(frozen=True)
class ScanPair:
    """A checked pair on the networks' grid, in their units (see the module docstring)."""

    name: str  # the user's case name: printed on the console, never written to a file
    id: str  # "case-NN": how files refer to the case
    digest: str  # sha256 of the two scans' voxel values (hex, first 16)
    low: torch.Tensor  # (N, 1, H, W) low-dose counts per pixel
    full: torch.Tensor  # (N, 1, H, W) full-dose scan in full-dose units (low-dose scale ÷ f)
    fraction: float
    fraction_source: str  # "given" | "csv" | "estimated"
    pixel_size: tuple[float, float]  # (dy, dx) mm of `low` / `full`
    source_pixel_size: tuple[float, float]
    slice_mm: float
    units: str
    counts_per_unit: float
    count_ratio: float  # Σ low / Σ full as read

    def provenance(self) -> dict[str, Any]:
        """What a sidecar or report may say about the case: no name, no path, no header."""
        return {"id": self.id, "sha256": self.digest, "slices": int(self.low.shape[0]),
                "shape": list(self.low.shape[-2:]), "pixel_size_mm": list(self.pixel_size),
                "source_pixel_size_mm": list(self.source_pixel_size), "units": self.units,
                "fraction": self.fraction, "fraction_source": self.fraction_source,
                "counts_per_unit": self.counts_per_unit, "low_dose_counts": float(self.low.double().sum())}


def match_cases(low: str | Path, full: str | Path | None) -> tuple[list[CasePaths], list[str]]:
    """(pairs, problems): two folders of cases matched by name, or (full None) a CSV of low, full[, fraction]."""
    if full is None:
        return read_case_csv(Path(low))
    lows, notes = expand_inputs([low])
    fulls, more = expand_inputs([full])
    problems = notes + more
    by_name = {case.name: case for case in fulls}
    pairs = []
    for case in lows:
        if case.name not in by_name:
            problems.append(f"{case.name}: no full-dose case of that name in {full}; skipped")
            continue
        pairs.append(CasePaths(case.name, case.path, by_name.pop(case.name).path))
    problems += [f"{name}: no low-dose case of that name in {low}; skipped" for name in sorted(by_name)]
    return pairs, problems


def read_case_csv(path: Path) -> tuple[list[CasePaths], list[str]]:
    """Pairs listed in a CSV (header `low,full` and optionally `fraction`; paths relative to the CSV's folder)."""
    if not path.is_file() or path.suffix.lower() != ".csv":
        raise ValueError(f"LOW: expected a folder of low-dose cases (with FULL) or a .csv listing low,full pairs, "
                         f"found {path}")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    columns = set(rows[0]) if rows else set()
    if not {"low", "full"} <= columns:
        raise ValueError(f"{path}: expected columns 'low' and 'full' (and optionally 'fraction'), found "
                         f"{sorted(columns)}")
    pairs, problems, used = [], [], set()
    for i, row in enumerate(rows, start=2):
        low, full = (path.parent / row["low"].strip()), (path.parent / row["full"].strip())
        fraction = None
        text = (row.get("fraction") or "").strip()
        if text:
            try:
                fraction = float(text)
            except ValueError:
                problems.append(f"{path}, line {i}: fraction: expected a number, found {text!r}; skipped")
                continue
        name, k = _stem(low), 1
        while name in used:
            k += 1
            name = f"{_stem(low)}_{k}"
        used.add(name)
        pairs.append(CasePaths(name, low, full, fraction))
    return pairs, problems


def _stem(path: Path) -> str:
    """A file or folder name without format suffixes."""
    return stem(path) or "case"


def content_digest(*scans: Scan) -> str:
    """sha256 (first 16 hex) of the voxel values and voxel sizes: names the data without naming the patient."""
    h = hashlib.sha256()
    for scan in scans:
        h.update(np.ascontiguousarray(scan.images.detach().cpu().numpy(), dtype=np.float32).tobytes())
        h.update(np.asarray(scan.voxel_size, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def check_pair(low: Scan, full: Scan, fraction: float | None) -> tuple[float, str, float]:
    """(fraction, how it was found, Σ low / Σ full) of a plausible pair; ValueError naming what is wrong."""
    if low.shape != full.shape:
        raise ValueError(f"grid: expected the same (slices, rows, columns) for the low and full dose, found "
                         f"{low.shape} and {full.shape}")
    if not np.allclose(low.voxel_size, full.voxel_size, rtol=1e-3, atol=1e-4):
        raise ValueError(f"voxel size: expected the same for the low and full dose, found {low.voxel_size} and "
                         f"{full.voxel_size} mm")
    if not np.allclose(low.affine, full.affine, atol=AFFINE_TOLERANCE_MM):
        raise ValueError("geometry: expected the same position and orientation (affine) for the low and full dose, "
                         f"found affines differing by up to {float(np.abs(low.affine - full.affine).max()):.3g} mm")
    if low.units != full.units:
        raise ValueError(f"units: expected the same for the low and full dose, found {low.units} and {full.units}")
    for what, scan in (("low dose", low), ("full dose", full)):
        x = scan.images
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{what}: expected finite values, found NaN or inf")
        if bool((x < 0).any()):
            raise ValueError(f"{what}: expected non-negative values, found a minimum of {float(x.min()):.4g}")
        if not bool((x > 0).any()):
            raise ValueError(f"{what}: expected some activity, found an all-zero scan")
    ratio = float(low.images.double().sum() / full.images.double().sum())
    if low.units in EXTENSIVE_UNITS:
        if fraction is None:
            if not 0 < ratio <= MAX_ESTIMATED_FRACTION:
                raise ValueError(f"counts: expected the low dose to hold a fraction of the full dose's counts, found "
                                 f"Σ low / Σ full = {ratio:.4g}")
            return ratio, "estimated", ratio
        if not 1 / COUNT_RATIO_TOLERANCE <= ratio / fraction <= COUNT_RATIO_TOLERANCE:
            raise ValueError(f"counts: expected Σ low / Σ full near the dose fraction {fraction:g} (within a factor "
                             f"{COUNT_RATIO_TOLERANCE:g}), found {ratio:.4g}: not a low/full pair of one acquisition?")
        return fraction, "given", ratio
    if not CONCENTRATION_RATIO[0] <= ratio <= CONCENTRATION_RATIO[1]:
        raise ValueError(f"{low.units}: expected a low and a full dose of about the same concentrations (Σ low / Σ "
                         f"full in [{CONCENTRATION_RATIO[0]:.3g}, {CONCENTRATION_RATIO[1]:.3g}]), found {ratio:.4g}")
    if fraction is None:
        raise ValueError(f"fraction: a {low.units} pair does not tell its dose fraction; expected --fraction or a "
                         "'fraction' column in the CSV, found none")
    return fraction, "given", ratio


def network_pair(case: CasePaths, index: int, low: Scan, full: Scan, fraction: float, fraction_source: str,
                 ratio: float, pixel_size: tuple[float, float], counts_per_unit: float) -> ScanPair:
    """The checked pair on the networks' grid (`pixel_size`: `ModelSpec.model_pixel_size` of the scan's) and in
    their units (see the module docstring)."""
    px = (float(pixel_size[0]), float(pixel_size[1]))
    back = counts_per_unit if low.units in EXTENSIVE_UNITS else counts_per_unit / fraction
    low_grid = to_model_grid(low.images.float(), low.pixel_size, px, low.units) * counts_per_unit
    full_grid = to_model_grid(full.images.float(), full.pixel_size, px, full.units) * back
    return ScanPair(name=case.name, id=f"case-{index + 1:02d}", digest=content_digest(low, full),
                    low=low_grid.clamp_min(0), full=full_grid.clamp_min(0), fraction=float(fraction),
                    fraction_source=fraction_source, pixel_size=px, source_pixel_size=low.pixel_size,
                    slice_mm=float(low.voxel_size[0]), units=low.units, counts_per_unit=float(counts_per_unit),
                    count_ratio=ratio)
