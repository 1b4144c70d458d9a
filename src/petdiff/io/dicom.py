"""DICOM PET series in (pydicom) and derived series out.

Reading. From a folder (searched recursively) or a list of files, non-DICOM, non-PET (Modality ≠ PT) and
image-less files are skipped with a note; the PET files are grouped by SeriesInstanceUID (several series
are refused unless `series_uid` picks one); slices are sorted by ImagePositionPatient projected on the slice
normal n = row direction × column direction (from ImageOrientationPatient); values are stored value ×
RescaleSlope + RescaleIntercept, in Units BQML (Bq/mL) or CNTS (counts); `units="SUV"` converts Bq/mL
to SUVbw (`petdiff.io.suv`).

Geometry (DICOM patient coordinates, LPS mm). With r = IOP[0:3] (direction of increasing column index),
c = IOP[3:6] (increasing row index), PixelSpacing = (Δrow, Δcol) and P_k the ImagePositionPatient of
sorted slice k, the affine maps (column, row, slice, 1) to LPS:
  A = [ r·Δcol | c·Δrow | (P_{N−1} − P_0)/(N − 1) | P_0 ]      (third column n·spacing for one slice)
so voxel (i, j, k) sits at P_0 + i·Δcol·r + j·Δrow·c + k·step. `Scan.ras_affine()` gives the NIfTI (RAS) form.

Writing. `write_dicom_series` writes images on the grid of a DICOM source as a derived series: a new
SeriesInstanceUID and SOPInstanceUIDs, the source's patient, study, frame of reference and per-slice
geometry, ImageType DERIVED\\SECONDARY, a SeriesDescription, int16 pixels with a per-slice RescaleSlope.
"""

from __future__ import annotations

import contextlib
import copy
import io as _io
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petdiff.io.arrays import check_numeric
from petdiff.io.paths import MAX_BYTES, check_declared_size
from petdiff.io.scan import Scan
from petdiff.io.suv import suv_info
from petdiff.utils.io import atomic_write

UNITS_IN = {"BQML": "Bq/mL", "CNTS": "counts"}
UNITS_OUT = {"Bq/mL": "BQML", "counts": "CNTS", "SUV": "GML"}
_DROP_ON_WRITE = ("SmallestImagePixelValue", "LargestImagePixelValue", "SmallestPixelValueInSeries",
                  "LargestPixelValueInSeries", "PixelPaddingValue", "WindowCenter", "WindowWidth",
                  "WindowCenterWidthExplanation")


