"""Every kind of PET file scanners write: encodings, compressed pixel data, Enhanced PET, vendor SUV tags, folders."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from dicom_kinds import KINDS, enhanced_pet, rewrite
from pet_series import sample_values, write_pet_series
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from petdiff.io import read_scan, write_scan
from petdiff.io.files import is_dicom_file

SYNTAX = {"implicit": ImplicitVRLittleEndian, "big_endian": ExplicitVRBigEndian,
          "deflate": DeflatedExplicitVRLittleEndian, "rle": RLELossless, "jpeg_ls": JPEGLSLossless,
          "jpeg_2000": JPEG2000Lossless, "jpeg_lossless": JPEGLosslessSV1}
WEIGHT_G, DOSE_BQ, HALF_LIFE = 70_000.0, 370e6, 6586.2


def _values(shape=(3, 32, 32)) -> np.ndarray:
    """Distinct positive activities, exact with slope 0.5, on slices large enough for every codec."""
    return np.random.default_rng(1).integers(100, 30000, size=shape) * 0.5


@pytest.mark.parametrize("kind", KINDS)
def test_every_encoding_reads_back_the_original_values(tmp_path, kind):
    values = _values()
    paths = write_pet_series(tmp_path / "s", values, order=[2, 0, 1])
    for p in paths:
        rewrite(p, kind)
    head = paths[0].read_bytes()[:132]
    if kind == "no_preamble":
        assert head[128:132] != b"DICM"
    else:
        assert pydicom.dcmread(paths[0]).file_meta.TransferSyntaxUID == SYNTAX[kind]
    scan = read_scan(tmp_path / "s")
    np.testing.assert_array_equal(scan.images[:, 0].numpy(), values)


def test_a_preamble_less_file_without_suffix_is_found_and_read(tmp_path):
    values = _values((2, 8, 8))
    paths = write_pet_series(tmp_path / "s", values)
    bare = [p.rename(p.with_name(f"1.3.46.670589.{k}")) for k, p in enumerate(paths)]  # a Philips-style name
    for p in bare:
        rewrite(p, "no_preamble")
    assert is_dicom_file(bare[0])
    (tmp_path / "s" / "notes.4").write_bytes(b"\x08\x00\x05\x00 random text, not a dicom element")
    assert not is_dicom_file(tmp_path / "s" / "notes.4")
    scan = read_scan(tmp_path / "s")
    np.testing.assert_array_equal(scan.images[:, 0].numpy(), values)
    assert read_scan(bare[1]).shape == (1, 8, 8)
    assert any("notes.4: skipped" in n for n in scan.notes)


def test_enhanced_pet_uses_per_frame_geometry_and_rescale(tmp_path):
    values = sample_values()
    slopes = [0.5, 0.25, 0.5, 0.5]
    path = enhanced_pet(tmp_path / "enh.dcm", values, slopes, order=[2, 0, 3, 1])
    scan = read_scan(path)
    np.testing.assert_array_equal(scan.images[:, 0].numpy(), values)
    np.testing.assert_allclose(scan.affine, [[3, 0, 0, -10], [0, 2, 0, -20], [0, 0, 4, -30], [0, 0, 0, 1]])
    assert scan.voxel_size == (4.0, 2.0, 3.0) and scan.units == "Bq/mL"
    suv = read_scan(path, units="SUV")  # DecayCorrected YES, to DecayCorrectionDateTime: one hour after injection
    expected = values * WEIGHT_G / (DOSE_BQ * 2.0 ** (-3600.0 / HALF_LIFE))
    np.testing.assert_allclose(suv.images[:, 0].numpy(), expected, rtol=1e-6)
    assert suv.suv.sources["reference_time"].startswith("DecayCorrectionDateTime")
    out = write_scan(scan, tmp_path / "derived")  # frames become classic slices of a derived series
    back = read_scan(out)
    np.testing.assert_allclose(back.images.numpy(), scan.images.numpy(), rtol=1e-4, atol=1e-3 * values.max())


def test_enhanced_pet_units_from_the_real_world_value_mapping(tmp_path):
    values = sample_values()
    path = enhanced_pet(tmp_path / "e.dcm", values, [0.5] * 4, units_code=None, ucum="{SUVbw}g/ml",
                        shared_rescale=True)
    scan = read_scan(path)
    assert scan.units == "SUV" and any("SUVbw already" in n for n in scan.notes)
    np.testing.assert_array_equal(scan.images[:, 0].numpy(), values)


def _philips(paths, suv_scale=None, activity_scale=None) -> None:
    """Add the Philips private scale factors (7053,1000) / (7053,1009) to each file."""
    for p in paths:
        ds = pydicom.dcmread(p)
        block = ds.private_block(0x7053, "Philips PET Private Group", create=True)
        if suv_scale is not None:
            block.add_new(0x00, "DS", f"{suv_scale:.10g}")
        if activity_scale is not None:
            block.add_new(0x09, "DS", f"{activity_scale:.10g}")
        ds.save_as(p, enforce_file_format=True)


def test_philips_counts_with_the_activity_scale_are_bq_per_ml(tmp_path):
    values = sample_values()
    paths = write_pet_series(tmp_path / "s", values, units="CNTS")
    _philips(paths, activity_scale=2.5)
    scan = read_scan(tmp_path / "s")
    assert scan.units == "Bq/mL" and any("(7053,1009)" in n for n in scan.notes)
    np.testing.assert_allclose(scan.images[:, 0].numpy(), values * 2.5)
    suv = read_scan(tmp_path / "s", units="SUV")  # the standard tags are all there: they are used
    assert suv.suv.sources["weight"].startswith("PatientWeight")


def test_philips_suv_scale_when_the_standard_tags_are_missing(tmp_path):
    values = sample_values()
    paths = write_pet_series(tmp_path / "s", values, units="CNTS", weight=None)
    _philips(paths, suv_scale=3e-4, activity_scale=2.5)
    scan = read_scan(tmp_path / "s", units="SUV")
    np.testing.assert_allclose(scan.images[:, 0].numpy(), values * 3e-4, rtol=1e-6)  # counts × (7053,1000)
    assert "(7053,1000)" in scan.suv.sources["suv"] and any("(7053,1000)" in n for n in scan.notes)
    with pytest.raises(ValueError, match="PatientWeight"):  # an explicit option means: use the standard formula
        read_scan(tmp_path / "s", units="SUV", injected_dose=370.0)
    paths = write_pet_series(tmp_path / "t", values, weight=None)
    with pytest.raises(ValueError, match=r"PatientWeight \(0010,1030\).*--patient-weight"):
        read_scan(tmp_path / "t", units="SUV")  # no private factor: the refusal names the tag and option


def test_ge_private_scan_time_is_the_reference_when_the_series_time_was_rewritten(tmp_path):
    values = sample_values()
    paths = write_pet_series(tmp_path / "s", values, series_time="143000", injection_time="100000")
    for p in paths:  # reprocessed at 14:30; the scan started at 11:00
        ds = pydicom.dcmread(p)
        ds.private_block(0x0009, "GEMS_PETD_01", create=True).add_new(0x0D, "DT", "20240102110000")
        ds.save_as(p, enforce_file_format=True)
    scan = read_scan(tmp_path / "s", units="SUV")
    expected = values * WEIGHT_G / (DOSE_BQ * 2.0 ** (-3600.0 / HALF_LIFE))
    np.testing.assert_allclose(scan.images[:, 0].numpy(), expected, rtol=1e-6)
    assert "GE private" in scan.suv.sources["reference_time"]


def test_a_folder_with_pet_ct_and_seg_series(tmp_path):
    values = sample_values()
    write_pet_series(tmp_path / "study" / "pet", values, series_uid="1.2.3.1")
    write_pet_series(tmp_path / "study" / "pet2", values * 2, series_uid="1.2.3.2")
    write_pet_series(tmp_path / "study" / "ct", values[:3], modality="CT", series_uid="1.2.3.3")
    seg = pydicom.dcmread(write_pet_series(tmp_path / "study" / "seg", values[:1], series_uid="1.2.3.4")[0])
    seg.Modality, seg.SOPClassUID = "SEG", "1.2.840.10008.5.1.4.1.1.66.4"
    seg.save_as(tmp_path / "study" / "seg" / "IM0000_0.dcm", enforce_file_format=True)
    with pytest.raises(ValueError, match=r"expected one PET series, found 2: 1\.2\.3\.1 .*1\.2\.3\.2 .*--series-uid"):
        read_scan(tmp_path / "study")
    scan = read_scan(tmp_path / "study", series_uid="1.2.3.2")
    np.testing.assert_array_equal(scan.images[:, 0].numpy(), values * 2)
    notes = " | ".join(scan.notes)
    assert "series 1.2.3.3 (CT" in notes and "series 1.2.3.4 (SEG" in notes and "not a PET image series" in notes
    assert "series 1.2.3.1 (PT" in notes and "--series-uid picks another" in notes
