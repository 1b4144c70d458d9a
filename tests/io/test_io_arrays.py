""".npy / .npz reading: declared sizes checked before allocating, booleans and pickles refused by name."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from petdiff.io import read_npy_array, read_npz_array, read_scan, write_scan


def _npy_header(shape, descr="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_npy_header_claiming_terabytes_is_refused(tmp_path):
    (tmp_path / "huge.npy").write_bytes(_npy_header((100_000, 100_000, 1000)) + b"\0" * 64)
    with pytest.raises(ValueError, match=r"huge\.npy: .*declares 36\.4 TiB of data, more than the 16\.0 GiB limit"):
        read_scan(tmp_path / "huge.npy")


def test_npy_shorter_than_its_header_is_truncated(tmp_path):
    (tmp_path / "cut.npy").write_bytes(_npy_header((64, 64)) + b"\0" * 100)
    with pytest.raises(ValueError, match=r"declares 16\.0 KiB of data but the file holds only 100 B"):
        read_npy_array(tmp_path / "cut.npy")


def test_npz_member_claiming_terabytes_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as zf:
        zf.writestr("images.npy", _npy_header((100_000, 100_000, 1000)) + b"\0" * 64)
    with pytest.raises(ValueError, match=r"huge\.npz \[images\]: .*36\.4 TiB"):
        read_npz_array(tmp_path / "huge.npz", ("images",))


def test_boolean_arrays_are_refused(tmp_path):
    np.save(tmp_path / "mask.npy", np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="found a boolean array"):
        read_scan(tmp_path / "mask.npy")


@pytest.mark.parametrize("name", ["obj.npy", "obj.npz"])
def test_pickled_arrays_are_refused_by_name(tmp_path, name):
    arr = np.array([{"a": 1}, None], dtype=object)
    if name.endswith(".npy"):
        np.save(tmp_path / name, arr, allow_pickle=True)
    else:
        np.savez(tmp_path / name, images=arr)
    with pytest.raises(ValueError, match="pickled object arrays are refused") as err:
        read_scan(tmp_path / name)
    assert "truncated" not in str(err.value)


@pytest.mark.parametrize(("values", "message"), [
    (np.full((3, 3), np.nan), "NaN/inf"), (-np.ones((3, 3)), "non-negative"), (np.ones((0, 3)), "non-empty"),
])
def test_bad_values(tmp_path, values, message):
    np.save(tmp_path / "v.npy", values)
    with pytest.raises(ValueError, match=message):
        read_scan(tmp_path / "v.npy")


def test_array_scan_layouts_and_npz_round_trip(tmp_path):
    np.save(tmp_path / "stack.npy", np.ones((3, 4, 5), np.float32))
    scan = read_scan(tmp_path / "stack.npy", voxel_size=(3.0, 2.0, 2.0))
    assert scan.images.shape == (3, 1, 4, 5) and scan.space is None and scan.pixel_size == (2.0, 2.0)
    np.savez(tmp_path / "bw.npz", phantoms=np.ones((2, 16), np.uint8))
    assert read_scan(tmp_path / "bw.npz").images.shape == (2, 1, 4, 4)
    out = write_scan(scan, tmp_path / "o.npz")
    with np.load(out) as f:
        assert f["images"].shape == (3, 1, 4, 5)
    (tmp_path / "o.txt").write_text("x")
    with pytest.raises(ValueError, match=r"suffix '\.txt'"):
        read_scan(tmp_path / "o.txt")
