"""DICOM PET series in (pydicom) and derived series out.

Reading. Files are DICOM by their Part-10 preamble or, without one, by their first data element
(`petdiff.io.dicom_sniff`); implicit / explicit VR, big endian, deflated and compressed pixel data (JPEG-LS,
JPEG 2000, JPEG lossless, RLE: the pylibjpeg plugins and pyjpegls) are read by pydicom. From a folder (searched
recursively) or a list of files, non-DICOM files are skipped with a note; the DICOM files are grouped by
SeriesInstanceUID and the PET series found by Modality PT or a PET SOP class (classic, Enhanced or Legacy
Converted Enhanced PET) with pixel data; other series (CT, SEG, RT-STRUCT, …) are skipped with a note, and
several PET series are refused unless `series_uid` picks one. Every image plane (a classic file, or each frame
of a multi-frame object with its own functional groups: `petdiff.io.dicom_frames`) is sorted by
ImagePositionPatient projected on the slice normal n = row direction × column direction; values are stored
value × RescaleSlope + RescaleIntercept, in Units BQML (Bq/mL), CNTS (counts; Bq/mL when the Philips activity
concentration scale factor (7053,1009) is present) or GML (SUVbw already). `units="SUV"` converts Bq/mL to
SUVbw (`petdiff.io.suv`); when its standard tags are incomplete and every plane carries the Philips SUV scale
factor (7053,1000), SUVbw = rescaled stored value × that factor. The notes say which tags were used.

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
from petdiff.io.dicom_frames import PET_SOP_CLASSES, Frame, frame_pixels, frames_of, is_pet
from petdiff.io.dicom_sniff import NotDicomError, read_dataset
from petdiff.io.paths import MAX_BYTES, check_declared_size
from petdiff.io.scan import Scan, SUVInfo
from petdiff.io.suv import suv_info
from petdiff.utils.io import atomic_write

UNITS_IN = {"BQML": "Bq/mL", "CNTS": "counts", "GML": "SUV"}
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


def _read_all(files: list[Path], from_folder: bool, notes: list[str]) -> list[tuple[Path, Any]]:
    """(path, dataset) of every DICOM file; other files are skipped with a note (refused when given alone)."""
    found = []
    for path in files:
        try:
            found.append((path, read_dataset(path)))
        except NotDicomError:
            if not from_folder:
                raise ValueError(f"{path}: not a DICOM file (no DICM preamble and no DICOM data element at the "
                                 "start)") from None
            notes.append(f"{path.name}: skipped (not a DICOM file)")
    return found


def _describe(group: list[tuple[Path, Any]]) -> str:
    """'CT, "WB CT", 12 files' for a series note."""
    ds = group[0][1]
    modality = str(getattr(ds, "Modality", "") or "")
    kind = modality or PET_SOP_CLASSES.get(str(getattr(ds, "SOPClassUID", "") or ""), "no Modality")
    description = str(getattr(ds, "SeriesDescription", "") or "no description")
    return f"{kind}, {description!r}, {len(group)} file{'s' if len(group) != 1 else ''}"


def pet_series(datasets: list[tuple[Path, Any]], series_uid: str | None, where: str, from_folder: bool,
               notes: list[str]) -> list[tuple[Path, Any]]:
    """The files of one PET series (found by Modality PT or a PET SOP class, with pixel data); others get a note.

    Several PET series are refused unless `series_uid` names one.
    """
    groups: dict[str, list[tuple[Path, Any]]] = {}
    for path, ds in datasets:
        groups.setdefault(str(getattr(ds, "SeriesInstanceUID", "") or ""), []).append((path, ds))
    pet: dict[str, list[tuple[Path, Any]]] = {}
    for uid, group in groups.items():
        images = [(p, ds) for p, ds in group if is_pet(ds)]
        if images and series_uid in (None, uid):
            pet[uid] = images
            if len(images) < len(group):
                notes.append(f"series {uid}: {len(group) - len(images)} file(s) without PET pixel data skipped")
        elif images:
            notes.append(f"series {uid} ({_describe(group)}): skipped (--series-uid picks another)")
        else:
            if not from_folder:
                ds = group[0][1]
                why = f"Modality {getattr(ds, 'Modality', '') or 'missing'}"
                why += "" if str(getattr(ds, "Modality", "")) != "PT" else " without pixel data"
                raise ValueError(f"{group[0][0]}: expected a PET image (Modality PT with pixel data), found {why}")
            notes.append(f"series {uid} ({_describe(group)}): skipped (not a PET image series)")
    if series_uid is not None and series_uid not in pet:
        raise ValueError(f"{where}: series_uid: expected one of {sorted(groups)}, found {series_uid!r}")
    if not pet:
        raise ValueError(f"{where}: expected PET image files (Modality PT), found none among {len(datasets)} DICOM "
                         f"file(s) ({'; '.join(notes[:3])}{' …' if len(notes) > 3 else ''})")
    if len(pet) > 1:
        listing = "; ".join(f"{uid} ({_describe(g)})" for uid, g in pet.items())
        raise ValueError(f"{where}: expected one PET series, found {len(pet)}: {listing}; choose one "
                         "with --series-uid UID")
    return next(iter(pet.values()))


def _sorted_frames(frames: list[Frame]) -> tuple[list[Frame], np.ndarray, np.ndarray]:
    """Frames sorted along the slice normal (same orientation required), their positions along it, the normal."""
    first = frames[0]
    iop = first.orientation
    normal = np.cross(iop[:3], iop[3:])
    for frame in frames:
        if not np.allclose(frame.orientation, iop, atol=1e-4):
            raise ValueError(f"{frame.path}: ImageOrientationPatient (0020,0037): expected {list(iop)} like "
                             f"{first.name}, found {list(frame.orientation)}")
    along = np.array([f.position @ normal for f in frames])
    order = np.argsort(along, kind="stable")
    frames, along = [frames[i] for i in order], along[order]
    if len(along) > 1 and np.min(np.diff(along)) < 1e-3:
        k = int(np.argmin(np.diff(along)))
        raise ValueError(f"{frames[k].path} ({frames[k].name}) and {frames[k + 1].name}: two slices at the same "
                         f"position {along[k]:.3f} mm along the slice normal (a dynamic or gated series?); "
                         "expected one static frame")
    return frames, along, normal


def _values(frames: list[Frame], shape: tuple[int, int], max_bytes: int, notes: list[str]) -> tuple[np.ndarray, str]:
    """(stored × RescaleSlope + RescaleIntercept (N, Rows, Columns), native units) with Philips CNTS → Bq/mL."""
    first = frames[0]
    codes = {f.units for f in frames}
    if len(codes) > 1:
        raise ValueError(f"{first.path}: Units (0054,1001): expected one code for the series, found {sorted(codes)}")
    code = first.units
    if code not in UNITS_IN:
        raise ValueError(f"{first.path}: Units (0054,1001): expected BQML, CNTS or GML, found {code or 'nothing'!r}")
    bits = int(getattr(first.source, "BitsAllocated", 16) or 16)
    check_declared_size(first.path, f"Rows × Columns × slices ({shape[0]}×{shape[1]}×{len(frames)}, {bits} bits)",
                        shape[0] * shape[1] * len(frames) * bits // 8, None, max_bytes)
    cache: dict[int, np.ndarray] = {}
    slices = []
    for frame in frames:
        arr = frame_pixels(frame, cache)
        if arr.shape != shape:
            raise ValueError(f"{frame.path}: Rows × Columns: expected {shape[0]}×{shape[1]} like the series' first "
                             f"slice, found {arr.shape[0]}×{arr.shape[1]}")
        slices.append(arr * frame.slope + frame.intercept)
    volume = np.stack(slices)
    native = UNITS_IN[code]
    scales = [f.activity_scale for f in frames]
    if code == "CNTS" and all(s is not None for s in scales):
        volume = volume * np.asarray(scales, dtype=np.float64)[:, None, None]
        native = "Bq/mL"
        notes.append(f"Units CNTS × Philips activity concentration scale factor (7053,1009) = {scales[0]:.6g} "
                     "→ Bq/mL")
    return volume, native


def _to_units(volume: np.ndarray, native: str, units: str | None, frames: list[Frame], where: str,
              suv_options: dict[str, Any], notes: list[str]) -> tuple[np.ndarray, str, SUVInfo | None]:
    """The values in the requested units: the series' own, or SUV (tags, else the Philips SUV scale factor)."""
    out_units = native if units is None else units
    if out_units == native:
        if native == "SUV":
            notes.append("Units GML: the values are SUVbw already (no conversion)")
        return volume, native, None
    if out_units != "SUV":
        raise ValueError(f"{where}: units: expected {native} (the series' Units) or SUV, found {out_units!r}")
    datasets = tuple(f.dataset for f in frames)
    philips = [f.suv_scale for f in frames]
    try:
        if native != "Bq/mL":
            raise ValueError(f"{where}: SUV needs activity concentrations (Units BQML), found Units CNTS")
        suv = suv_info(datasets, where, **suv_options)
    except ValueError:
        if not all(s is not None for s in philips) or any(v is not None for v in suv_options.values()):
            raise
        raw = np.asarray([f.activity_scale or 1.0 for f in frames]) if native == "Bq/mL" else np.ones(len(frames))
        factors = np.asarray(philips, dtype=np.float64) / raw
        mode = str(getattr(datasets[0], "DecayCorrection", "") or "as the vendor applied it")
        suv = SUVInfo(factors=factors, weight_g=float("nan"), injected_dose_bq=float("nan"),
                      half_life_s=float("nan"), decay_correction=mode, decay_s=np.zeros(len(frames)),
                      sources={"suv": "Philips private SUV scale factor (7053,1000) × the rescaled stored values "
                                      "(the standard SUV tags are incomplete)"})
    notes.append(suv.describe())
    return volume * suv.factors[:, None, None], "SUV", suv


