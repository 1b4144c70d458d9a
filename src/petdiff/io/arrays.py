"""Safe reading of .npy/.npz arrays: sizes checked before allocating, no pickles, every failure a ValueError.

Each reader checks the array header first: an object (pickled) dtype is refused by name, and the declared
shape × itemsize is compared with the bytes actually in the file and with a sane limit, so a header that
claims terabytes gives a one-line error instead of a MemoryError.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np

from petdiff.io.paths import MAX_BYTES, check_declared_size, require_file

_READ_ERRORS = (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error)


def _read_header(f: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the header of an .npy stream, leaving the stream at the first data byte."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        shape, _, dtype = np.lib.format._read_array_header(f, version)  # 3.0: no public reader
    return tuple(int(s) for s in shape), np.dtype(dtype)


def _check_header(where: str, shape: tuple[int, ...], dtype: np.dtype, available: int, max_bytes: int) -> None:
    """Refuse pickled dtypes and headers that declare more data than the file holds or the limit allows."""
    if dtype.hasobject:
        raise ValueError(
            f"{where}: pickled object arrays are refused (they could run code when loaded); "
            f"expected a numeric array, found dtype {dtype}"
        )
    check_declared_size(where, f"the array header (shape {shape}, dtype {dtype})",
                        math.prod(shape) * dtype.itemsize, available, max_bytes)


def read_npy_array(path: str | os.PathLike, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """The array stored in an .npy file (no pickles; declared size checked before allocating)."""
    p = require_file(path)
    try:
        with open(p, "rb") as f:
            if f.read(4) == b"PK\x03\x04":
                raise ValueError(f"{p}: expected an .npy array, found an .npz archive")
            f.seek(0)
            try:
                shape, dtype = _read_header(f)
            except ValueError as err:
                raise ValueError(f"{p}: truncated or corrupt .npy header ({err})") from None
            _check_header(str(p), shape, dtype, p.stat().st_size - f.tell(), max_bytes)
        arr = np.load(p, allow_pickle=False)
    except ValueError:
        raise
    except _READ_ERRORS as err:
        raise ValueError(f"{p}: truncated or corrupt .npy file ({type(err).__name__}: {err})") from None
    return arr


def npz_keys(path: str | os.PathLike) -> list[str]:
    """Names of the arrays in an .npz archive."""
    p = require_file(path)
    try:
        with zipfile.ZipFile(p) as zf:
            return [n[:-4] if n.endswith(".npy") else n for n in zf.namelist()]
    except _READ_ERRORS as err:
        raise ValueError(f"{p}: not a readable .npz archive ({type(err).__name__}: {err})") from None


def _read_member(p: Path, zf: zipfile.ZipFile, key: str, max_bytes: int) -> np.ndarray:
    """One array of an open .npz archive, its header checked before the data is read."""
    where = f"{p} [{key}]"
    name = key + ".npy" if key + ".npy" in zf.namelist() else key
    try:
        info = zf.getinfo(name)
        with zf.open(info) as f:
            try:
                shape, dtype = _read_header(f)
            except ValueError as err:
                raise ValueError(f"{where}: truncated or corrupt .npy header ({err})") from None
            _check_header(where, shape, dtype, info.file_size - f.tell(), max_bytes)
            with np.load(p, allow_pickle=False) as npz:
                return np.asarray(npz[key])
    except ValueError as err:
        if str(err).startswith(where):
            raise
        raise ValueError(f"{where}: truncated or corrupt array ({type(err).__name__}: {err})") from None
    except _READ_ERRORS as err:
        raise ValueError(f"{where}: truncated or corrupt array ({type(err).__name__}: {err})") from None


def read_npz_array(path: str | os.PathLike, keys: tuple[str, ...], only_array: bool = False,
                   max_bytes: int = MAX_BYTES) -> tuple[str, np.ndarray]:
    """(key, array) from an .npz: the first of `keys` present, else (when `only_array`) its single array."""
    p = require_file(path)
    if not zipfile.is_zipfile(p):
        with open(p, "rb") as f:
            if f.read(6) == b"\x93NUMPY":
                raise ValueError(f"{p}: expected an .npz archive, found a plain .npy array")
        raise ValueError(f"{p}: not a readable .npz archive (no zip directory: truncated, or another kind of file)")
    found = npz_keys(p)
    key = next((k for k in keys if k in found), None)
    if key is None and only_array and len(found) == 1:
        key = found[0]
    if key is None:
        wanted = " or ".join(repr(k) for k in keys) + (" (or a single array)" if only_array else "")
        raise ValueError(f"{p}: expected key {wanted}, found keys {found}")
    try:
        with zipfile.ZipFile(p) as zf:
            return key, _read_member(p, zf, key, max_bytes)
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{p}: not a readable .npz archive ({type(err).__name__}: {err})") from None


def check_numeric(path: str | os.PathLike, key: str, arr: np.ndarray) -> np.ndarray:
    """Reject boolean, non-numeric, empty, NaN/inf and negative arrays; return the array as float32."""
    where = f"{path} [{key}]"
    if arr.dtype.kind == "b":
        raise ValueError(f"{where}: expected numeric activity values, found a boolean array (a mask?)")
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{where}: expected a numeric array, found dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{where}: expected a non-empty array, found shape {arr.shape}")
    out = arr.astype(np.float32)
    n_bad = int((~np.isfinite(out)).sum())
    if n_bad:
        raise ValueError(f"{where}: expected finite values, found {n_bad} NaN/inf element(s)")
    if float(out.min()) < 0:
        raise ValueError(f"{where}: expected non-negative activity values, found minimum {float(out.min()):.6g}")
    return out


def as_slices(path: str | os.PathLike, key: str, arr: np.ndarray) -> np.ndarray:
    """(N, H, W) from one image (H, W), slices (N, H, W), (N, 1, H, W), or the BrainWeb layout (N, H·W)."""
    if key == "phantoms" and arr.ndim == 2 and arr.shape[0] != arr.shape[1]:
        side = math.isqrt(arr.shape[1])
        if side * side != arr.shape[1] or side == 0:
            raise ValueError(f"{path} [{key}]: expected (N, H*W) with a square H*W, found shape {arr.shape}")
        return arr.reshape(arr.shape[0], side, side)
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 4 and arr.shape[1] == 1:
        return arr[:, 0]
    if arr.ndim != 3:
        raise ValueError(f"{path} [{key}]: expected an image (H, W) or slices (N, H, W), found shape {arr.shape}")
    return arr
