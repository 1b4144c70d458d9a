"""File-name helpers shared by the readers: existing-file checks, suffixes, stems and size limits."""

from __future__ import annotations

import os
from pathlib import Path

MAX_BYTES = 16 * 2**30  # largest array a reader allocates (16 GiB): a header claiming more is refused up front
SUFFIXES = (".nii.gz", ".nii", ".npz", ".npy", ".dcm")


def require_file(path: str | os.PathLike) -> Path:
    """The path as a Path, or ValueError when it is not an existing regular file."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: expected an existing file, found nothing at this path")
    if not p.is_file():
        raise ValueError(f"{p}: expected a regular file, found a directory or special file")
    return p


def is_nifti(path: str | os.PathLike) -> bool:
    """True for .nii and .nii.gz names."""
    name = Path(path).name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def stem(path: str | os.PathLike) -> str:
    """File name without .nii.gz / .nii / .npz / .npy / .dcm (a folder keeps its name)."""
    name = Path(path).name
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def check_declared_size(path: str | os.PathLike, what: str, declared: int, available: int | None,
                        max_bytes: int = MAX_BYTES) -> None:
    """Refuse a header whose declared data size exceeds the bytes in the file or `max_bytes` (before allocating)."""
    if declared > max_bytes:
        raise ValueError(
            f"{path}: {what} declares {_human(declared)} of data, more than the {_human(max_bytes)} limit "
            "(a corrupt or hostile header, or a volume too large to load at once)"
        )
    if available is not None and declared > available:
        raise ValueError(
            f"{path}: {what} declares {_human(declared)} of data but the file holds only {_human(available)} "
            "(truncated file or corrupt header)"
        )


def _human(n: int) -> str:
    """Bytes as B / KiB / MiB / GiB / TiB with one decimal."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
