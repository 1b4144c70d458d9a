"""Image datasets for unconditional training: a folder of PNGs or an .npz of images, scaled to [−1, 1].

Optional integer class labels come from an .npz key `labels` or from sub-folder names (sorted, one level),
exposed as `label_dim` and one-hot vectors, as EDM's ImageFolderDataset does.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from petdiff.io.arrays import npz_keys, read_npz_array
from petdiff.phantoms.resample import resample_images

IMAGE_SUFFIXES = (".png",)
NPZ_IMAGE_KEYS = ("images", "phantoms")


def _png_array(path: Path) -> np.ndarray:
    """(C, H, W) array of a PNG (grey → C = 1, grey+alpha → 1, RGB(A) → 3), in its own integer range."""
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("LA", "P", "PA", "1"):
                img = img.convert("L")
            elif mode in ("RGBA", "CMYK", "YCbCr"):
                img = img.convert("RGB")
            arr = np.asarray(img)
    except (OSError, ValueError, SyntaxError) as err:
        raise ValueError(f"{path}: not a readable PNG image ({type(err).__name__}: {err})") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _png_full_scale(path: Path, arr: np.ndarray) -> float:
    """The value that maps to +1: 255 for 8-bit PNGs, 65535 for 16-bit ones."""
    if arr.dtype == np.uint8:
        return 255.0
    if arr.dtype in (np.uint16, np.int32):  # Pillow opens 16-bit grey PNGs as "I;16" or "I"
        return 65535.0
    raise ValueError(f"{path}: expected an 8- or 16-bit PNG, found pixel dtype {arr.dtype}")


def _check_range(value_range: tuple[float, float] | None) -> tuple[float, float] | None:
    """None, or a finite (lo, hi) with lo < hi."""
    if value_range is None:
        return None
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"value_range: expected None or (lo, hi), found {value_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise ValueError(f"value_range: expected finite (lo, hi) with lo < hi, found {value_range!r}")
    return lo, hi


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images (C, H, W) float32 in [−1, 1] with one-hot labels, from a folder of PNGs or an .npz file.

    `value_range` (lo, hi) is mapped linearly to [−1, 1]: x ↦ 2(x − lo)/(hi − lo) − 1.
    PNGs: default (0, 255) for 8-bit, (0, 65535) for 16-bit; each top-level sub-folder (sorted by name,
    searched recursively) is a class.
    .npz: key `images` (or `phantoms`, or its only array) of shape (N, H, W), (N, C, H, W) or the BrainWeb
    (N, H·W) layout; default range (min(0, data min), data max); optional key `labels` (N,) integers ≥ 0.
    With `resolution`, (square) images of any size are resampled (area down, bilinear up); otherwise all
    images must have one size. Channels must always agree.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        resolution: int | None = None,
        value_range: tuple[float, float] | None = None,
    ) -> None:
        self.path = Path(path)
        if resolution is not None and (
            isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1
        ):
            raise ValueError(f"resolution: expected a positive int or None, found {resolution!r}")
        self._target = resolution
        self._range = _check_range(value_range)
        self._files: list[Path] = []
        self._array: np.ndarray | None = None
        self.class_names: list[str] = []  # sub-folder names, when labels come from sub-folders
        if self.path.is_dir():
            raw_labels, shape = self._scan_folder()
        elif self.path.is_file() and self.path.suffix.lower() == ".npz":
            raw_labels, shape = self._read_npz()
        else:
            raise ValueError(f"{self.path}: expected a folder of PNG images or an .npz file, found neither")
        self.labels = raw_labels  # (N,) int64 or None
        self.label_dim = int(raw_labels.max()) + 1 if raw_labels is not None else 0
        self.num_channels, h, w = shape
        if resolution is not None and h != w:
            raise ValueError(f"{self.path}: resolution={resolution} needs square images, found {h}×{w}")
        self.image_shape = (
            (self.num_channels, h, w) if resolution is None else (self.num_channels, resolution, resolution)
        )
        self.resolution = self.image_shape[1]

    def _scan_folder(self) -> tuple[np.ndarray | None, tuple[int, int, int]]:
        """Collect PNGs (root or one level of class sub-folders) and check that their sizes agree."""
        top = sorted(f for f in self.path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        subdirs = sorted(d for d in self.path.iterdir() if d.is_dir() and not d.name.startswith("."))
        per_class = [sorted(f for f in d.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES) for d in subdirs]
        if top and any(per_class):
            raise ValueError(
                f"{self.path}: expected PNGs either all in the folder (no labels) or all in class sub-folders, "
                f"found {len(top)} at the top level and some in sub-folders {[d.name for d in subdirs]}"
            )
        if top:
            self._files, labels = top, None
        else:
            classes = [(d, files) for d, files in zip(subdirs, per_class) if files]
            self.class_names = [d.name for d, _ in classes]
            self._files = [f for _, files in classes for f in files]
            labels = (
                np.concatenate([np.full(len(files), k, np.int64) for k, (_, files) in enumerate(classes)])
                if classes
                else None
            )
        if not self._files:
            raise ValueError(f"{self.path}: expected PNG images ({', '.join(IMAGE_SUFFIXES)}), found none")
        shapes = {}
        for f in self._files:
            try:
                with Image.open(f) as img:
                    bands = 3 if img.mode in ("RGB", "RGBA", "CMYK", "YCbCr") else 1
                    shapes.setdefault((bands, img.height, img.width), f)
            except (OSError, ValueError, SyntaxError) as err:
                raise ValueError(f"{f}: not a readable PNG image ({type(err).__name__}: {err})") from None
        found = ", ".join(f"{c}×{h}×{w} ({p.name})" for (c, h, w), p in list(shapes.items())[:4])
        if len({c for c, _, _ in shapes}) > 1 or (len(shapes) > 1 and self._target is None):
            raise ValueError(f"{self.path}: expected images of one size and channel count (C×H×W), found {found}")
        if self._target is not None and any(h != w for _, h, w in shapes):
            raise ValueError(f"{self.path}: resolution={self._target} needs square images, found {found}")
        return labels, next(iter(shapes))

    def _read_npz(self) -> tuple[np.ndarray | None, tuple[int, int, int]]:
        """Load images (and labels) from an .npz and scale them to [−1, 1]."""
        key, arr = read_npz_array(self.path, NPZ_IMAGE_KEYS, only_array=True)
        where = f"{self.path} [{key}]"
        if arr.dtype.kind not in "biuf" or arr.size == 0:
            raise ValueError(f"{where}: expected a non-empty numeric array, found dtype {arr.dtype}, shape {arr.shape}")
        if arr.ndim == 2:
            side = math.isqrt(arr.shape[1])
            if side * side != arr.shape[1]:
                raise ValueError(f"{where}: expected (N, H*W) with a square H*W, found shape {arr.shape}")
            arr = arr.reshape(-1, 1, side, side)
        elif arr.ndim == 3:
            arr = arr[:, None]
        elif arr.ndim != 4:
            raise ValueError(f"{where}: expected (N, H, W), (N, C, H, W) or (N, H*W), found shape {arr.shape}")
        data = arr.astype(np.float32)
        if not np.isfinite(data).all():
            raise ValueError(f"{where}: expected finite values, found {int((~np.isfinite(data)).sum())} NaN/inf")
        if self._range is None:
            lo = min(float(data.min()), 0.0)
            hi = max(float(data.max()), lo + 1e-12)  # an all-zero dataset maps to −1
        else:
            lo, hi = self._range
        self._array = (data - lo) / (hi - lo) * 2.0 - 1.0
        labels = None
        if key != "labels" and "labels" in npz_keys(self.path):
            labels = read_npz_array(self.path, ("labels",))[1]
        if labels is not None:
            if labels.shape != (len(data),) or labels.dtype.kind not in "iu" or (labels.size and labels.min() < 0):
                raise ValueError(
                    f"{self.path} [labels]: expected {len(data)} integers >= 0, found dtype {labels.dtype}, "
                    f"shape {labels.shape}"
                )
            labels = labels.astype(np.int64)
        return labels, tuple(data.shape[1:])

    def __len__(self) -> int:
        return len(self._files) if self._array is None else len(self._array)

    @property
    def has_labels(self) -> bool:
        """True when the images carry class labels."""
        return self.label_dim > 0

    def get_label(self, index: int) -> torch.Tensor:
        """One-hot label (label_dim,) float32; an empty vector when the dataset has no labels."""
        onehot = torch.zeros(self.label_dim, dtype=torch.float32)
        if self.labels is not None:
            onehot[int(self.labels[index])] = 1.0
        return onehot

    def _image(self, index: int) -> torch.Tensor:
        """Image `index` as (C, H, W) float32 in [−1, 1] before resampling."""
        if self._array is not None:
            return torch.from_numpy(self._array[index])
        f = self._files[index]
        arr = _png_array(f)
        lo, hi = self._range if self._range is not None else (0.0, _png_full_scale(f, arr))
        scaled = (arr.astype(np.float32) - lo) / (hi - lo) * 2.0 - 1.0
        return torch.from_numpy(scaled)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        index = index % len(self)
        image = self._image(index)
        if self._target is not None and image.shape[-1] != self._target:
            image = resample_images(image[None], self._target)[0]  # square (checked at init): no padding
        return image.contiguous(), self.get_label(index)
