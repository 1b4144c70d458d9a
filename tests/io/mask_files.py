"""Lesion mask files for a PET series written by pet_series: a DICOM SEG and an RT-STRUCT, built with pydicom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"


def _base(pet_file: Path, sop_class: str, modality: str) -> Dataset:
    """A new dataset in the PET file's study and frame of reference."""
    pet = pydicom.dcmread(pet_file, stop_before_pixels=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = sop_class, meta.MediaStorageSOPInstanceUID, modality
    ds.PatientName, ds.PatientID, ds.StudyInstanceUID = pet.PatientName, pet.PatientID, pet.StudyInstanceUID
    ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), pet.FrameOfReferenceUID
    return ds


def write_seg(path: Path, pet_file: Path, labels: np.ndarray, iop, origin, pixel_spacing, dz,
              names=("lesion A", "lesion B")) -> Path:
    """A BINARY SEG of `labels` (N, H, W; 1, 2, …) on the PET grid: one frame per (segment, slice) it touches."""
    ds = _base(pet_file, SEG_STORAGE, "SEG")
    n, rows, cols = labels.shape
    row_dir, col_dir = np.array(iop[:3], float), np.array(iop[3:], float)
    normal = np.cross(row_dir, col_dir)
    ds.SegmentationType, ds.Rows, ds.Columns = "BINARY", rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
    segments = []
    for k in range(1, int(labels.max()) + 1):
        item = Dataset()
        item.SegmentNumber, item.SegmentLabel, item.SegmentAlgorithmType = k, names[k - 1], "MANUAL"
        segments.append(item)
    ds.SegmentSequence = segments
    shared, orient, measures = Dataset(), Dataset(), Dataset()
    orient.ImageOrientationPatient = list(iop)
    measures.PixelSpacing, measures.SliceThickness = list(pixel_spacing), dz
    shared.PlaneOrientationSequence, shared.PixelMeasuresSequence = [orient], [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames, per_frame = [], []
    for k in range(1, int(labels.max()) + 1):
        for z in range(n):
            if not (labels[z] == k).any():
                continue
            group, plane, ident = Dataset(), Dataset(), Dataset()
            plane.ImagePositionPatient = [float(v) for v in np.array(origin) + z * dz * normal]
            ident.ReferencedSegmentNumber = k
            group.PlanePositionSequence, group.SegmentIdentificationSequence = [plane], [ident]
            per_frame.append(group)
            frames.append(labels[z] == k)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.NumberOfFrames = len(frames)
    ds.PixelData = pydicom.pixels.pack_bits(np.stack(frames).astype(np.uint8))
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def write_rtstruct(path: Path, pet_file: Path, contours: dict[str, list[np.ndarray]]) -> Path:
    """An RT-STRUCT with one ROI per name, each a list of closed planar contours (M, 3) in LPS mm."""
    ds = _base(pet_file, RTSTRUCT_STORAGE, "RTSTRUCT")
    rois, roi_contours = [], []
    for number, (name, polys) in enumerate(contours.items(), start=7):  # ROI numbers need not start at 1
        roi = Dataset()
        roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = number, name, ds.FrameOfReferenceUID
        rois.append(roi)
        item = Dataset()
        item.ReferencedROINumber = number
        seq = []
        for poly in polys:
            contour = Dataset()
            contour.ContourGeometricType, contour.NumberOfContourPoints = "CLOSED_PLANAR", len(poly)
            contour.ContourData = [f"{v:.6g}" for v in np.asarray(poly, float).ravel()]
            seq.append(contour)
        item.ContourSequence = seq
        roi_contours.append(item)
    ds.StructureSetROISequence, ds.ROIContourSequence = rois, roi_contours
    ds.save_as(path, enforce_file_format=True)
    return path
