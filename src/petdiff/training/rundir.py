"""Run folders: `root/<NNNNN>-<desc>/`, numbered automatically, the latest training state inside one, and the
temporaries that an interrupted atomic write left there."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: mkdir(exist_ok=False) alone still prevents overwriting
    fcntl = None

_DESC = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")
_RUN_ID = re.compile(r"^(\d+)-")
_STATE = re.compile(r"^training-state-(\d+)\.pt$")
# utils.io.atomic_write's temporary names (".<name>.<8 random>.tmp") of the files a run folder holds, and only
# those: a state file may have been copied into a folder of other files.
_TEMPORARY = re.compile(
    r"^\.(training-state-\d+\.pt|network-snapshot-\d+\.(safetensors|json)|training_options\.json|stats\.jsonl)"
    r"\.[A-Za-z0-9_]{8}\.tmp$"
)
_MAX_TRIES = 1000


@contextlib.contextmanager
def _flock(folder: str | os.PathLike, exclusive: bool) -> Iterator[None]:
    """Hold an exclusive or shared flock on a folder itself (no-op where fcntl is missing)."""
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _next_id(root: Path) -> int:
    """One more than the largest run number in `root` (0 when empty)."""
    ids = [int(m.group(1)) for m in (_RUN_ID.match(p.name) for p in root.iterdir()) if m]
    return max(ids, default=-1) + 1


def make_run_dir(root: str | os.PathLike, desc: str) -> Path:
    """Create and return `root/<NNNNN>-<desc>` with the next free number; never reuses an existing folder."""
    if not isinstance(desc, str) or not _DESC.fullmatch(desc):
        raise ValueError(
            f"desc: expected a folder-name description of letters, digits and . _ + = - (not starting with a "
            f"symbol), found {desc!r}"
        )
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"run.run_dir: expected a folder to create run folders in, found a file at {root}")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"run.run_dir: expected a folder that can be created, {root} cannot ({e.strerror})") from None
    with _flock(root, exclusive=True):  # concurrent creators pick numbers one at a time
        for _ in range(_MAX_TRIES):
            run_dir = root / f"{_next_id(root):05d}-{desc}"
            try:
                run_dir.mkdir(exist_ok=False)
                return run_dir
            except FileExistsError:  # another process won the race for this number: look again
                continue
            except OSError as e:
                raise ValueError(f"run.run_dir: expected a folder to create run folders in, {e}") from None
    raise ValueError(f"root: could not create a new run folder in {root} after {_MAX_TRIES} attempts")


def find_latest_state(run_dir: str | os.PathLike) -> Path | None:
    """The `training-state-<kimg>.pt` with the largest kimg in `run_dir` (None when there is none)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run_dir: expected an existing run folder, found {run_dir}")
    states = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := _STATE.match(p.name)) and p.is_file()]
    return max(states)[1] if states else None


def hold_run_dir(run_dir: str | os.PathLike) -> contextlib.AbstractContextManager[None]:
    """Hold a shared flock on `run_dir` while a run writes there, so `clean_temporaries` leaves its files alone."""
    return _flock(run_dir, exclusive=False)


def clean_temporaries(run_dir: str | os.PathLike) -> list[Path]:
    """Delete the `.<name>.<random>.tmp` files a killed run left in `run_dir`; none while a live run holds it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    fd = os.open(run_dir, os.O_RDONLY) if fcntl is not None else None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a run is writing there now: its temporaries are not stale
                return []
        removed = []
        for path in run_dir.iterdir():
            if _TEMPORARY.match(path.name) and path.is_file():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
        return sorted(removed)
    finally:
        if fd is not None:
            os.close(fd)
