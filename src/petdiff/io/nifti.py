"""NIfTI in and out (nibabel) in the file's own voxel order: no reorientation, header fields kept.

`read_nifti` maps the NIfTI array (i, j, k) to slices `images[k, 0, j, i]` and keeps the file's affine
(RAS world, the sform when its code is set, else the qform), `descrip`, xyzt units and the whole header.
`write_nifti` writes images of that shape back with the input's shape (2D, 3D or 4D with one frame),
affine, qform/sform codes and header fields, as float32 without intensity scaling.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from petdiff.io.arrays import check_numeric
from petdiff.io.paths import MAX_BYTES, check_declared_size, is_nifti, require_file
from petdiff.io.scan import Scan
from petdiff.utils.io import atomic_write

DEFLATE_MAX_RATIO = 1032  # deflate never expands data more than this: bounds a .nii.gz's content size
_READ_ERRORS = (EOFError, OSError, ValueError, zlib.error, gzip.BadGzipFile)


def _line(err: BaseException) -> str:
    """An exception's text on one line."""
    return " ".join(str(err).split())


def load_nifti_image(path: str | os.PathLike, max_bytes: int = MAX_BYTES):
    """The nibabel image of a .nii / .nii.gz file, its declared data size checked against the file first."""
    import nibabel as nib

    p = require_file(path)
    if not is_nifti(p):
        raise ValueError(f"{p}: expected a .nii or .nii.gz file, found {p.name!r}")
    try:
        img = nib.load(str(p))
    except (nib.filebasedimages.ImageFileError, *_READ_ERRORS) as err:
        raise ValueError(f"{p}: not a readable NIfTI file ({type(err).__name__}: {_line(err)})") from None
    shape, dtype = img.header.get_data_shape(), img.header.get_data_dtype()
    what = f"not a readable NIfTI file: the header (shape {shape}, {dtype})"
    declared = math.prod(int(s) for s in shape) * dtype.itemsize
    size = p.stat().st_size
    if p.name.lower().endswith(".gz"):
        check_declared_size(p, what, declared, None, max_bytes)
        if declared > size * DEFLATE_MAX_RATIO:
            raise ValueError(f"{p}: {what} declares {declared} bytes of data, "
                             f"more than a {size}-byte gzip file can hold (truncated file or corrupt header)")
    else:
        offset = int(getattr(img.dataobj, "offset", 352))  # the loaded header resets vox_offset
        check_declared_size(p, what, declared, size - offset, max_bytes)
    return img


def _volume_shape(path: Path, shape: tuple[int, ...]) -> None:
    """Refuse anything but 2D, 3D, or 4D with a single frame."""
    if len(shape) < 2 or len(shape) > 4 or (len(shape) == 4 and shape[3] != 1):
        raise ValueError(f"{path}: expected a 2D or 3D NIfTI volume (or 4D with one frame), found shape {shape}")


def read_nifti(path: str | os.PathLike, units: str = "counts", fraction: float | None = None,
               count_level: float | None = None, max_bytes: int = MAX_BYTES) -> Scan:
    """A NIfTI volume as a Scan in its own voxel order (images[k, 0, j, i] = data[i, j, k]); units as given."""
    p = Path(path)
    img = load_nifti_image(p, max_bytes)
    shape = tuple(int(s) for s in img.header.get_data_shape())
    _volume_shape(p, shape)
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except (MemoryError, *_READ_ERRORS) as err:
        raise ValueError(f"{p}: truncated or corrupt NIfTI data ({type(err).__name__}: {_line(err)})") from None
    data = data.reshape(shape[0], shape[1], shape[2] if len(shape) > 2 else 1)
    data = check_numeric(p, "data", data)
    zooms = [float(z) for z in img.header["pixdim"][1:4]]
    zooms = [z if math.isfinite(z) and z > 0 else 1.0 for z in zooms]
    images = torch.from_numpy(np.ascontiguousarray(data.transpose(2, 1, 0)))[:, None]
    return Scan(images=images, units=units, voxel_size=(zooms[2], zooms[1], zooms[0]),
                affine=np.asarray(img.affine, dtype=np.float64), space="RAS", fraction=fraction,
                count_level=count_level, source=p, kind="nifti", header=img.header.copy())


def nifti_payload(data: np.ndarray, affine: np.ndarray, header=None, description: str | None = None,
                  compress: bool = True) -> bytes:
    """Bytes of a float32 NIfTI-1 file of `data` (i, j, k): on `header`'s geometry and fields when given."""
    import nibabel as nib

    data = np.asarray(data, dtype=np.float32)
    if header is not None:
        hdr = header.copy()
        data = data.reshape(hdr.get_data_shape())
        same = np.allclose(hdr.get_best_affine(), affine, atol=1e-5)
        img = nib.Nifti1Image(data, None if same else affine, header=hdr)
        if not same:  # keep the input's codes (at least "scanner" when a new affine must be stored)
            img.set_sform(affine, code=max(int(hdr["sform_code"]), 1))
            img.set_qform(affine, code=max(int(hdr["qform_code"]), 1))
        img.header["cal_min"], img.header["cal_max"] = 0.0, 0.0
    else:
        img = nib.Nifti1Image(data, affine)
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
        img.header.set_xyzt_units("mm", "sec")
    img.set_data_dtype(np.float32)
    img.header.set_slope_inter(1.0, 0.0)  # the float output must not inherit an integer input's scaling
    if description is not None:
        img.header["descrip"] = description.encode("ascii", "replace")[:79]
    payload = img.to_bytes()
    return gzip.compress(payload, compresslevel=6) if compress else payload


def write_nifti(path: str | os.PathLike, scan: Scan, description: str | None = None) -> Path:
    """Write the scan's images as NIfTI (atomically): on the input's header and grid for a NIfTI source."""
    out = Path(path)
    if not is_nifti(out):
        raise ValueError(f"path: expected a .nii or .nii.gz file name, found {out.name!r}")
    data = scan.images[:, 0].detach().cpu().numpy().transpose(2, 1, 0)
    header = scan.header if scan.kind == "nifti" and scan.header is not None else None
    if header is not None and math.prod(header.get_data_shape()) != data.size:
        raise ValueError(f"scan: expected images with the NIfTI header's shape {header.get_data_shape()}, "
                         f"found (i, j, k) = {data.shape}")
    payload = nifti_payload(data, scan.ras_affine(), header, description, out.name.lower().endswith(".gz"))
    with atomic_write(out) as f:
        f.write(payload)
    return out
