"""Pre-simulated pair files: an uncompressed .npz written chunk by chunk and read back memory-mapped.

Arrays: `full_dose`, `low_dose`, `truth` (N, C, H, W) float32 normalised images (the scan pairs' `low_dose` has the
2k+1 slices of its 2.5D context), `scale`, `counts`, `fraction` (N,) float32, optional per-pair scalars (`density`,
`pixel_size`, …: every 1-D field of the chunks), and `meta` (a JSON string: resolution, normalisation, recon, source).
Each array is streamed to a temporary .npy (np.lib.format.open_memmap) and the files are stored
(not deflated) in a zip that is renamed into place, so a large file never sits in memory and an
interrupted run leaves nothing behind. Stored members can be memory-mapped at their zip offset.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from petdiff.data.pairs import Pairs
from petdiff.utils.io import atomic_write

IMAGE_KEYS = ("full_dose", "low_dose", "truth")
SCALAR_KEYS = ("scale", "counts", "fraction")
FORMAT = "petdiff-pairs"


def write_pairs(path: str | os.PathLike, chunks: Iterable[Pairs], n: int, meta: dict) -> Path:
    """Stream `n` pairs from `chunks` (Pairs or ScanPairs: every tensor field) into `path` (.npz), atomically."""
    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent if path.parent.exists() else None) as tmp:
        arrays: dict[str, np.memmap] = {}
        filled = 0
        for chunk in chunks:
            b = min(chunk.full_dose.shape[0], n - filled)
            if not arrays:
                for key in (f.name for f in fields(chunk)):
                    shape = tuple(getattr(chunk, key).shape[1:])
                    arrays[key] = np.lib.format.open_memmap(f"{tmp}/{key}.npy", "w+", np.float32, (n, *shape))
            for key in arrays:
                arrays[key][filled : filled + b] = getattr(chunk, key)[:b].detach().cpu().numpy()
            filled += b
            if filled >= n:
                break
        if filled < n:
            raise ValueError(f"chunks: expected {n} pairs, found only {filled}")
        for array in arrays.values():
            array.flush()
        arrays_written = list(arrays)
        del arrays
        with atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key in arrays_written:
                zf.write(f"{tmp}/{key}.npy", f"{key}.npy")
            meta_array = np.array(json.dumps({"format": FORMAT, **meta}))
            with zf.open("meta.npy", "w") as member:
                np.lib.format.write_array(member, meta_array)
    return path


def _memmap_member(path: Path, zf: zipfile.ZipFile, name: str) -> np.ndarray:
    """Memory-map a stored (uncompressed) .npy member of a zip; fall back to reading it."""
    info = zf.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        with zf.open(name) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    with open(path, "rb") as raw:
        raw.seek(info.header_offset)
        local = raw.read(30)
        if local[:4] != b"PK\x03\x04":
            raise ValueError(f"{path}: corrupt zip entry {name!r} (bad local header)")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        start = info.header_offset + 30 + name_len + extra_len
        raw.seek(start)
        version = np.lib.format.read_magic(raw)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"{path}: field {name!r} uses unsupported .npy format version {version}")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(raw)
        offset = raw.tell()
    if dtype.hasobject:
        raise ValueError(f"{path}: field {name!r} holds Python objects; refusing to unpickle")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


class PairFileDataset(torch.utils.data.Dataset):
    """Reads a `petdiff simulate` file: item i is a dict of (1, H, W) images and scalars."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"{self.path}: pair file not found")
        try:
            with zipfile.ZipFile(self.path) as zf:
                names = set(zf.namelist())
                missing = [f"{k}.npy" for k in (*IMAGE_KEYS, *SCALAR_KEYS, "meta") if f"{k}.npy" not in names]
                if missing:
                    raise ValueError(f"{self.path}: not a petdiff pair file, missing fields {missing}")
                with zf.open("meta.npy") as f:
                    self.meta = json.loads(str(np.lib.format.read_array(f, allow_pickle=False)))
                stored = sorted(name[:-4] for name in names if name.endswith(".npy") and name != "meta.npy")
                self.arrays = {k: _memmap_member(self.path, zf, f"{k}.npy") for k in stored}
        except (zipfile.BadZipFile, EOFError, OSError, struct.error) as exc:
            raise ValueError(f"{self.path}: corrupt or truncated pair file ({exc})") from None
        n = len(self.arrays["full_dose"])
        if self.meta.get("format") != FORMAT:
            raise ValueError(
                f"{self.path}: field 'meta': expected format {FORMAT!r}, found {self.meta.get('format')!r}"
            )
        for key, array in self.arrays.items():
            if len(array) != n:
                raise ValueError(f"{self.path}: field {key!r} has {len(array)} entries, expected {n}")
        if self.path.stat().st_size < sum(a.nbytes for a in self.arrays.values()):
            raise ValueError(f"{self.path}: truncated pair file")

    def __len__(self) -> int:
        return len(self.arrays["full_dose"])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.array(a[index])) for k, a in self.arrays.items()}

    @property
    def resolution(self) -> int:
        """Image size H of the stored pairs."""
        return int(self.arrays["full_dose"].shape[-1])
