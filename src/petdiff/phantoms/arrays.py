"""Safe reading of .npy/.npz arrays: every failure becomes a ValueError naming the file and the problem."""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np


def require_file(path: str | os.PathLike) -> Path:
    """The path as a Path, or ValueError when it is not an existing regular file."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: expected an existing file, found nothing at this path")
    if not p.is_file():
        raise ValueError(f"{p}: expected a regular file, found a directory or special file")
    return p


def read_npz_array(path: str | os.PathLike, keys: tuple[str, ...], only_array: bool = False) -> tuple[str, np.ndarray]:
    """(key, array) from an .npz: the first of `keys` present, else (when `only_array`) its single array."""
    p = require_file(path)
    try:
        loaded = np.load(p, allow_pickle=False)
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"{p}: not a readable .npz archive ({type(err).__name__}: {err})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{p}: expected an .npz archive, found a plain .npy array")
    with loaded as npz:
        found = list(npz.files)
        key = next((k for k in keys if k in found), None)
        if key is None and only_array and len(found) == 1:
            key = found[0]
        if key is None:
            wanted = " or ".join(repr(k) for k in keys) + (" (or a single array)" if only_array else "")
            raise ValueError(f"{p}: expected key {wanted}, found keys {found}")
        try:
            return key, np.asarray(npz[key])
        except (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as err:
            raise ValueError(
                f"{p} [{key}]: unreadable array: truncated, corrupt or pickled objects ({type(err).__name__}: {err})"
            ) from None


def read_npy_array(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an .npy file (no pickles)."""
    p = require_file(path)
    try:
        arr = np.load(p, allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:
        raise ValueError(f"{p}: truncated or corrupt .npy file ({type(err).__name__}: {err})") from None
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{p}: expected an .npy array, found an .npz archive")
    return arr


def check_numeric(path: str | os.PathLike, key: str, arr: np.ndarray) -> np.ndarray:
    """Reject non-numeric, empty, NaN/inf and negative arrays; return the array as float32."""
    where = f"{path} [{key}]"
    if arr.dtype.kind not in "biuf":
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
