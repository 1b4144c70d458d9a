"""On-disk cache of raw system matrices: atomic .npz files keyed by geometry and format version, verified on load."""

from __future__ import annotations

import os
import warnings
import zlib
from pathlib import Path

import numpy as np

from petdiff.physics.geometry import Geometry
from petdiff.utils.io import atomic_save_npz

# bump when the stored arrays or their meaning change: old files are then simply not found
FORMAT_VERSION = 2
ENV_VAR = "PETDIFF_CACHE_DIR"
_ARRAYS = ("crow", "cols", "values", "column_sums")


def cache_dir() -> Path:
    """$PETDIFF_CACHE_DIR if set (and non-empty), else ~/.cache/petdiff/system_matrices."""
    env = os.environ.get(ENV_VAR, "")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "petdiff" / "system_matrices"


KINDS = ("A", "AT")  # the system matrix and its transpose (both CSR)


def _dims(geometry: Geometry, kind: str) -> tuple[int, int]:
    """(rows, columns) of the stored matrix."""
    return (geometry.n_lors, geometry.n_pixels) if kind == "A" else (geometry.n_pixels, geometry.n_lors)


def cache_path(geometry: Geometry, kind: str = "A") -> Path:
    """File holding the raw matrix (kind "A") or its transpose ("AT") of `geometry`."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, found {kind!r}")
    stem = "siddon" if kind == "A" else "siddon_transpose"
    name = f"{stem}_v{FORMAT_VERSION}_res{geometry.resolution}_ang{geometry.n_angles}_bins{geometry.n_bins}.npz"
    return cache_dir() / name


def checksum(arrays: dict[str, np.ndarray]) -> int:
    """CRC-32 over the bytes of the stored arrays (detects truncation and bit rot, not tampering)."""
    crc = 0
    for key in _ARRAYS:
        crc = zlib.crc32(np.ascontiguousarray(arrays[key]).view(np.uint8), crc)
    return crc


def _header(geometry: Geometry, kind: str) -> list[int]:
    """[version, kind, resolution, n_angles, n_bins]: what a file must say about itself to be used."""
    return [FORMAT_VERSION, KINDS.index(kind), geometry.resolution, geometry.n_angles, geometry.n_bins]


def _meta(geometry: Geometry, arrays: dict[str, np.ndarray], kind: str) -> np.ndarray:
    """Header + [nnz, crc] as int64."""
    return np.array([*_header(geometry, kind), int(arrays["values"].shape[0]), checksum(arrays)], dtype=np.int64)


def save(geometry: Geometry, arrays: dict[str, np.ndarray], kind: str = "A") -> Path | None:
    """Write the raw CSR arrays atomically; warn (do not fail) when the cache folder is not writable."""
    path = cache_path(geometry, kind)
    try:
        atomic_save_npz(path, meta=_meta(geometry, arrays, kind), **{k: arrays[k] for k in _ARRAYS})
    except OSError as err:
        warnings.warn(f"system-matrix cache: could not write {path} ({err}); continuing without cache", stacklevel=3)
        return None
    return path


def _problem(geometry: Geometry, arrays: dict[str, np.ndarray], meta: np.ndarray, kind: str) -> str | None:
    """Why the loaded arrays cannot be trusted for `geometry`, or None when they are consistent."""
    n_rows, n_cols = _dims(geometry, kind)
    expected = _header(geometry, kind)
    if meta.shape != (7,) or [int(v) for v in meta[:5]] != expected:
        return f"meta {meta.tolist()} does not match [version, kind, resolution, n_angles, n_bins] = {expected}"
    nnz = int(meta[5])
    crow, cols, values, sums = (arrays[k] for k in _ARRAYS)
    if crow.shape != (n_rows + 1,) or cols.shape != (nnz,) or values.shape != (nnz,) or sums.shape != (n_cols,):
        return (
            f"array shapes crow {crow.shape}, cols {cols.shape}, values {values.shape}, column_sums {sums.shape}"
            f" do not match a ({n_rows}, {n_cols}) matrix with nnz = {nnz}"
        )
    if values.dtype != np.float32 or sums.dtype != np.float64 or cols.dtype.kind != "i" or crow.dtype.kind != "i":
        return f"unexpected dtypes {crow.dtype}, {cols.dtype}, {values.dtype}, {sums.dtype}"
    if checksum(arrays) != int(meta[6]):
        return "checksum mismatch"
    if crow[0] != 0 or crow[-1] != nnz or bool((np.diff(crow) < 0).any()):
        return "row pointers are not a non-decreasing 0 … nnz sequence"
    if nnz and (int(cols.min()) < 0 or int(cols.max()) >= n_cols):
        return f"column index out of [0, {n_cols})"
    return None


def load(geometry: Geometry, kind: str = "A") -> dict[str, np.ndarray] | None:
    """Return the cached raw CSR arrays of `geometry`, or None (with a warning when a file exists but is bad)."""
    path = cache_path(geometry, kind)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in _ARRAYS}
            meta = data["meta"]
        problem = _problem(geometry, arrays, meta, kind)
    except Exception as err:  # any unreadable file (truncated zip, missing key, bad header) is just a cache miss
        problem = f"unreadable ({type(err).__name__}: {err})"
    if problem is not None:
        warnings.warn(f"system-matrix cache: ignoring {path}: {problem}; rebuilding", stacklevel=3)
        return None
    return arrays
