"""Lesion masks on a scan's grid: a NIfTI label map, a DICOM SEG or a DICOM RT-STRUCT → integer labels (N, H, W).

- NIfTI label map (.nii / .nii.gz, integer labels, 0 = background): sampled at the scan's voxel centres
  (nearest neighbour through both affines, so the mask may be on another grid or in another voxel order);
  on a scan without world geometry (.npy / .npz) it must have the scan's shape.
- DICOM SEG (Modality SEG; BINARY, or FRACTIONAL taken at half its maximum): every frame's pixels are placed
  through its PlanePositionSequence / PlaneOrientationSequence / PixelMeasuresSequence onto the scan; each frame
  must lie on the scan's grid (within 0.1 voxel), label = ReferencedSegmentNumber, name = SegmentLabel.
- DICOM RT-STRUCT (Modality RTSTRUCT): each CLOSED_PLANAR contour of an ROI is mapped to the scan's voxel indices
  and rasterised on its slice (pixel centres inside the polygon, skimage.draw.polygon; several contours of one ROI
  on a slice combine by the even-odd rule, so holes stay holes); label = the ROI's position in
  StructureSetROISequence (1, 2, …), name = ROIName.
SEG and RT-STRUCT carry patient coordinates (LPS mm): they need a scan with world geometry (DICOM or NIfTI), and
on a DICOM scan the same FrameOfReferenceUID. Names of segments / ROIs are kept; patient tags never are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from petdiff.io.dicom_frames import functional_group, vector
from petdiff.io.dicom_sniff import NotDicomError, read_dataset
from petdiff.io.nifti import load_nifti_image
from petdiff.io.paths import is_nifti
from petdiff.io.scan import Scan, lps_to_ras

GRID_TOLERANCE = 0.1  # voxels: how far a SEG frame or RT contour plane may sit off the scan's grid


@dataclass(frozen=True)
class LesionMask:
    """Integer labels (N, H, W) on a scan's grid, the name of each label, and the kind of file they came from."""

    labels: np.ndarray
    names: dict[int, str] = field(default_factory=dict)
    kind: str = "NIfTI label map"


def _lps_affine(scan: Scan, path: Path, kind: str) -> np.ndarray:
    """The scan's voxel → LPS affine, or ValueError when the scan has no world geometry."""
    if scan.space == "LPS":
        return scan.affine
    if scan.space == "RAS":
        return lps_to_ras(scan.affine)
    raise ValueError(f"{path}: a {kind} is placed by patient coordinates; expected a scan with world geometry "
                     f"(DICOM or NIfTI), found a {scan.kind} array")


def _check_frame_of_reference(ds: Any, scan: Scan, path: Path) -> None:
    """A DICOM scan and the mask must share the FrameOfReferenceUID."""
    if scan.kind != "dicom" or not scan.header:
        return
    mine = str(getattr(scan.header[0], "FrameOfReferenceUID", "") or "")
    theirs = str(getattr(ds, "FrameOfReferenceUID", "") or "")
    if not theirs:
        items = getattr(ds, "ReferencedFrameOfReferenceSequence", None) or []
        theirs = str(getattr(items[0], "FrameOfReferenceUID", "") or "") if items else ""
    if mine and theirs and mine != theirs:
        raise ValueError(f"{path}: FrameOfReferenceUID (0020,0052): expected the scan's {mine}, found {theirs}")


