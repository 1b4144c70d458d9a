"""NIfTI in its own voxel order: LAS round trip keeps voxel order, affine, codes, descrip and units; bad headers."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from petdiff.io import read_nifti, read_scan, write_scan

LAS = np.array([[-2.0, 0, 0, 40], [0, 3.0, 0, -20], [0, 0, 4.0, -30], [0, 0, 0, 1]])


def _save(path, data, affine=LAS, descrip=b"low-dose OSEM", units=("mm", "msec"), codes=(1, 2), dtype=np.float32):
    img = nib.Nifti1Image(data.astype(dtype), affine)
    img.set_qform(affine, code=codes[0])
    img.set_sform(affine, code=codes[1])
    img.header["descrip"] = descrip
    img.header.set_xyzt_units(*units)
    nib.save(img, path)


@pytest.mark.parametrize("name", ["las.nii", "las.nii.gz"])
def test_las_round_trip_keeps_voxel_order_affine_and_header(tmp_path, name):
    vol = np.random.default_rng(0).random((6, 8, 3)).astype(np.float32)
    _save(tmp_path / name, vol)
    scan = read_scan(tmp_path / name, units="Bq/mL")
    assert scan.kind == "nifti" and scan.space == "RAS" and scan.units == "Bq/mL"
    assert scan.images.shape == (3, 1, 8, 6)
    np.testing.assert_array_equal(scan.images[2, 0, 5, 4].item(), vol[4, 5, 2])  # images[k, 0, j, i]
    np.testing.assert_allclose(scan.affine, LAS)
    assert scan.voxel_size == (4.0, 3.0, 2.0)
    out = write_scan(scan.with_images(scan.images * 2), tmp_path / f"out_{name}")
    img = nib.load(out)
    assert img.shape == vol.shape and img.get_data_dtype() == np.float32
    np.testing.assert_allclose(img.get_fdata(), 2 * vol, rtol=1e-6)
    np.testing.assert_allclose(img.affine, LAS)
    assert nib.aff2axcodes(img.affine) == ("L", "A", "S")
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 2
    assert img.header["descrip"].tobytes().rstrip(b"\0") == b"low-dose OSEM"
    assert img.header.get_xyzt_units() == ("mm", "msec")
    assert (out.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")


def test_description_can_be_replaced(tmp_path):
    _save(tmp_path / "a.nii", np.ones((4, 4, 2)))
    out = write_scan(read_nifti(tmp_path / "a.nii"), tmp_path / "b.nii", description="petdiff posterior std")
    assert nib.load(out).header["descrip"].tobytes().rstrip(b"\0") == b"petdiff posterior std"


def test_2d_and_single_frame_4d_keep_their_shape(tmp_path):
    _save(tmp_path / "2d.nii", np.ones((5, 4)))
    scan = read_nifti(tmp_path / "2d.nii")
    assert scan.images.shape == (1, 1, 4, 5)
    assert nib.load(write_scan(scan, tmp_path / "o2.nii")).shape == (5, 4)
    _save(tmp_path / "4d.nii", np.ones((5, 4, 3, 1)))
    assert nib.load(write_scan(read_nifti(tmp_path / "4d.nii"), tmp_path / "o4.nii")).shape == (5, 4, 3, 1)
    _save(tmp_path / "dyn.nii", np.ones((5, 4, 3, 2)))
    with pytest.raises(ValueError, match="one frame"):
        read_nifti(tmp_path / "dyn.nii")


def test_integer_input_with_scaling_writes_plain_float(tmp_path):
    img = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    img.header.set_slope_inter(0.5, 1.0)
    nib.save(img, tmp_path / "i.nii")
    scan = read_nifti(tmp_path / "i.nii")
    np.testing.assert_allclose(scan.images[:, 0].numpy().transpose(2, 1, 0), np.arange(24).reshape(2, 3, 4) * 0.5 + 1)
    out = nib.load(write_scan(scan, tmp_path / "o.nii"))
    assert out.get_data_dtype() == np.float32 and out.header.get_slope_inter() in ((1.0, 0.0), (None, None))
    np.testing.assert_allclose(out.get_fdata(), np.arange(24).reshape(2, 3, 4) * 0.5 + 1)


def _huge_header(path, compress):
    """A NIfTI file whose header claims 32767³ float32 voxels (128 TiB) followed by 16 bytes."""
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.float32)
    hdr.set_data_shape((32767, 32767, 32767))
    hdr["vox_offset"] = 352
    payload = hdr.binaryblock + b"\0" * 4 + b"\0" * 16
    path.write_bytes(gzip.compress(payload) if compress else payload)


@pytest.mark.parametrize("name", ["huge.nii", "huge.nii.gz"])
def test_huge_header_is_refused_before_allocating(tmp_path, name):
    _huge_header(tmp_path / name, name.endswith(".gz"))
    with pytest.raises(ValueError, match=r"declares 128\.0 TiB of data, more than the 16\.0 GiB limit"):
        read_scan(tmp_path / name)


def test_header_larger_than_the_file_is_truncated(tmp_path):
    vol = np.ones((8, 8, 8), np.float32)
    _save(tmp_path / "t.nii", vol)
    data = (tmp_path / "t.nii").read_bytes()
    (tmp_path / "t.nii").write_bytes(data[:-100])
    with pytest.raises(ValueError, match=r"file holds only .*truncated"):
        read_nifti(tmp_path / "t.nii")


def test_not_a_nifti(tmp_path):
    (tmp_path / "x.nii").write_bytes(b"hello")
    with pytest.raises(ValueError, match=r"x\.nii: not a readable NIfTI file"):
        read_scan(tmp_path / "x.nii")
