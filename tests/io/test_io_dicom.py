"""DICOM PET series: slice sorting, rescale, affine, units, series choice, derived-series round trip, bad files."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import torch
from pet_series import sample_values, write_pet_series

from petdiff.io import read_dicom_series, read_scan, write_dicom_series, write_scan


@pytest.fixture
def pet_values() -> np.ndarray:
    return sample_values()


def test_shuffled_files_are_sorted_along_the_slice_normal(tmp_path, pet_values):
    write_pet_series(tmp_path / "s", pet_values, order=[2, 0, 3, 1])
    scan = read_scan(tmp_path / "s")
    assert scan.kind == "dicom" and scan.units == "Bq/mL" and scan.space == "LPS"
    assert scan.images.shape == (4, 1, 6, 5) and scan.images.dtype == torch.float32
    np.testing.assert_array_equal(scan.images[:, 0].numpy(), pet_values)
    assert [int(ds.InstanceNumber) for ds in scan.header] == [1, 2, 3, 4]


def test_sorting_uses_the_normal_not_the_z_coordinate(tmp_path, pet_values):
    # Sagittal-like orientation: rows along y, columns along -z; the normal is x, so z is the same for all.
    iop = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    write_pet_series(tmp_path / "s", pet_values, iop=iop, order=[3, 1, 0, 2])
    scan = read_dicom_series(tmp_path / "s")
    np.testing.assert_array_equal(scan.images[:, 0].numpy(), pet_values)


def test_per_slice_rescale_slope_is_applied(tmp_path, pet_values):
    write_pet_series(tmp_path / "s", pet_values, slopes=[0.5, 0.25, 0.5, 0.25])
    np.testing.assert_array_equal(read_dicom_series(tmp_path / "s").images[:, 0].numpy(), pet_values)


def test_affine_matches_a_hand_computation(tmp_path, pet_values):
    c, s = np.cos(0.3), np.sin(0.3)
    iop = (c, s, 0.0, -s, c, 0.0)  # rotated in-plane
    write_pet_series(tmp_path / "s", pet_values, iop=iop, origin=(5.0, -7.0, 11.0), pixel_spacing=(2.0, 3.0), dz=4.0)
    scan = read_dicom_series(tmp_path / "s")
    assert scan.voxel_size == pytest.approx((4.0, 2.0, 3.0))
    # voxel (column i, row j, slice k) → P0 + i·Δcol·r + j·Δrow·c + k·dz·n  (LPS)
    i, j, k = 4, 5, 3
    r, col = np.array(iop[:3]), np.array(iop[3:])
    expected = np.array([5.0, -7.0, 11.0]) + i * 3.0 * r + j * 2.0 * col + k * 4.0 * np.cross(r, col)
    np.testing.assert_allclose((scan.affine @ [i, j, k, 1])[:3], expected, atol=1e-9)
    np.testing.assert_allclose(scan.ras_affine()[:2], -scan.affine[:2])


def test_counts_units_and_refused_units(tmp_path, pet_values):
    write_pet_series(tmp_path / "c", pet_values, units="CNTS")
    assert read_dicom_series(tmp_path / "c").units == "counts"
    write_pet_series(tmp_path / "g", pet_values, units="GML")
    assert read_dicom_series(tmp_path / "g").units == "SUV"  # g/mL: SUVbw already
    write_pet_series(tmp_path / "p", pet_values, units="PCNT")
    with pytest.raises(ValueError, match=r"Units \(0054,1001\): expected BQML, CNTS or GML, found 'PCNT'"):
        read_dicom_series(tmp_path / "p")
    with pytest.raises(ValueError, match="SUV needs activity concentrations"):
        read_dicom_series(tmp_path / "c", units="SUV")


def test_non_pet_and_non_dicom_files_are_skipped_with_a_note(tmp_path, pet_values):
    write_pet_series(tmp_path / "s", pet_values)
    write_pet_series(tmp_path / "s" / "ct", pet_values[:2], modality="CT")
    (tmp_path / "s" / "README.txt").write_text("hello")
    scan = read_scan(tmp_path / "s")
    assert scan.shape == (4, 6, 5)
    assert sum("CT, 'PET AC', 2 files): skipped (not a PET image series)" in n for n in scan.notes) == 1
    assert any("not a DICOM file" in n for n in scan.notes)


def test_several_series_are_refused_unless_one_is_chosen(tmp_path, pet_values):
    write_pet_series(tmp_path / "s" / "a", pet_values, series_uid="1.2.3.4")
    write_pet_series(tmp_path / "s" / "b", pet_values[:2] * 2, series_uid="1.2.3.5")
    with pytest.raises(ValueError, match=r"expected one PET series, found 2: .*--series-uid"):
        read_scan(tmp_path / "s")
    scan = read_scan(tmp_path / "s", series_uid="1.2.3.5")
    np.testing.assert_array_equal(scan.images[:, 0].numpy(), pet_values[:2] * 2)


def test_list_of_files_and_a_single_file(tmp_path, pet_values):
    paths = write_pet_series(tmp_path / "s", pet_values)
    assert read_scan([paths[3], paths[1]]).shape == (2, 6, 5)
    assert read_scan(paths[2]).shape == (1, 6, 5)


def test_derived_series_round_trip(tmp_path, pet_values):
    write_pet_series(tmp_path / "s", pet_values, order=[1, 3, 0, 2])
    scan = read_scan(tmp_path / "s")
    mean = scan.with_images(scan.images * 0.5 + 1.0)
    out = write_scan(mean, tmp_path / "out" / "mean", description="petdiff posterior mean (8 samples)")
    files = sorted(out.iterdir())
    assert len(files) == 4 and not list((tmp_path / "out").glob(".*"))  # no staging folder left behind
    back = read_scan(out)
    expected = pet_values * 0.5 + 1.0
    np.testing.assert_allclose(back.images[:, 0].numpy(), expected, rtol=0, atol=expected.max() / 32767)
    np.testing.assert_allclose(back.affine, scan.affine)
    assert back.voxel_size == scan.voxel_size
    src, new = scan.header, back.header
    assert len({ds.SeriesInstanceUID for ds in new}) == 1 and new[0].SeriesInstanceUID != src[0].SeriesInstanceUID
    assert not {ds.SOPInstanceUID for ds in new} & {ds.SOPInstanceUID for ds in src}
    assert new[0].StudyInstanceUID == src[0].StudyInstanceUID and new[0].PatientID == src[0].PatientID
    assert new[0].FrameOfReferenceUID == src[0].FrameOfReferenceUID
    assert new[0].SeriesDescription == "petdiff posterior mean (8 samples)"
    assert list(new[0].ImageType)[:2] == ["DERIVED", "SECONDARY"] and new[0].Units == "BQML"
    raw = pydicom.dcmread(files[0])
    assert raw.PixelRepresentation == 1 and raw.BitsAllocated == 16 and float(raw.RescaleSlope) > 0
    assert raw.file_meta.MediaStorageSOPInstanceUID == raw.SOPInstanceUID
    write_scan(mean, tmp_path / "out" / "mean", description="again")  # replaces the previous series whole
    assert len(list(out.iterdir())) == 4


def test_dicom_output_needs_a_dicom_input(tmp_path):
    from petdiff.io import Scan

    with pytest.raises(ValueError, match="DICOM output needs a DICOM input"):
        write_dicom_series(Scan(torch.ones(2, 1, 3, 3)), tmp_path / "o", "mean")


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_corrupt_and_truncated_files_give_one_line_errors(tmp_path, pet_values):
    paths = write_pet_series(tmp_path / "s", pet_values)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) - 20])  # pixel data cut short
    with pytest.raises(ValueError) as err:
        read_scan(tmp_path / "s")
    assert str(paths[1]) in str(err.value) and "\n" not in str(err.value)
    garbage = tmp_path / "bad.dcm"
    garbage.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + b"x" * 10)
    with pytest.raises(ValueError, match=r"bad\.dcm: (truncated or corrupt DICOM file|unreadable|expected)"):
        read_scan(garbage)
    (tmp_path / "text.dcm").write_text("not dicom")
    with pytest.raises(ValueError, match=r"text\.dcm: not a DICOM file"):
        read_scan(tmp_path / "text.dcm")


def test_duplicate_positions_are_refused(tmp_path, pet_values):
    write_pet_series(tmp_path / "s", pet_values, dz=0.0)
    with pytest.raises(ValueError, match="two slices at the same position"):
        read_scan(tmp_path / "s")