def read_nifti_mask(path: Path, scan: Scan) -> LesionMask:
    """A NIfTI integer label map sampled (nearest neighbour) at the scan's voxel centres."""
    img = load_nifti_image(path)
    data = np.asanyarray(img.dataobj)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3 or not np.isfinite(data).all() or (data < 0).any() or (np.rint(data) != data).any():
        raise ValueError(f"{path}: expected a 3D label map of non-negative integers, found shape {data.shape} "
                         f"({data.dtype})")
    data = data.astype(np.int32)
    n, h, w = scan.shape
    if scan.space is None:
        if data.shape != (w, h, n):
            raise ValueError(f"{path}: expected a label map of the scan's shape (x, y, z) = {(w, h, n)}, found "
                             f"{data.shape}")
        return LesionMask(np.ascontiguousarray(data.transpose(2, 1, 0)), kind="NIfTI label map")
    k, j, i = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), indexing="ij")
    index = np.stack([i, j, k, np.ones_like(i)], axis=-1).reshape(-1, 4).T.astype(np.float64)
    world = scan.ras_affine() @ index
    voxel = np.rint(np.linalg.inv(img.affine) @ world)[:3].astype(np.int64)
    inside = ((voxel >= 0) & (voxel < np.asarray(data.shape)[:, None])).all(axis=0)
    labels = np.zeros(n * h * w, dtype=np.int32)
    labels[inside] = data[voxel[0, inside], voxel[1, inside], voxel[2, inside]]
    return LesionMask(labels.reshape(n, h, w), kind="NIfTI label map")


