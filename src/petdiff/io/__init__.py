"""Every user file read or written: NIfTI (nibabel), DICOM PET series with SUV (pydicom), .npy/.npz, outputs.

Readers return a `Scan` (images (N, 1, H, W), units, voxel size, affine, dose, header); writers take one.
Imports only `petdiff.utils`, so every stage may use it.
"""

from petdiff.io.arrays import as_slices, check_numeric, npz_keys, read_npy_array, read_npz_array
from petdiff.io.dicom import derived_datasets, read_dicom_series, write_dicom_series
from petdiff.io.files import read_array_scan, read_scan, write_npz, write_scan
from petdiff.io.nifti import load_nifti_image, nifti_payload, read_nifti, write_nifti
from petdiff.io.paths import MAX_BYTES, is_nifti, require_file, stem
from petdiff.io.scan import UNITS, Scan, SUVInfo, lps_to_ras, scaling_affine
from petdiff.io.suv import suv_info

__all__ = [
    "MAX_BYTES",
    "UNITS",
    "SUVInfo",
    "Scan",
    "as_slices",
    "check_numeric",
    "derived_datasets",
    "is_nifti",
    "load_nifti_image",
    "lps_to_ras",
    "nifti_payload",
    "npz_keys",
    "read_array_scan",
    "read_dicom_series",
    "read_nifti",
    "read_npy_array",
    "read_npz_array",
    "read_scan",
    "require_file",
    "scaling_affine",
    "stem",
    "suv_info",
    "write_dicom_series",
    "write_nifti",
    "write_npz",
    "write_scan",
]
