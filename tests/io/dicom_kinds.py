"""Every kind of PET DICOM file a scanner or archive writes, built here from a classic file (nothing downloaded).

`rewrite(path, kind)` rewrites a Part-10 file as: implicit / explicit VR big endian, deflated, without its
preamble, or with compressed pixel data (RLE, JPEG-LS, JPEG 2000: pydicom's encoders; JPEG lossless: the small
process-14 encoder below, since pydicom has none). `enhanced_pet` builds an Enhanced PET multi-frame object.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

ENHANCED_PET = "1.2.840.10008.5.1.4.1.1.130"
KINDS = ("implicit", "big_endian", "deflate", "no_preamble", "rle", "jpeg_ls", "jpeg_2000", "jpeg_lossless")


def _huffman_bits() -> bytes:
    """BITS of the lossless table: the 17 categories 0…16 all get 5-bit codes (code = category)."""
    return bytes([0, 0, 0, 0, 17] + [0] * 11)


def jpeg_lossless(values: np.ndarray, bits: int = 16) -> bytes:
    """A JPEG lossless (process 14, first-order prediction: selection value 1) codestream of unsigned values."""
    rows, cols = values.shape
    x = values.astype(np.int64)
    out, acc, n_acc = bytearray(), 0, 0

    def put(code: int, length: int) -> None:
        nonlocal acc, n_acc
        acc, n_acc = (acc << length) | (code & ((1 << length) - 1)), n_acc + length
        while n_acc >= 8:
            byte = (acc >> (n_acc - 8)) & 0xFF
            out.append(byte)
            if byte == 0xFF:
                out.append(0)  # byte stuffing
            n_acc -= 8

    for r in range(rows):
        for c in range(cols):
            if r == 0 and c == 0:
                pred = 1 << (bits - 1)
            elif r == 0 or c > 0:
                pred = x[r, c - 1] if c > 0 else x[r - 1, c]
            else:
                pred = x[r - 1, c]
            d = int(x[r, c] - pred) % (1 << 16)
            d = d - (1 << 16) if d >= 1 << 15 else d
            size = 0 if d == 0 else abs(d).bit_length()
            put(size, 5)
            if 0 < size < 16:
                put(d if d > 0 else d - 1, size)
    if n_acc:
        put((1 << (8 - n_acc)) - 1, 8 - n_acc)  # pad with ones
    sof = struct.pack(">HHBHHBBBB", 0xFFC3, 11, bits, rows, cols, 1, 1, 0x11, 0)
    dht = struct.pack(">HHB", 0xFFC4, 2 + 1 + 16 + 17, 0) + _huffman_bits() + bytes(range(17))
    sos = struct.pack(">HHBBBBBB", 0xFFDA, 8, 1, 1, 0, 1, 0, 0)
    return b"\xff\xd8" + sof + dht + sos + bytes(out) + b"\xff\xd9"


def _strip_preamble(data: bytes) -> bytes:
    """The data set alone: the 128-byte preamble, `DICM` and the file meta group removed."""
    (meta_length,) = struct.unpack("<I", data[140:144])  # (0002,0000) UL group length
    return data[144 + meta_length:]


def rewrite(path: Path, kind: str) -> Path:
    """Rewrite a classic Part-10 file in place as `kind` (see KINDS); returns the path."""
    ds = pydicom.dcmread(path)
    if kind == "implicit":
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    elif kind == "big_endian":
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
        ds.PixelData = np.frombuffer(ds.PixelData, "<u2").astype(">u2").tobytes()  # OW is written as it is
        pydicom.dcmwrite(path, ds, implicit_vr=False, little_endian=False, force_encoding=True)
        return path
    elif kind == "deflate":
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    elif kind == "no_preamble":
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.save_as(path, enforce_file_format=True)
        path.write_bytes(_strip_preamble(path.read_bytes()))
        return path
    elif kind in ("rle", "jpeg_ls", "jpeg_2000"):
        uid = {"rle": RLELossless, "jpeg_ls": JPEGLSLossless, "jpeg_2000": JPEG2000Lossless}[kind]
        ds.compress(uid)
    elif kind == "jpeg_lossless":
        ds.PixelData = encapsulate([jpeg_lossless(ds.pixel_array)])
        ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
        ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    else:
        raise ValueError(f"kind: expected one of {KINDS}, found {kind!r}")
    ds.save_as(path, enforce_file_format=True)
    return path


def enhanced_pet(path: Path, values: np.ndarray, slopes: list[float], origin=(-10.0, -20.0, -30.0), dz: float = 4.0,
                 pixel_spacing=(2.0, 3.0), order=None, units_code: str | None = "BQML", ucum: str | None = None,
                 shared_rescale: bool = False) -> Path:
    """An Enhanced PET object: values (N, H, W) = stored × per-frame slope, frames in the order `order`."""
    n, rows, cols = values.shape
    order = list(range(n)) if order is None else order
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ENHANCED_PET, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = ENHANCED_PET, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID = "PT", "Test^Enhanced", "P002"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), generate_uid()
    ds.SeriesDescription, ds.SeriesNumber = "Enhanced PET", 7
    ds.SeriesDate, ds.SeriesTime, ds.StudyDate = "20240102", "110000", "20240102"
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, n
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.DecayCorrected, ds.DecayCorrectionDateTime = "YES", "20240102110000"
    ds.PatientWeight = "70"
    item = Dataset()
    item.RadionuclideTotalDose, item.RadionuclideHalfLife = "370000000", "6586.2"
    item.RadiopharmaceuticalStartDateTime = "20240102100000"
    ds.RadiopharmaceuticalInformationSequence = [item]
    if units_code is not None:
        ds.Units = units_code
    shared = Dataset()
    orient = Dataset()
    orient.ImageOrientationPatient = [1.0, 0, 0, 0, 1.0, 0]
    measures = Dataset()
    measures.PixelSpacing, measures.SliceThickness = list(pixel_spacing), dz
    shared.PlaneOrientationSequence, shared.PixelMeasuresSequence = [orient], [measures]
    if shared_rescale:
        transform = Dataset()
        transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = f"{slopes[0]:.10g}", "0", "US"
        shared.PixelValueTransformationSequence = [transform]
    if ucum is not None:
        mapping, code = Dataset(), Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = ucum, "UCUM", ucum
        mapping.MeasurementUnitsCodeSequence = [code]
        mapping.RealWorldValueSlope, mapping.RealWorldValueIntercept = slopes[0], 0.0
        shared.RealWorldValueMappingSequence = [mapping]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame, stored = [], []
    for k in order:
        group, plane = Dataset(), Dataset()
        plane.ImagePositionPatient = [origin[0], origin[1], origin[2] + k * dz]
        group.PlanePositionSequence = [plane]
        if not shared_rescale:
            transform = Dataset()
            transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = f"{slopes[k]:.10g}", "0", "US"
            group.PixelValueTransformationSequence = [transform]
        per_frame.append(group)
        stored.append(np.rint(values[k] / slopes[k]).astype("<u2"))
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = np.stack(stored).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