def _files(source: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[list[Path], bool, str]:
    """(files, whether they came from a folder, a name for messages)."""
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
            if not files:
                raise ValueError(f"{p}: expected a folder of DICOM files, found no files")
            return files, True, str(p)
        if not p.exists():
            raise ValueError(f"{p}: expected an existing file or folder, found nothing at this path")
        return [p], False, str(p)
    files = [Path(f) for f in source]
    if not files:
        raise ValueError("DICOM files: expected at least one file, found an empty list")
    for f in files:
        if not f.is_file():
            raise ValueError(f"{f}: expected an existing DICOM file, found nothing or a folder")
    return files, False, f"{files[0].parent} ({len(files)} files)"


def _read_one(path: Path, from_folder: bool, notes: list[str]) -> Any | None:
    """The dataset of one PET image file, None (with a note) for a file to skip, ValueError if it is corrupt."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        if not from_folder:
            raise ValueError(f"{path}: not a DICOM file (no DICM preamble)") from None
        notes.append(f"{path.name}: skipped (not a DICOM file)")
        return None
    except Exception as err:  # pydicom raises many types (struct.error, KeyError, …) on damaged files
        raise ValueError(f"{path}: truncated or corrupt DICOM file ({type(err).__name__}: {err})") from None
    modality = str(getattr(ds, "Modality", "") or "")
    if modality != "PT" or "PixelData" not in ds:
        why = f"Modality {modality or 'missing'}" if modality != "PT" else "no pixel data"
        if not from_folder:
            raise ValueError(f"{path}: expected a PET image (Modality PT with pixel data), found {why}")
        notes.append(f"{path.name}: skipped ({why})")
        return None
    return ds


def _series(datasets: list[tuple[Path, Any]], series_uid: str | None, where: str) -> list[tuple[Path, Any]]:
    """The files of one series: the only one, or the one named by `series_uid`."""
    groups: dict[str, list[tuple[Path, Any]]] = {}
    for path, ds in datasets:
        groups.setdefault(str(getattr(ds, "SeriesInstanceUID", "") or ""), []).append((path, ds))
    if series_uid is not None:
        if series_uid not in groups:
            raise ValueError(f"{where}: series_uid: expected one of {sorted(groups)}, found {series_uid!r}")
        return groups[series_uid]
    if len(groups) > 1:
        listing = "; ".join(f"{uid} ({getattr(g[0][1], 'SeriesDescription', '') or 'no description'}, "
                            f"{len(g)} files)" for uid, g in groups.items())
        raise ValueError(f"{where}: expected one PET series, found {len(groups)}: {listing}; choose one "
                         "with --series-uid UID")
    return next(iter(groups.values()))


def _vector(path: Path, ds: Any, keyword: str, tag: str, size: int) -> np.ndarray:
    """A numeric multi-valued tag as a float array of `size`, or ValueError naming the file and tag."""
    value = getattr(ds, keyword, None)
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.empty(0)
    if arr.shape != (size,) or not np.isfinite(arr).all():
        raise ValueError(f"{path}: {keyword} {tag}: expected {size} numbers, found {value!r}")
    return arr


def _pixels(path: Path, ds: Any, shape: tuple[int, int], max_bytes: int) -> np.ndarray:
    """Stored pixel values × RescaleSlope + RescaleIntercept as float64 (Rows, Columns)."""
    rows, cols = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
    if (rows, cols) != shape:
        raise ValueError(f"{path}: Rows × Columns: expected {shape[0]}×{shape[1]} like the series' first slice, "
                         f"found {rows}×{cols}")
    if int(getattr(ds, "NumberOfFrames", 1) or 1) != 1:
        raise ValueError(f"{path}: expected single-frame PET images, found NumberOfFrames {ds.NumberOfFrames}")
    bits = int(getattr(ds, "BitsAllocated", 16) or 16)
    check_declared_size(path, f"Rows × Columns ({rows}×{cols}, {bits} bits)", rows * cols * bits // 8, None,
                        max_bytes)
    try:
        arr = np.asarray(ds.pixel_array, dtype=np.float64)
    except Exception as err:  # truncated pixel data, unsupported compression: pydicom's types vary
        raise ValueError(f"{path}: unreadable pixel data ({type(err).__name__}: {err})") from None
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    return arr * slope + intercept


def read_dicom_series(source: str | os.PathLike | Sequence[str | os.PathLike], series_uid: str | None = None,
                      units: str | None = None, fraction: float | None = None, count_level: float | None = None,
                      patient_weight: float | None = None, injected_dose: float | None = None,
                      half_life: float | None = None, injection_time: Any = None,
                      decay_correction: str | None = None, max_bytes: int = MAX_BYTES) -> Scan:
    """A PET series (folder, file or files) as a Scan in LPS; `units="SUV"` converts Bq/mL to SUVbw.

    `units=None` keeps the series' own units (BQML → "Bq/mL", CNTS → "counts"). The SUV options override the
    tags (see `petdiff.io.suv.suv_info`): `patient_weight` kg, `injected_dose` MBq, `half_life` s,
    `injection_time`, `decay_correction`.
    """
    files, from_folder, where = _files(source)
    notes: list[str] = []
    found = [(f, ds) for f in files if (ds := _read_one(f, from_folder, notes)) is not None]
    if not found:
        raise ValueError(f"{where}: expected PET image files (Modality PT), found none among {len(files)} "
                         f"file(s) ({'; '.join(notes[:3])}{' …' if len(notes) > 3 else ''})")
    series = _series(found, series_uid, where)
    path0, ds0 = series[0]
    iop = _vector(path0, ds0, "ImageOrientationPatient", "(0020,0037)", 6)
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    positions = []
    for path, ds in series:
        if not np.allclose(_vector(path, ds, "ImageOrientationPatient", "(0020,0037)", 6), iop, atol=1e-4):
            raise ValueError(f"{path}: ImageOrientationPatient (0020,0037): expected {list(iop)} like "
                             f"{path0.name}, found {list(ds.ImageOrientationPatient)}")
        positions.append(_vector(path, ds, "ImagePositionPatient", "(0020,0032)", 3))
    along = np.array([p @ normal for p in positions])
    order = np.argsort(along, kind="stable")
    along, positions = along[order], [positions[i] for i in order]
    series = [series[i] for i in order]
    if len(along) > 1 and np.min(np.diff(along)) < 1e-3:
        k = int(np.argmin(np.diff(along)))
        raise ValueError(f"{series[k][0]} and {series[k + 1][0].name}: two slices at the same position "
                         f"{along[k]:.3f} mm along the slice normal (a dynamic or gated series?); "
                         "expected one static frame")
    pixel = _vector(path0, ds0, "PixelSpacing", "(0028,0030)", 2)
    if not (pixel > 0).all():
        raise ValueError(f"{path0}: PixelSpacing (0028,0030): expected positive spacings, found {list(pixel)}")
    shape = (int(getattr(ds0, "Rows", 0) or 0), int(getattr(ds0, "Columns", 0) or 0))
    native = None
    slices = []
    for path, ds in series:
        code = str(getattr(ds, "Units", "") or "").strip().upper()
        if code not in UNITS_IN:
            raise ValueError(f"{path}: Units (0054,1001): expected BQML or CNTS, found {code or 'nothing'!r}")
        if native is not None and UNITS_IN[code] != native:
            raise ValueError(f"{path}: Units (0054,1001): expected {native} like {path0.name}, found {code}")
        native = UNITS_IN[code]
        slices.append(_pixels(path, ds, shape, max_bytes))
    volume = check_numeric(where, "PixelData × RescaleSlope + RescaleIntercept", np.stack(slices))
    if len(along) > 1:
        steps = np.diff(along)
        dz = float(steps.mean())
        if np.max(np.abs(steps - dz)) > 0.01 * dz + 1e-3:
            notes.append(f"uneven slice spacing ({steps.min():.3f}–{steps.max():.3f} mm); the affine uses the mean")
        step = (positions[-1] - positions[0]) / (len(positions) - 1)
    else:
        dz = float(getattr(ds0, "SpacingBetweenSlices", 0) or getattr(ds0, "SliceThickness", 0) or 1.0)
        step = normal * dz
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2], affine[:3, 3] = row_dir * pixel[1], col_dir * pixel[0], step, \
        positions[0]
    datasets = tuple(ds for _, ds in series)
    suv = None
    out_units = native if units is None else units
    if out_units == "SUV":
        if native != "Bq/mL":
            raise ValueError(f"{where}: SUV needs activity concentrations (Units BQML), found Units CNTS")
        suv = suv_info(datasets, where, patient_weight, injected_dose, half_life, injection_time, decay_correction)
        volume = (volume * suv.factors[:, None, None]).astype(np.float32)
        notes.append(suv.describe())
    elif out_units != native:
        raise ValueError(f"{where}: units: expected {native} (the series' Units) or SUV, found {out_units!r}")
    for ds in datasets:  # the header keeps the tags; pixels live in `images`
        with contextlib.suppress(AttributeError, KeyError):
            del ds.PixelData
    origin = Path(source) if isinstance(source, (str, os.PathLike)) else path0.parent
    return Scan(images=torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[:, None], units=out_units,
                voxel_size=(dz, float(pixel[0]), float(pixel[1])), affine=affine, space="LPS", fraction=fraction,
                count_level=count_level, source=origin,
                kind="dicom", header=datasets, suv=suv, notes=tuple(notes))


def _encode(ds: Any, values: np.ndarray) -> None:
    """Store float values as int16 with RescaleSlope = max|v| / 32767 and intercept 0."""
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    slope = peak / 32767.0 if peak > 0 else 1.0
    stored = np.clip(np.rint(values / slope), -32768, 32767).astype("<i2")
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = values.shape
    ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}"[:16], "0"
    ds.PixelData = stored.tobytes()
    ds["PixelData"].VR = "OW"


def _dataset_bytes(ds: Any) -> bytes:
    """The dataset as a DICOM Part-10 file (pydicom 3 `enforce_file_format`, pydicom 2 `write_like_original`)."""
    import pydicom

    buf = _io.BytesIO()
    try:
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    except TypeError:  # pydicom < 3
        pydicom.dcmwrite(buf, ds, write_like_original=False)
    return buf.getvalue()


def derived_datasets(scan: Scan, description: str, series_number: int | None = None) -> list[Any]:
    """The scan's images as datasets of a new derived series on the grid of its DICOM source."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

    if scan.kind != "dicom" or not scan.header or len(scan.header) != scan.shape[0]:
        raise ValueError(f"scan: a DICOM output needs a DICOM input with one dataset per slice, found a "
                         f"{scan.kind} scan ({scan.shape[0]} slices)")
    series_uid = generate_uid()
    images = scan.images[:, 0].detach().cpu().numpy().astype(np.float64)
    out = []
    for k, (src, values) in enumerate(zip(scan.header, images)):
        ds = copy.deepcopy(src)
        for keyword in _DROP_ON_WRITE:
            if keyword in ds:
                delattr(ds, keyword)
        sop_uid = generate_uid()
        source_ref = Dataset()
        source_ref.ReferencedSOPClassUID, source_ref.ReferencedSOPInstanceUID = src.SOPClassUID, src.SOPInstanceUID
        ds.SourceImageSequence = [source_ref]
        ds.SOPInstanceUID, ds.SeriesInstanceUID = sop_uid, series_uid
        ds.SeriesDescription = description[:64]
        ds.DerivationDescription = description[:1024]
        ds.ImageType = ["DERIVED", "SECONDARY"]
        if series_number is not None:
            ds.SeriesNumber = series_number
        ds.InstanceNumber = k + 1
        ds.Units = UNITS_OUT[scan.units]
        _encode(ds, values)
        meta = FileMetaDataset(getattr(src, "file_meta", None) or FileMetaDataset())
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = src.SOPClassUID, sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        out.append(ds)
    return out


def write_dicom_series(scan: Scan, folder: str | os.PathLike, description: str,
                       series_number: int | None = None) -> Path:
    """Write the scan as a derived DICOM series into `folder` (staged, then moved into place as a whole)."""
    target = Path(folder)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target}: expected a folder for the DICOM series, found a file")
    datasets = derived_datasets(scan, description, series_number)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    old = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.old"
    try:
        for k, ds in enumerate(datasets):
            with atomic_write(staging / f"IM{k + 1:04d}.dcm") as f:
                f.write(_dataset_bytes(ds))
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return target