def read_dicom_series(source: str | os.PathLike | Sequence[str | os.PathLike], series_uid: str | None = None,
                      units: str | None = None, fraction: float | None = None, count_level: float | None = None,
                      patient_weight: float | None = None, injected_dose: float | None = None,
                      half_life: float | None = None, injection_time: Any = None,
                      decay_correction: str | None = None, max_bytes: int = MAX_BYTES) -> Scan:
    """A PET series (folder, file or files) as a Scan in LPS; `units="SUV"` converts Bq/mL to SUVbw.

    `units=None` keeps the series' own units (BQML → "Bq/mL", CNTS → "counts", GML → "SUV"). The SUV options
    override the tags (see `petdiff.io.suv.suv_info`): `patient_weight` kg, `injected_dose` MBq, `half_life` s,
    `injection_time`, `decay_correction`.
    """
    files, from_folder, where = _files(source)
    notes: list[str] = []
    series = pet_series(_read_all(files, from_folder, notes), series_uid, where, from_folder, notes)
    frames = [frame for path, ds in series for frame in frames_of(path, ds)]
    frames, along, normal = _sorted_frames(frames)
    first = frames[0]
    pixel = first.spacing
    if not (pixel > 0).all():
        raise ValueError(f"{first.path}: PixelSpacing (0028,0030): expected positive spacings, found {list(pixel)}")
    shape = (int(getattr(first.source, "Rows", 0) or 0), int(getattr(first.source, "Columns", 0) or 0))
    volume, native = _values(frames, shape, max_bytes, notes)
    volume = check_numeric(where, "PixelData × RescaleSlope + RescaleIntercept", volume)
    if len(along) > 1:
        steps = np.diff(along)
        dz = float(steps.mean())
        if np.max(np.abs(steps - dz)) > 0.01 * dz + 1e-3:
            notes.append(f"uneven slice spacing ({steps.min():.3f}–{steps.max():.3f} mm); the affine uses the mean")
        step = (frames[-1].position - first.position) / (len(frames) - 1)
    else:
        ds0 = first.dataset
        dz = float(getattr(ds0, "SpacingBetweenSlices", 0) or getattr(ds0, "SliceThickness", 0) or 1.0)
        step = normal * dz
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1] = first.orientation[:3] * pixel[1], first.orientation[3:] * pixel[0]
    affine[:3, 2], affine[:3, 3] = step, first.position
    suv_options = {"patient_weight": patient_weight, "injected_dose": injected_dose, "half_life": half_life,
                   "injection_time": injection_time, "decay_correction": decay_correction}
    volume, out_units, suv = _to_units(volume, native, units, frames, where, suv_options, notes)
    datasets = tuple(f.dataset for f in frames)
    for ds in {id(f.source): f.source for f in frames}.values():  # the header keeps the tags; pixels: `images`
        with contextlib.suppress(AttributeError, KeyError):
            del ds.PixelData
    origin = Path(source) if isinstance(source, (str, os.PathLike)) else first.path.parent
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
