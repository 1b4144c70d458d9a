"""Atomic file writes (a temporary name in the same folder, then rename), output-path checks made before a
command's work starts, and staged outputs that appear together or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to `path`; on success fsync and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_save_npz(path: str | os.PathLike, compress: bool = False, **arrays: np.ndarray) -> Path:
    """Save arrays to an .npz file atomically (never leaves a half-written file behind)."""
    path = Path(path)
    with atomic_write(path, "wb") as f:
        (np.savez_compressed if compress else np.savez)(f, **arrays)
    return path


def _nearest_existing(path: Path) -> Path:
    """`path` itself or its closest ancestor that exists."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_parent(path: Path, what: str) -> None:
    """The folder that will hold `path` exists or can be created, and can be written to."""
    ancestor = _nearest_existing(path.parent)
    if not ancestor.is_dir():
        raise ValueError(f"{what}: expected a path whose parent folders can be created, found a file at {ancestor}")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{what}: expected a writable location, found no write permission in {ancestor}")


def check_output_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """Fail early (ValueError naming `what`) if `path` cannot become an output file; returns it as a Path."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what}: expected a file name to write, found an existing folder {path}")
    _check_parent(path, what)
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{what}: expected a writable file, found a read-only one at {path}")
    return path


def check_output_folder(path: str | os.PathLike, what: str = "--out") -> Path:
    """Fail early (ValueError naming `what`) if `path` cannot become an output folder; returns it as a Path."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what}: expected an output folder, found an existing file {path}")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{what}: expected a writable folder, found no write permission in {path}")
    else:
        _check_parent(path, what)
    return path


def _remove(path: Path) -> None:
    """Delete a file or a folder tree (missing is fine)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _replace(source: Path, target: Path, stage: Path) -> None:
    """Move a staged file or folder over `target` (an existing folder is moved aside first, then deleted)."""
    if source.is_dir() and target.is_dir():
        old = stage / f".old-{target.name}"
        os.replace(target, old)
        os.replace(source, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, target)


@contextlib.contextmanager
def staged_outputs(out: str | os.PathLike, replaces: Iterable[str] = (), what: str = "--out") -> Iterator[Path]:
    """Yield a staging folder inside `out` for one run's files; on success move them into `out` together.

    Staged folders (e.g. a DICOM series) replace their namesake as a whole.
    On any exception the staging folder is deleted and `out` is left exactly as it was (a folder this call
    created is removed again), so an earlier run's outputs are never mixed with part of a new run's. On
    success every file of the staging folder replaces its namesake in `out`, and files of `out` matching the
    glob patterns `replaces` that this run did not write (an earlier run's, e.g. `std.nii.gz` after a run
    without std) are deleted. The commit is a few renames within one folder, not one atomic step.
    """
    out = check_output_folder(out, what)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    try:
        yield stage
        new = sorted(p for p in stage.iterdir() if not p.name.startswith("."))  # skip atomic_write leftovers
        for p in new:  # every target is checked before anything is replaced
            target = out / p.name
            if p.is_dir() and target.exists() and not target.is_dir():
                raise ValueError(f"{what}: expected {target} to be a folder (a staged folder replaces it), "
                                 "found a file; nothing was replaced")
            if not p.is_dir() and target.is_dir():
                raise ValueError(f"{what}: expected {target} to be a file (the new {p.name} replaces it), "
                                 "found a folder; nothing was replaced")
        names = {p.name for p in new}
        stale = {p for pattern in replaces for p in out.glob(pattern)
                 if p.name not in names and not p.name.startswith(".")}
        for p in new:
            _replace(p, out / p.name, stage)
        for p in stale:
            _remove(p)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only when empty
        raise
    shutil.rmtree(stage, ignore_errors=True)
