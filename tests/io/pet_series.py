"""Small synthetic PET DICOM series written with pydicom (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PET_STORAGE = "1.2.840.10008.5.1.4.1.1.128"


def write_pet_series(folder: Path, values: np.ndarray, iop=(1.0, 0, 0, 0, 1.0, 0), origin=(-10.0, -20.0, -30.0),
                     pixel_spacing=(2.0, 3.0), dz=4.0, units="BQML", slopes=None, decay="START", weight="70",
                     dose="370000000", half_life="6586.2", injection_time="100000", series_time="110000",
                     acquisition_times=None, order=None, series_uid=None, modality="PT") -> list[Path]:
    """Write `values` (N, H, W, true activity) as one file per slice, in the file order `order`."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    n, rows, cols = values.shape
    row_dir, col_dir = np.array(iop[:3], float), np.array(iop[3:], float)
    normal = np.cross(row_dir, col_dir)
    series_uid = series_uid or generate_uid()
    study_uid, frame_uid = generate_uid(), generate_uid()
    slopes = slopes if slopes is not None else [0.5] * n
    paths = []
    for k in order if order is not None else range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = PET_STORAGE, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = PET_STORAGE, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientName, ds.PatientID = modality, "Test^Phantom", "P001"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = "PET AC", 3, k + 1
        ds.SeriesDate, ds.SeriesTime, ds.StudyDate = "20240102", series_time, "20240102"
        ds.AcquisitionDate = "20240102"
        ds.AcquisitionTime = acquisition_times[k] if acquisition_times is not None else series_time
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.ImageOrientationPatient = list(iop)
        ds.ImagePositionPatient = [float(v) for v in np.array(origin) + k * dz * normal]
        ds.PixelSpacing, ds.SliceThickness = list(pixel_spacing), dz
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = f"{slopes[k]:.10g}", "0"
        ds.PixelData = np.rint(values[k] / slopes[k]).astype("<u2").tobytes()
        if units is not None:
            ds.Units = units
        if decay is not None:
            ds.DecayCorrection = decay
        if weight is not None:
            ds.PatientWeight = weight
        item = Dataset()
        if dose is not None:
            item.RadionuclideTotalDose = dose
        if half_life is not None:
            item.RadionuclideHalfLife = half_life
        if injection_time is not None:
            item.RadiopharmaceuticalStartTime = injection_time
        ds.RadiopharmaceuticalInformationSequence = [item]
        path = folder / f"IM{len(paths):04d}_{k}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def sample_values() -> np.ndarray:
    """(4, 6, 5) distinct positive activities (Bq/mL), exactly representable with the default slope 0.5."""
    rng = np.random.default_rng(0)
    return (rng.integers(100, 30000, size=(4, 6, 5)) * 0.5).astype(np.float64)