def _scan_index(lps: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(M, 3) LPS points → (M, 3) continuous (slice, row, column) indices of the scan."""
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1).T
    col_row_slice = (np.linalg.inv(lps) @ homogeneous)[:3].T
    return col_row_slice[:, ::-1]


def read_seg(path: Path, ds: Any, scan: Scan) -> LesionMask:
    """A DICOM SEG's segments as labels on the scan's grid (frames must lie on it)."""
    lps = _lps_affine(scan, path, "DICOM SEG")
    _check_frame_of_reference(ds, scan, path)
    try:
        pixels = np.asarray(ds.pixel_array)
    except Exception as err:  # pydicom's decoding errors vary
        raise ValueError(f"{path}: unreadable SEG pixel data ({type(err).__name__}: {err})") from None
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    pixels = pixels.reshape(n_frames, int(ds.Rows), int(ds.Columns))
    if str(getattr(ds, "SegmentationType", "BINARY")).upper() == "FRACTIONAL":
        pixels = pixels > float(getattr(ds, "MaximumFractionalValue", 255) or 255) / 2
    names = {int(s.SegmentNumber): str(getattr(s, "SegmentLabel", "") or f"segment {s.SegmentNumber}")
             for s in getattr(ds, "SegmentSequence", [])}
    n, h, w = scan.shape
    labels = np.zeros((n, h, w), dtype=np.int32)
    for f in range(n_frames):
        where = f"{path}: frame {f + 1}"
        ident = functional_group(ds, f, "SegmentIdentificationSequence")
        orient = functional_group(ds, f, "PlaneOrientationSequence")
        plane = functional_group(ds, f, "PlanePositionSequence")
        measures = functional_group(ds, f, "PixelMeasuresSequence")
        if ident is None or orient is None or plane is None or measures is None:
            raise ValueError(f"{where}: expected SegmentIdentification, PlaneOrientation, PlanePosition and "
                             "PixelMeasures functional groups, found some missing")
        rows, cols = np.nonzero(pixels[f])
        if not len(rows):
            continue
        iop = vector(path, orient.ImageOrientationPatient, "ImageOrientationPatient (0020,0037)", 6)
        ipp = vector(path, plane.ImagePositionPatient, "ImagePositionPatient (0020,0032)", 3)
        spacing = vector(path, measures.PixelSpacing, "PixelSpacing (0028,0030)", 2)
        points = ipp + np.outer(cols * spacing[1], iop[:3]) + np.outer(rows * spacing[0], iop[3:])
        index = _scan_index(lps, points)
        snapped = np.rint(index)
        if np.abs(index - snapped).max() > GRID_TOLERANCE:
            raise ValueError(f"{where}: expected segment pixels on the PET grid, found them "
                             f"{np.abs(index - snapped).max():.2f} voxel off it (resample the SEG onto the PET first)")
        snapped = snapped.astype(np.int64)
        inside = ((snapped >= 0) & (snapped < np.asarray((n, h, w)))).all(axis=1)
        labels[snapped[inside, 0], snapped[inside, 1], snapped[inside, 2]] = int(ident.ReferencedSegmentNumber)
    return LesionMask(labels, names, "DICOM SEG")


def read_rtstruct(path: Path, ds: Any, scan: Scan) -> LesionMask:
    """A DICOM RT-STRUCT's closed planar contours rasterised on the scan's slices."""
    from skimage.draw import polygon

    lps = _lps_affine(scan, path, "DICOM RT-STRUCT")
    _check_frame_of_reference(ds, scan, path)
    rois = list(getattr(ds, "StructureSetROISequence", []))
    label_of = {int(r.ROINumber): k for k, r in enumerate(rois, start=1)}
    names = {k: str(getattr(r, "ROIName", "") or f"ROI {r.ROINumber}") for k, r in enumerate(rois, start=1)}
    n, h, w = scan.shape
    labels = np.zeros((n, h, w), dtype=np.int32)
    for roi in getattr(ds, "ROIContourSequence", []):
        number = int(roi.ReferencedROINumber)
        if number not in label_of:
            raise ValueError(f"{path}: ROIContourSequence: ReferencedROINumber {number} is not in "
                             f"StructureSetROISequence ({sorted(label_of)})")
        region = np.zeros((n, h, w), dtype=bool)
        for contour in getattr(roi, "ContourSequence", []):
            if str(getattr(contour, "ContourGeometricType", "CLOSED_PLANAR")).upper() != "CLOSED_PLANAR":
                continue
            data = np.asarray([float(v) for v in contour.ContourData], dtype=np.float64)
            if data.size < 9 or data.size % 3:
                raise ValueError(f"{path}: ContourData (3006,0050) of ROI {number}: expected x, y, z triplets of "
                                 f"at least 3 points, found {data.size} numbers")
            index = _scan_index(lps, data.reshape(-1, 3))
            k = float(np.median(index[:, 0]))
            if np.abs(index[:, 0] - round(k)).max() > GRID_TOLERANCE:
                raise ValueError(f"{path}: ROI {number}: expected a contour on a PET slice plane, found it "
                                 f"{np.abs(index[:, 0] - round(k)).max():.2f} slice off")
            if not 0 <= round(k) < n:
                continue
            rr, cc = polygon(index[:, 1], index[:, 2], shape=(h, w))
            plane = np.zeros((h, w), dtype=bool)
            plane[rr, cc] = True
            region[round(k)] ^= plane
        labels[region] = label_of[number]
    return LesionMask(labels, names, "DICOM RT-STRUCT")


def read_lesion_mask(path: str | os.PathLike, scan: Scan) -> LesionMask:
    """Labels on the scan's grid from a NIfTI label map, a DICOM SEG or RT-STRUCT file (or a folder with one)."""
    p = Path(path)
    if p.is_dir():
        found = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        if len(found) != 1:
            raise ValueError(f"{p}: expected a folder holding one mask file (SEG, RT-STRUCT or NIfTI), found "
                             f"{len(found)} files")
        p = found[0]
    if not p.is_file():
        raise ValueError(f"{p}: expected a lesion mask file, found nothing at this path")
    if is_nifti(p):
        mask = read_nifti_mask(p, scan)
    else:
        try:
            ds = read_dataset(p, defer_size=None)
        except NotDicomError:
            raise ValueError(f"{p}: expected a NIfTI label map, a DICOM SEG or RT-STRUCT, found neither") from None
        modality = str(getattr(ds, "Modality", "") or "")
        if modality == "SEG":
            mask = read_seg(p, ds, scan)
        elif modality == "RTSTRUCT":
            mask = read_rtstruct(p, ds, scan)
        else:
            raise ValueError(f"{p}: expected a DICOM SEG or RTSTRUCT, found Modality {modality or 'missing'}")
    if not mask.labels.any():
        raise ValueError(f"{p}: expected at least one lesion voxel on the scan's grid, found none")
    return mask
