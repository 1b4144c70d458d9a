"""Image planes of PET DICOM objects: one `Frame` per slice, from classic single-frame files and Enhanced PET.

A classic PET Image (SOP class 1.2.840.10008.5.1.4.1.1.128) is one plane: geometry from ImageOrientationPatient,
ImagePositionPatient, PixelSpacing; values = stored × RescaleSlope + RescaleIntercept.

An Enhanced PET Image (…1.1.130) or Legacy Converted Enhanced PET Image (…1.1.128.1) holds NumberOfFrames planes;
each frame's geometry and rescale come from its functional groups, the frame's own item of
PerFrameFunctionalGroupsSequence (5200,9230) first, else SharedFunctionalGroupsSequence (5200,9229):
  PlaneOrientationSequence (0020,9116) → ImageOrientationPatient, PlanePositionSequence (0020,9113) →
  ImagePositionPatient, PixelMeasuresSequence (0028,9110) → PixelSpacing / SliceThickness,
  PixelValueTransformationSequence (0028,9145) → RescaleSlope / RescaleIntercept (else RealWorldValueMapping
  (0040,9096) slope / intercept), FrameContentSequence (0020,9111) → FrameAcquisitionDateTime.
Units: the Units tag (0054,1001) when present, else the RealWorldValueMapping's MeasurementUnitsCodeSequence
(UCUM Bq/ml → BQML, {SUVbw}g/ml or g/ml → GML, {counts} → CNTS). Each frame also gets a classic single-frame
header (`dataset`: the object's tags without the functional groups, plus the frame's geometry, rescale, Units
and AcquisitionDate/Time) so that SUV and derived series treat it like a classic slice.

Vendor private scale factors (Philips, private creator "Philips PET Private Group"): (7053,1000) SUV scale
factor — SUVbw = rescaled value × factor — and (7053,1009) activity concentration scale factor — Bq/mL =
rescaled value × factor — read for the files whose Units are CNTS.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

PET_IMAGE = "1.2.840.10008.5.1.4.1.1.128"
ENHANCED_PET = "1.2.840.10008.5.1.4.1.1.130"
LEGACY_ENHANCED_PET = "1.2.840.10008.5.1.4.1.1.128.1"
PET_SOP_CLASSES = {PET_IMAGE: "PET Image", ENHANCED_PET: "Enhanced PET Image",
                   LEGACY_ENHANCED_PET: "Legacy Converted Enhanced PET Image"}
PHILIPS_CREATOR = "Philips PET Private Group"
UCUM_UNITS = {"bq/ml": "BQML", "{suvbw}g/ml": "GML", "g/ml": "GML", "{counts}": "CNTS", "cnts": "CNTS"}
_GROUPS = ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence")


@dataclass(frozen=True)
class Frame:
    """One image plane: its file, classic header, geometry, rescale, units code and vendor scale factors."""

    path: Path
    dataset: Any  # a classic single-frame header for this plane (pixels excluded)
    source: Any  # the dataset holding the pixels
    index: int | None  # frame number (0-based) in a multi-frame object, None for a single-frame file
    orientation: np.ndarray  # (6,) ImageOrientationPatient
    position: np.ndarray  # (3,) ImagePositionPatient
    spacing: np.ndarray  # (2,) PixelSpacing (Δrow, Δcol)
    slope: float
    intercept: float
    units: str  # the DICOM Units code (BQML, CNTS, GML, …) or ""
    suv_scale: float | None  # Philips (7053,1000)
    activity_scale: float | None  # Philips (7053,1009)

    @property
    def name(self) -> str:
        """The file name, with the frame number for a multi-frame object."""
        return self.path.name if self.index is None else f"{self.path.name} frame {self.index + 1}"


def is_pet(ds: Any) -> bool:
    """Modality PT (or, without a Modality, a PET SOP class), with pixel data."""
    sop = str(getattr(ds, "SOPClassUID", "") or "")
    modality = str(getattr(ds, "Modality", "") or "")
    return (modality == "PT" or (not modality and sop in PET_SOP_CLASSES)) and "PixelData" in ds


def vector(path: Path, value: Any, what: str, size: int) -> np.ndarray:
    """A numeric multi-valued tag as a float array of `size`, or ValueError naming the file and the tag."""
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.empty(0)
    if arr.shape != (size,) or not np.isfinite(arr).all():
        raise ValueError(f"{path}: {what}: expected {size} numbers, found {value!r}")
    return arr


def _number(value: Any, default: float) -> float:
    """A float from a DS/FD value, `default` when absent or empty."""
    try:
        return float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _private(ds: Any, element: int) -> float | None:
    """A Philips private (7053,10xx) number, None when absent or not positive."""
    try:
        value = float(ds.get_private_item(0x7053, element, PHILIPS_CREATOR).value)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def functional_group(ds: Any, frame: int, keyword: str) -> Any | None:
    """The first item of functional group `keyword` for `frame`: per-frame first, else shared."""
    for where in _GROUPS:
        seq = getattr(ds, where, None)
        if not seq:
            continue
        item = seq[frame] if where == _GROUPS[0] and frame < len(seq) else seq[0]
        group = getattr(item, keyword, None)
        if group:
            return group[0]
    return None


def _units_code(ds: Any, mapping: Any) -> str:
    """The Units code of the object, else the UCUM code of its real-world value mapping."""
    code = str(getattr(ds, "Units", "") or "").strip().upper()
    if code or mapping is None:
        return code
    units = getattr(mapping, "MeasurementUnitsCodeSequence", None)
    ucum = str(getattr(units[0], "CodeValue", "") or "").strip().lower() if units else ""
    return UCUM_UNITS.get(ucum, ucum.upper())


def _single(path: Path, ds: Any) -> Frame:
    """The one plane of a classic single-frame PET file."""
    return Frame(path=path, dataset=ds, source=ds, index=None,
                 orientation=vector(path, getattr(ds, "ImageOrientationPatient", None),
                                    "ImageOrientationPatient (0020,0037)", 6),
                 position=vector(path, getattr(ds, "ImagePositionPatient", None), "ImagePositionPatient (0020,0032)",
                                 3),
                 spacing=vector(path, getattr(ds, "PixelSpacing", None), "PixelSpacing (0028,0030)", 2),
                 slope=_number(getattr(ds, "RescaleSlope", None), 1.0) or 1.0,
                 intercept=_number(getattr(ds, "RescaleIntercept", None), 0.0),
                 units=_units_code(ds, None), suv_scale=_private(ds, 0x00), activity_scale=_private(ds, 0x09))


def _classic_base(ds: Any) -> Any:
    """The multi-frame object's tags without pixels and functional groups (copied once per object)."""
    from pydicom.dataset import Dataset

    base = Dataset()
    for element in ds:
        if element.keyword not in ("PixelData", "NumberOfFrames", *_GROUPS):
            base.add(copy.deepcopy(element))
    if hasattr(ds, "file_meta"):
        base.file_meta = copy.deepcopy(ds.file_meta)
    base.SOPClassUID = PET_IMAGE
    return base


