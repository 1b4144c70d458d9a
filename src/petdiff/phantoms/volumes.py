"""Users' own images as phantoms: .npy, .npz and NIfTI volumes → axial slices (N, 1, H, W).

Orientation of NIfTI volumes: the volume is first reoriented to RAS+ (nibabel `as_closest_canonical`,
axes i → subject's Right, j → Anterior, k → Superior); slice n is k = n (inferior → superior), shown as a
radiological axial slice: row 0 = anterior, column 0 = the subject's right, i.e.
`slice[n][r, c] = canonical[I−1−c, J−1−r, n]`. `.npy`/`.npz` arrays are taken as they are: (H, W) is one
slice, (N, H, W) (or (N, 1, H, W)) is N slices along the first axis; under the `.npz` key `phantoms` a
non-square 2D array is the BrainWeb reference layout (N, H·W). Values are activities: finite and ≥ 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petdiff.io.arrays import as_slices, check_numeric, read_npy_array, read_npz_array
from petdiff.io.nifti import load_nifti_image, nifti_payload
from petdiff.io.paths import is_nifti, require_file
from petdiff.phantoms.resample import resample_images, square_padding
from petdiff.utils.io import atomic_write

NPZ_KEYS = ("images", "phantoms")


@dataclass
class Volume:
    """Slices in display orientation plus what is needed to write results back with the same geometry."""

    data: np.ndarray  # (N, H, W) float32 axial slices (see the module docstring for the orientation)
    affine: np.ndarray | None  # 4×4 voxel → world (RAS+, mm) of `to_canonical(data)`; None for .npy/.npz
    kind: str  # "npy", "npz" or "nifti"
    path: Path
    header: Any = None  # the nibabel header of a NIfTI input

    def to_canonical(self, slices: np.ndarray) -> np.ndarray:
        """(N, H, W) display slices → the RAS+ array (W, H, N) that `affine` describes (inverse of the display map)."""
        return np.ascontiguousarray(np.asarray(slices).transpose(2, 1, 0)[::-1, ::-1, :])


def _load_nifti(path: Path) -> tuple[np.ndarray, np.ndarray, Any]:
    """(display slices (N, H, W), affine of the canonical array, header) of a NIfTI file."""
    import nibabel as nib

    img = nib.as_closest_canonical(load_nifti_image(path))  # size-checked before any data is read
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except (EOFError, OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable NIfTI file ({type(err).__name__}: {' '.join(str(err).split())})") \
            from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3:
        raise ValueError(f"{path}: expected a 2D or 3D NIfTI volume, found shape {data.shape}")
    slices = np.ascontiguousarray(data[::-1, ::-1, :].transpose(2, 1, 0))
    return slices, np.asarray(img.affine, dtype=np.float64), img.header


def _resampled_affine(affine: np.ndarray, shape: tuple[int, int], top: int, left: int, resolution: int) -> np.ndarray:
    """Affine of the canonical array after padding (top, left) to a square and resampling to resolution²."""
    h, w = shape
    side = max(h, w)
    s = side / resolution  # old pixels per new pixel
    # New canonical voxel i' ↦ old i = (W − ½ + left − (R − ½)·s) + s·i'  (and likewise j from rows / top).
    m = np.eye(4)
    m[0, 0], m[0, 3] = s, w - 0.5 + left - (resolution - 0.5) * s
    m[1, 1], m[1, 3] = s, h - 0.5 + top - (resolution - 0.5) * s
    return affine @ m


def load_volume(path: str | os.PathLike, resolution: int | None = None) -> Volume:
    """Slices of an .npy, .npz (key `images`, `phantoms` or the only array) or NIfTI file, resampled when asked.

    With `resolution`, slices are zero-padded to a centred square and resampled to resolution² keeping the
    pixel values (area averaging down, bilinear up; see `resample_images`); the affine follows.
    """
    p = require_file(path)
    affine, header = None, None
    if is_nifti(p):
        kind, key = "nifti", "data"
        slices, affine, header = _load_nifti(p)
    elif p.suffix.lower() == ".npz":
        kind = "npz"
        key, arr = read_npz_array(p, NPZ_KEYS, only_array=True)
        slices = as_slices(p, key, arr)
    elif p.suffix.lower() == ".npy":
        kind, key = "npy", "array"
        slices = as_slices(p, key, read_npy_array(p))
    else:
        raise ValueError(f"{p}: expected a .npy, .npz, .nii or .nii.gz file, found suffix {p.suffix!r}")
    slices = check_numeric(p, key, slices)
    if resolution is not None:
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"resolution: expected a positive int or None, found {resolution!r}")
        top, left = square_padding(*slices.shape[1:])
        if affine is not None:
            affine = _resampled_affine(affine, slices.shape[1:], top, left, resolution)
        slices = resample_images(torch.from_numpy(slices)[:, None], resolution)[:, 0].numpy()
    return Volume(data=np.ascontiguousarray(slices, dtype=np.float32), affine=affine, kind=kind, path=p, header=header)


def load_images(path: str | os.PathLike, resolution: int | None = None) -> torch.Tensor:
    """Activity slices (N, 1, H, W) float32 (finite, ≥ 0) from an .npy / .npz / NIfTI file (see `load_volume`)."""
    return torch.from_numpy(load_volume(path, resolution).data).unsqueeze(1)


def save_nifti(path: str | os.PathLike, images: torch.Tensor | np.ndarray, like: Volume) -> Path:
    """Write slices (N, [1,] H, W) as a NIfTI volume with the geometry of `like` (atomically; .nii or .nii.gz)."""
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3 or arr.shape[1:] != like.data.shape[1:]:
        raise ValueError(
            f"images: expected slices (N, 1, H, W) with H, W = {like.data.shape[1:]} like {like.path}, "
            f"found shape {arr.shape}"
        )
    out = Path(path)
    if not is_nifti(out):
        raise ValueError(f"path: expected a .nii or .nii.gz file name, found {out.name!r}")
    affine = like.affine if like.affine is not None else np.eye(4)
    # A fresh header: the input's scaling (scl_slope) or data type must not apply to the float output.
    payload = nifti_payload(like.to_canonical(arr), affine, compress=out.name.lower().endswith(".gz"))
    with atomic_write(out) as f:
        f.write(payload)
    return out
