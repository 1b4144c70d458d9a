import numpy as np
import pytest
import torch

from petdiff.utils import (
    atomic_save_npz,
    atomic_write,
    check_fraction,
    check_image_batch,
    check_non_negative,
    parse_int_list,
)


def test_parse_int_list_ranges_and_singles():
    assert parse_int_list("0-3,7,10-11") == [0, 1, 2, 3, 7, 10, 11]
    assert parse_int_list(5) == [5]
    with pytest.raises(ValueError, match="seeds"):
        parse_int_list("3-1")
    with pytest.raises(ValueError, match="seeds"):
        parse_int_list("a-b")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_save_npz_roundtrip(tmp_path):
    path = atomic_save_npz(tmp_path / "a.npz", x=np.arange(4))
    assert np.load(path)["x"].tolist() == [0, 1, 2, 3]


def test_validation_messages_name_the_argument():
    with pytest.raises(ValueError, match=r"activity: expected shape \(B, C, H, W\)"):
        check_image_batch("activity", torch.zeros(3, 3))
    with pytest.raises(ValueError, match="activity: expected non-negative"):
        check_non_negative("activity", torch.tensor([1.0, -2.0]))
    with pytest.raises(ValueError, match="NaN"):
        check_non_negative("activity", torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match=r"fraction: expected a number in \(0, 1\]"):
        check_fraction("fraction", 1.5)


def test_atomic_write_uses_umask_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "f.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
