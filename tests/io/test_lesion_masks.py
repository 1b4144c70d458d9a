"""Lesion masks onto a PET grid: NIfTI label maps (other voxel order), DICOM SEG, RT-STRUCT (with a hole)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from mask_files import write_rtstruct, write_seg
from pet_series import write_pet_series

from petdiff.io import read_scan
from petdiff.io.lesion_masks import read_lesion_mask

IOP, ORIGIN, SPACING, DZ = (1.0, 0, 0, 0, 1.0, 0), (-10.0, -20.0, -30.0), (2.0, 3.0), 4.0


@pytest.fixture
def pet(tmp_path):
    values = np.full((4, 12, 10), 1000.0)
    paths = write_pet_series(tmp_path / "pet", values, iop=IOP, origin=ORIGIN, pixel_spacing=SPACING, dz=DZ,
                             order=[3, 1, 0, 2])
    return read_scan(tmp_path / "pet"), paths[0]


def _labels(shape=(4, 12, 10)) -> np.ndarray:
    labels = np.zeros(shape, dtype=np.int32)
    labels[1:3, 2:5, 3:6] = 1
    labels[2, 8:11, 1:3] = 2
    return labels


def test_seg_on_the_pet_grid(tmp_path, pet):
    scan, pet_file = pet
    labels = _labels()
    seg = write_seg(tmp_path / "seg.dcm", pet_file, labels, IOP, ORIGIN, SPACING, DZ)
    mask = read_lesion_mask(seg, scan)
    np.testing.assert_array_equal(mask.labels, labels)
    assert mask.names == {1: "lesion A", 2: "lesion B"} and mask.kind == "DICOM SEG"
    off = write_seg(tmp_path / "off.dcm", pet_file, labels, IOP, (-9.0, -20.0, -30.0), SPACING, DZ)
    with pytest.raises(ValueError, match=r"off\.dcm: frame 1: expected segment pixels on the PET grid"):
        read_lesion_mask(off, scan)


def test_seg_of_another_frame_of_reference_is_refused(tmp_path, pet):
    scan, pet_file = pet
    seg = write_seg(tmp_path / "seg.dcm", pet_file, _labels(), IOP, ORIGIN, SPACING, DZ)
    other = scan.replace(header=tuple(ds.copy() for ds in scan.header))
    for ds in other.header:
        ds.FrameOfReferenceUID = "1.2.3"
    with pytest.raises(ValueError, match=r"FrameOfReferenceUID \(0020,0052\): expected the scan's 1\.2\.3"):
        read_lesion_mask(seg, other)


def test_rtstruct_contours_are_rasterised_with_holes(tmp_path, pet):
    scan, pet_file = pet
    z = ORIGIN[2] + 2 * DZ  # slice 2

    def square(c0, c1, r0, r1):  # columns c0..c1, rows r0..r1 (pixel centres) as an LPS polygon around them
        xs = [ORIGIN[0] + (c - 0.5) * SPACING[1] for c in (c0, c1 + 1)]
        ys = [ORIGIN[1] + (r - 0.5) * SPACING[0] for r in (r0, r1 + 1)]
        return np.array([[xs[0], ys[0], z], [xs[1], ys[0], z], [xs[1], ys[1], z], [xs[0], ys[1], z]])

    path = write_rtstruct(tmp_path / "rt.dcm", pet_file, {"ring": [square(2, 7, 2, 9), square(4, 5, 4, 7)],
                                                         "spot": [square(0, 0, 11, 11)]})
    mask = read_lesion_mask(path, scan)
    expected = np.zeros(scan.shape, dtype=np.int32)
    expected[2, 2:10, 2:8] = 1
    expected[2, 4:8, 4:6] = 0  # the inner contour is a hole
    expected[2, 11, 0] = 2
    np.testing.assert_array_equal(mask.labels, expected)
    assert mask.names == {1: "ring", 2: "spot"} and mask.kind == "DICOM RT-STRUCT"


def test_nifti_label_map_in_another_voxel_order(tmp_path, pet):
    scan, _ = pet
    labels = _labels()
    data = labels.transpose(2, 1, 0)[::-1]  # (x, y, z) with x flipped: another voxel order, same world
    affine = scan.ras_affine().copy()
    affine[:3, 3] += affine[:3, 0] * (data.shape[0] - 1)
    affine[:3, 0] *= -1
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data).astype(np.int16), affine), tmp_path / "m.nii.gz")
    mask = read_lesion_mask(tmp_path / "m.nii.gz", scan)
    np.testing.assert_array_equal(mask.labels, labels)
    nib.save(nib.Nifti1Image(np.full((2, 2, 2), 0.5, np.float32), affine), tmp_path / "bad.nii.gz")
    with pytest.raises(ValueError, match=r"bad\.nii\.gz: expected a 3D label map of non-negative integers"):
        read_lesion_mask(tmp_path / "bad.nii.gz", scan)
    nib.save(nib.Nifti1Image(np.zeros((10, 12, 4), np.int16), affine), tmp_path / "empty.nii.gz")
    with pytest.raises(ValueError, match="expected at least one lesion voxel"):
        read_lesion_mask(tmp_path / "empty.nii.gz", scan)