def _multi(path: Path, ds: Any, n: int) -> list[Frame]:
    """The planes of an Enhanced / Legacy Converted Enhanced PET object, from its functional groups."""
    base = _classic_base(ds)
    frames = []
    for k in range(n):
        where = f"frame {k + 1}"
        orient = functional_group(ds, k, "PlaneOrientationSequence")
        plane = functional_group(ds, k, "PlanePositionSequence")
        measures = functional_group(ds, k, "PixelMeasuresSequence")
        if orient is None or plane is None or measures is None:
            raise ValueError(f"{path}: {where}: expected PlaneOrientationSequence, PlanePositionSequence and "
                             "PixelMeasuresSequence in the functional groups, found "
                             f"{'none' if orient is None else 'orientation'}"
                             f"{'' if plane is None else ', position'}{'' if measures is None else ', measures'}")
        transform = functional_group(ds, k, "PixelValueTransformationSequence")
        mapping = functional_group(ds, k, "RealWorldValueMappingSequence")
        rescale = transform if transform is not None else mapping
        slope = _number(getattr(rescale, "RescaleSlope", getattr(rescale, "RealWorldValueSlope", None)), 1.0) or 1.0
        intercept = _number(getattr(rescale, "RescaleIntercept", getattr(rescale, "RealWorldValueIntercept", None)),
                            0.0)
        frame = Frame(path=path, dataset=None, source=ds, index=k,
                      orientation=vector(path, getattr(orient, "ImageOrientationPatient", None),
                                         f"{where} ImageOrientationPatient (0020,0037)", 6),
                      position=vector(path, getattr(plane, "ImagePositionPatient", None),
                                      f"{where} ImagePositionPatient (0020,0032)", 3),
                      spacing=vector(path, getattr(measures, "PixelSpacing", None), f"{where} PixelSpacing (0028,0030)",
                                     2),
                      slope=slope, intercept=intercept, units=_units_code(ds, mapping),
                      suv_scale=_private(ds, 0x00), activity_scale=_private(ds, 0x09))
        header = copy.deepcopy(base)
        header.ImageOrientationPatient = [float(v) for v in frame.orientation]
        header.ImagePositionPatient = [float(v) for v in frame.position]
        header.PixelSpacing = [float(v) for v in frame.spacing]
        if getattr(measures, "SliceThickness", None) not in (None, ""):
            header.SliceThickness = measures.SliceThickness
        header.RescaleSlope, header.RescaleIntercept = f"{slope:.10g}"[:16], f"{intercept:.10g}"[:16]
        if frame.units:
            header.Units = frame.units
        content = functional_group(ds, k, "FrameContentSequence")
        stamp = str(getattr(content, "FrameAcquisitionDateTime", "") or "") if content is not None else ""
        if len(stamp) >= 14:
            header.AcquisitionDate, header.AcquisitionTime = stamp[:8], stamp[8:].split("+")[0].split("-")[0]
        header.InstanceNumber = k + 1
        frames.append(replace(frame, dataset=header))
    return frames


def frames_of(path: Path, ds: Any) -> list[Frame]:
    """Every image plane of one PET dataset (one for a classic file, NumberOfFrames for a multi-frame object)."""
    n = int(getattr(ds, "NumberOfFrames", 1) or 1)
    sop = str(getattr(ds, "SOPClassUID", "") or "")
    if n == 1 and sop not in (ENHANCED_PET, LEGACY_ENHANCED_PET):
        return [_single(path, ds)]
    return _multi(path, ds, n)


def frame_pixels(frame: Frame, cache: dict[int, np.ndarray]) -> np.ndarray:
    """The frame's stored values (Rows, Columns) as float64 (a multi-frame object is decoded once, kept in `cache`)."""
    key = id(frame.source)
    if key not in cache:
        try:
            cache[key] = np.asarray(frame.source.pixel_array, dtype=np.float64)
        except Exception as err:  # truncated data, a missing decoder, an unknown syntax: pydicom's types vary
            raise ValueError(f"{frame.path}: unreadable pixel data ({type(err).__name__}: {err})") from None
    arr = cache[key]
    if frame.index is None:
        return arr
    if arr.ndim == 2 and frame.index == 0:
        return arr
    if arr.ndim != 3 or frame.index >= arr.shape[0]:
        raise ValueError(f"{frame.path}: NumberOfFrames: expected frame {frame.index + 1} in the pixel data, "
                         f"found pixel data of shape {arr.shape}")
    return arr[frame.index]
