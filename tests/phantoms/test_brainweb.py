"""BrainWeb reference-format loader: round trip on the real subject and clear errors on bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petdiff.phantoms import brainweb_labels, load_brainweb


def test_real_subject_shape_dtype_and_values(brainweb_path):
    x = load_brainweb(brainweb_path)
    raw = np.load(brainweb_path)["phantoms"]
    assert x.shape == (281, 1, 64, 64) and x.dtype == torch.float32
    assert np.array_equal(x.reshape(281, -1).numpy(), raw.astype(np.float32))
    assert float(x.min()) == 0 and float(x.max()) == 12


def test_labels_reproduce_activity(brainweb_path):
    x = load_brainweb(brainweb_path)[:40]
    labels, conc = brainweb_labels(x)
    assert labels.dtype == torch.int64 and labels.shape == x.shape
    assert conc[0, 0] == 0  # background level is class 0 with concentration 0
    rebuilt = torch.gather(conc, 1, labels.flatten(1)).reshape(x.shape)
    assert torch.equal(rebuilt, x)


def test_labels_reject_continuous_images():
    with pytest.raises(ValueError, match="distinct tissue levels"):
        brainweb_labels(torch.rand(1, 1, 32, 32), max_classes=16)


def test_three_dimensional_layout_round_trip(tmp_path):
    arr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.savez(tmp_path / "p.npz", phantoms=arr)
    assert torch.equal(load_brainweb(tmp_path / "p.npz")[:, 0], torch.from_numpy(arr).float())


def _write(tmp_path, name, **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"images": np.zeros((2, 16))}, r"expected key 'phantoms', found keys \['images'\]"),
        ({"phantoms": np.zeros((2, 15))}, "15 is not a square"),
        ({"phantoms": np.zeros((2, 2, 4, 4))}, "expected shape"),
        ({"phantoms": np.full((2, 16), np.nan)}, "NaN"),
        ({"phantoms": -np.ones((2, 16))}, "non-negative"),
        ({"phantoms": np.zeros((0, 16))}, "non-empty"),
        ({"phantoms": np.array([["a", "b", "c", "d"]])}, "numeric"),
    ],
)
def test_bad_contents_are_named(tmp_path, arrays, match):
    path = _write(tmp_path, "bad.npz", **arrays)
    with pytest.raises(ValueError, match=match) as info:
        load_brainweb(path)
    assert str(path) in str(info.value)


def test_truncated_file(tmp_path, brainweb_path):
    path = tmp_path / "truncated.npz"
    path.write_bytes(brainweb_path.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"truncated\.npz: not a readable \.npz"):
        load_brainweb(path)


def test_not_an_npz(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.npz: not a readable \.npz"):
        load_brainweb(text)
    npy = tmp_path / "plain.npy"
    np.save(npy, np.zeros((2, 16)))
    with pytest.raises(ValueError, match=r"plain\.npy: expected an \.npz archive"):
        load_brainweb(npy)


def test_missing_and_directory(tmp_path):
    with pytest.raises(ValueError, match="expected an existing file"):
        load_brainweb(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="expected a regular file"):
        load_brainweb(tmp_path)


def test_pickled_objects_are_refused(tmp_path):
    path = _write(tmp_path, "obj.npz", phantoms=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"obj\.npz"):
        load_brainweb(path)
