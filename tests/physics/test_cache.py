"""On-disk system-matrix cache: round trip, env-var location, corrupt or mismatching files are rebuilt."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petdiff.physics import Geometry, Projector, system_matrix
from petdiff.physics import cache as cache_mod
from petdiff.physics import matrix as sm_mod


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("PETDIFF_CACHE_DIR", str(path))
    return path


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (
        torch.equal(a.crow_indices(), b.crow_indices())
        and torch.equal(a.col_indices(), b.col_indices())
        and torch.equal(a.values(), b.values())
    )


def forbid_build(monkeypatch):
    def fail(geometry):
        raise AssertionError("rebuilt although a valid cache file exists")

    monkeypatch.setattr(sm_mod, "build_arrays", fail)


def test_cache_dir_from_env_and_default(cache_dir, monkeypatch):
    assert cache_mod.cache_dir() == cache_dir
    monkeypatch.delenv("PETDIFF_CACHE_DIR")
    assert cache_mod.cache_dir().parts[-3:] == (".cache", "petdiff", "system_matrices")


def test_round_trip_uses_the_file(cache_dir, monkeypatch):
    first = system_matrix(16)
    path = cache_mod.cache_path(Geometry(16))
    assert path.is_file() and path.parent == cache_dir
    with np.load(path, allow_pickle=False) as data:
        assert int(data["meta"][0]) == cache_mod.FORMAT_VERSION
    forbid_build(monkeypatch)
    assert same(system_matrix(16), first)
    assert same(system_matrix(16, normalize=False), system_matrix(16, normalize=False, cache=True))


def test_cache_false_neither_reads_nor_writes(cache_dir):
    system_matrix(16, cache=False)
    assert not cache_dir.exists() or not any(cache_dir.iterdir())


def test_geometries_get_distinct_files(cache_dir):
    paths = {cache_mod.cache_path(g) for g in (Geometry(16), Geometry(16, n_angles=8), Geometry(16, n_bins=8))}
    assert len(paths) == 3


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k].copy() for k in data.files}
    arrays.update(changes)
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    "corrupt",
    [
        "truncate",
        "garbage",
        "flip_value",
        "drop_key",
        "wrong_geometry",
        "wrong_version",
        "short_values",
    ],
)
def test_corrupt_cache_is_rebuilt_with_warning(cache_dir, corrupt):
    expected = system_matrix(16)
    path = cache_mod.cache_path(Geometry(16))
    if corrupt == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif corrupt == "garbage":
        path.write_bytes(b"not a zip file")
    elif corrupt == "flip_value":
        with np.load(path, allow_pickle=False) as data:
            values = data["values"].copy()
        values[123] *= 1.5  # same shape and nnz: only the checksum can tell
        _rewrite(path, values=values)
    elif corrupt == "drop_key":
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != "column_sums"}
        np.savez(path, **arrays)
    elif corrupt == "wrong_geometry":
        other = cache_mod.cache_path(Geometry(16, n_angles=8))
        system_matrix(Geometry(16, n_angles=8))
        path.write_bytes(other.read_bytes())
    elif corrupt == "wrong_version":
        with np.load(path, allow_pickle=False) as data:
            meta = data["meta"].copy()
        meta[0] += 1
        _rewrite(path, meta=meta)
    elif corrupt == "short_values":
        with np.load(path, allow_pickle=False) as data:
            values = data["values"][:-1].copy()
        _rewrite(path, values=values)
    with pytest.warns(UserWarning, match="ignoring"):
        rebuilt = system_matrix(16)
    assert same(rebuilt, expected)
    # the rebuilt matrix was written back: the next load is clean
    with np.load(path, allow_pickle=False) as data:
        assert int(data["meta"][5]) == expected.values().shape[0]


def test_unwritable_cache_dir_warns_and_still_returns(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("PETDIFF_CACHE_DIR", str(blocker / "sub"))
    with pytest.warns(UserWarning, match="could not write"):
        a = system_matrix(16)
    assert a.shape == (512, 256)


def test_cache_files_are_loaded_without_pickle(cache_dir):
    system_matrix(16)
    path = cache_mod.cache_path(Geometry(16))
    with np.load(path, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)


def test_projector_caches_the_transpose_and_rebuilds_a_bad_one(cache_dir):
    g = Geometry(16, n_angles=16, n_bins=16)  # d = p: A and Aᵀ files have identical shapes
    first = Projector(g)
    path_t = cache_mod.cache_path(g, kind="AT")
    assert path_t.is_file() and path_t != cache_mod.cache_path(g)
    # a file of the other kind under this name is caught by its header even though every shape matches
    path_t.write_bytes(cache_mod.cache_path(g).read_bytes())
    with pytest.warns(UserWarning, match="ignoring"):
        again = Projector(g)
    assert same(again.operator.matrix_t, first.operator.matrix_t)
    torch.testing.assert_close(again.operator.matrix_t.to_dense(), first.operator.matrix.to_dense().T)
