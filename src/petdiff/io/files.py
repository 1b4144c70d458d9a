"""One entry for every scan file: `read_scan` dispatches on suffix or folder, `write_scan` on the output name."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petdiff.io.arrays import as_slices, check_numeric, read_npy_array, read_npz_array
from petdiff.io.dicom import read_dicom_series, write_dicom_series
from petdiff.io.dicom_sniff import looks_like_dicom
from petdiff.io.nifti import read_nifti, write_nifti
from petdiff.io.paths import is_nifti
from petdiff.io.scan import Scan, scaling_affine
from petdiff.utils.io import atomic_save_npz, atomic_write

NPZ_KEYS = ("images", "low_dose", "phantoms")
DICOM_OPTIONS = ("series_uid", "patient_weight", "injected_dose", "half_life", "injection_time",
                 "decay_correction")


def read_array_scan(path: str | os.PathLike, units: str = "counts",
                    voxel_size: tuple[float, float, float] | None = None, fraction: float | None = None,
                    count_level: float | None = None,
                    keys: tuple[str, ...] = NPZ_KEYS) -> Scan:
    """An .npy / .npz array ((H, W), (N, H, W), (N, 1, H, W), BrainWeb (N, H·W)) as a Scan without world geometry."""
    p = Path(path)
    if p.suffix.lower() == ".npz":
        key, arr = read_npz_array(p, keys, only_array=True)
    else:
        key, arr = "array", read_npy_array(p)
    arr = check_numeric(p, key, arr)
    slices = as_slices(p, key, arr)
    size = voxel_size or (1.0, 1.0, 1.0)
    return Scan(images=torch.from_numpy(np.ascontiguousarray(slices))[:, None], units=units, voxel_size=size,
                affine=scaling_affine(size), space=None, fraction=fraction, count_level=count_level, source=p,
                kind=p.suffix.lower().lstrip("."))


def is_dicom_file(path: Path) -> bool:
    """A .dcm / .ima name, or another file (not NIfTI / .npy / .npz) that is DICOM with or without its preamble."""
    if path.suffix.lower() in (".dcm", ".ima"):
        return True
    if is_nifti(path) or path.suffix.lower() in (".npy", ".npz"):
        return False
    return path.is_file() and looks_like_dicom(path)


def read_scan(source: str | os.PathLike | Sequence[str | os.PathLike], units: str | None = None,
              fraction: float | None = None, count_level: float | None = None, **options: Any) -> Scan:
    """A scan from a NIfTI / .npy / .npz file, a DICOM file, a folder of DICOM files or a list of DICOM files.

    `units`: for NIfTI and arrays the units of the values (default "counts"; the files do not say); for DICOM
    None keeps the series' Units and "SUV" converts (options: series_uid, patient_weight, injected_dose,
    half_life, injection_time, decay_correction). Arrays also take `voxel_size` (dz, dy, dx) mm.
    """
    if not isinstance(source, (str, os.PathLike)):
        return read_dicom_series(source, units=units, fraction=fraction, count_level=count_level, **options)
    p = Path(source)
    if p.is_dir() or (p.is_file() and is_dicom_file(p)):
        return read_dicom_series(p, units=units, fraction=fraction, count_level=count_level, **options)
    unknown = sorted(set(options) - {"voxel_size", "max_bytes"})
    if unknown:
        raise ValueError(f"{p}: options {unknown} apply to DICOM series only")
    if not p.exists():
        raise ValueError(f"{p}: expected an existing file or folder, found nothing at this path")
    if is_nifti(p):
        return read_nifti(p, units or "counts", fraction, count_level, **{k: v for k, v in options.items()
                                                                         if k == "max_bytes"})
    if p.suffix.lower() in (".npy", ".npz"):
        return read_array_scan(p, units or "counts", options.get("voxel_size"), fraction, count_level)
    raise ValueError(f"{p}: expected a .nii, .nii.gz, .npy, .npz or DICOM file, or a folder of DICOM files, "
                     f"found suffix {p.suffix!r}")


def write_npz(path: str | os.PathLike, scan: Scan, **extra: np.ndarray) -> Path:
    """Images, units, voxel size and affine (plus `extra` arrays) as an .npz, atomically."""
    meta = {"units": scan.units, "voxel_size": list(scan.voxel_size), "space": scan.space,
            "source": None if scan.source is None else str(scan.source), "fraction": scan.fraction,
            "count_level": scan.count_level}
    return atomic_save_npz(path, images=scan.images.detach().cpu().numpy(), affine=scan.affine,
                           meta=np.asarray(json.dumps(meta)), **extra)


def write_scan(scan: Scan, path: str | os.PathLike, description: str | None = None,
               series_number: int | None = None) -> Path:
    """Write a scan by its output name: .nii / .nii.gz, .npz, .npy, or a folder (no suffix) as a DICOM series."""
    out = Path(path)
    if is_nifti(out):
        return write_nifti(out, scan, description)
    if out.suffix.lower() == ".npz":
        return write_npz(out, scan)
    if out.suffix.lower() == ".npy":
        with atomic_write(out) as f:
            np.save(f, scan.images.detach().cpu().numpy())
        return out
    if out.suffix == "":
        return write_dicom_series(scan, out, description or "petdiff derived image", series_number)
    raise ValueError(f"{out}: expected an output named .nii, .nii.gz, .npz, .npy or a folder (DICOM series), "
                     f"found suffix {out.suffix!r}")
