"""Is a file DICOM? The Part-10 preamble, else a cheap look at the first tag, before pydicom reads it with force.

Archives and some scanners (e.g. Philips GEMINI exports) write DICOM without the 128-byte preamble and `DICM`
marker: the file starts directly with the first data element, (0002,xxxx) or (0008,xxxx), in implicit or
explicit VR, little or big endian. A file is read with `dcmread(force=True)` only when its first four bytes
are such a tag and what follows is a valid explicit VR or a plausible implicit length; any other file is
not DICOM, so random files are never parsed as data sets.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

_FIRST_GROUPS = (0x0002, 0x0008)
_VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF",
        b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI", b"UL", b"UN",
        b"UR", b"US", b"UT", b"UV"}


class NotDicomError(ValueError):
    """The file is not DICOM (no preamble and no plausible first data element)."""


def has_preamble(head: bytes) -> bool:
    """The Part-10 `DICM` marker after a 128-byte preamble."""
    return len(head) >= 132 and head[128:132] == b"DICM"


def starts_like_dicom(head: bytes) -> bool:
    """The first bytes are a (0002|0008, xxxx) data element in explicit or implicit VR, either byte order."""
    if len(head) < 8:
        return False
    for order in ("<", ">"):
        group, element = struct.unpack(order + "HH", head[:4])
        if group not in _FIRST_GROUPS or element > 0x0100:
            continue
        if head[4:6] in _VRS:
            return True
        (length,) = struct.unpack(order + "I", head[4:8])
        if 0 < length < 1024 and length % 2 == 0:  # implicit VR: an even, short first value
            return True
    return False


def looks_like_dicom(path: str | os.PathLike) -> bool:
    """True for a Part-10 file, or a preamble-less file that starts with a plausible data element."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return has_preamble(head) or starts_like_dicom(head)


def read_dataset(path: str | os.PathLike, defer_size: int | None = 4096) -> Any:
    """The file's dataset (large values such as pixel data read on first use); NotDicomError when not DICOM.

    Damaged files raise ValueError naming the file (pydicom raises many exception types on them).
    """
    import pydicom

    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(132)
    except OSError as err:
        raise ValueError(f"{p}: unreadable ({err.strerror or err})") from None
    preamble = has_preamble(head)
    if not preamble and not starts_like_dicom(head):
        raise NotDicomError(f"{p}: not a DICOM file (no DICM preamble and no DICOM data element at the start)")
    try:
        ds = pydicom.dcmread(p, force=not preamble, defer_size=defer_size)
    except Exception as err:  # struct.error, KeyError, EOFError, …
        raise ValueError(f"{p}: truncated or corrupt DICOM file ({type(err).__name__}: {err})") from None
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        _set_syntax(ds)
    return ds


def _set_syntax(ds: Any) -> None:
    """Record the encoding pydicom found in a file without file meta, so its pixel data can be decoded."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    implicit, little = ds.original_encoding
    if implicit is None:
        return
    if not hasattr(ds, "file_meta") or ds.file_meta is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                      ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
