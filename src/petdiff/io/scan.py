"""`Scan`: a stack of PET slices with its units, grid, dose and the header to write results back with.

Axes and geometry. `images` is (N, 1, H, W) float32: N slices, H rows, W columns, in the voxel order of the
file (no reorientation). `voxel_size` is (slice, row, column) spacing in mm, i.e. (dz, dy, dx) along the
axes (N, H, W). `affine` maps the index vector (column, row, slice, 1) to world coordinates in mm, in the
convention of the source named by `space`:
  - "RAS" (NIfTI): x → Right, y → Anterior, z → Superior; index (i, j, k) of the NIfTI array is
    (column, row, slice), i.e. `images[k, 0, j, i] == nifti_data[i, j, k]`.
  - "LPS" (DICOM patient coordinates): x → Left, y → Posterior, z → Superior; column = pixel column,
    row = pixel row, slice = position along the slice normal (see `petdiff.io.dicom`).
  - None (.npy/.npz): no world geometry; `affine` is the scaling by `voxel_size` (mm when known, else 1).
`lps_to_ras` converts between the two world conventions (they differ by the sign of x and y).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

UNITS = ("counts", "Bq/mL", "SUV")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class SUVInfo:
    """How SUVbw = activity [Bq/mL] × weight [g] / decay-corrected dose [Bq] was computed for a series.

    `factors` (N,) multiplies each slice's Bq/mL into SUV (all equal unless DecayCorrection is NONE);
    `sources` maps each quantity (weight, dose, half_life, injection_time, reference_time) to the DICOM tag
    or the option that supplied it.
    """

    factors: np.ndarray
    weight_g: float
    injected_dose_bq: float
    half_life_s: float
    decay_correction: str
    decay_s: np.ndarray  # (N,) seconds of decay between injection and each slice's reference time
    sources: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: the factor and where each quantity came from."""
        used = ", ".join(f"{k} from {v}" for k, v in self.sources.items())
        return (f"SUVbw factor {float(np.mean(self.factors)):.6g} mL/Bq (DecayCorrection {self.decay_correction}; "
                f"{used})")


@dataclass(frozen=True)
class Scan:
    """Slices (N, 1, H, W) float32 with units, voxel size (dz, dy, dx) mm, affine, dose and the source header."""

    images: torch.Tensor
    units: str = "counts"
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0)
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    space: str | None = None  # "RAS" (NIfTI), "LPS" (DICOM) or None (arrays): the convention of `affine`
    fraction: float | None = None  # dose fraction of the acquisition (low / full), when known
    count_level: float | None = None  # expected true counts per slice, when known
    source: Path | None = None
    kind: str = "array"  # "nifti", "dicom", "npy", "npz" or "array"
    header: Any = None  # nibabel header (NIfTI) or tuple of pydicom Datasets in slice order (DICOM); opaque
    suv: SUVInfo | None = None  # how the images were converted to SUV, when they were
    notes: tuple[str, ...] = ()  # what a reader skipped or assumed (for the command to report)

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor) or self.images.ndim != 4 or self.images.shape[1] != 1:
            found = tuple(self.images.shape) if isinstance(self.images, torch.Tensor) else type(self.images).__name__
            raise ValueError(f"Scan.images: expected a tensor (N, 1, H, W), found {found}")
        if self.units not in UNITS:
            raise ValueError(f"Scan.units: expected one of {', '.join(UNITS)}, found {self.units!r}")
        if len(self.voxel_size) != 3 or not all(float(v) > 0 for v in self.voxel_size):
            raise ValueError(f"Scan.voxel_size: expected three positive spacings (dz, dy, dx) mm, "
                             f"found {self.voxel_size!r}")
        if np.shape(self.affine) != (4, 4):
            raise ValueError(f"Scan.affine: expected a 4×4 matrix, found shape {np.shape(self.affine)}")
        object.__setattr__(self, "voxel_size", tuple(float(v) for v in self.voxel_size))
        object.__setattr__(self, "affine", np.asarray(self.affine, dtype=np.float64))

    @property
    def shape(self) -> tuple[int, int, int]:
        """(N, H, W)."""
        n, _, h, w = self.images.shape
        return int(n), int(h), int(w)

    @property
    def pixel_size(self) -> tuple[float, float]:
        """In-plane spacing (dy, dx) in mm."""
        return self.voxel_size[1], self.voxel_size[2]

    @property
    def name(self) -> str:
        """The source's file or folder name without format suffixes ("scan" when there is none)."""
        from petdiff.io.paths import stem

        return stem(self.source) if self.source is not None else "scan"

    def with_images(self, images: torch.Tensor, units: str | None = None) -> Scan:
        """The same scan (geometry, header, dose) with other images of the same shape (e.g. a posterior mean)."""
        if not isinstance(images, torch.Tensor) or tuple(images.shape) != tuple(self.images.shape):
            found = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images: expected the scan's shape {tuple(self.images.shape)}, found {found}")
        return dataclasses.replace(self, images=images.detach().to(torch.float32), units=units or self.units)

    def replace(self, **changes: Any) -> Scan:
        """A copy with some fields changed (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)

    def ras_affine(self) -> np.ndarray:
        """The affine in RAS world coordinates (what NIfTI stores); arrays keep their scaling affine."""
        return LPS_TO_RAS @ self.affine if self.space == "LPS" else self.affine.copy()


def scaling_affine(voxel_size: tuple[float, float, float]) -> np.ndarray:
    """The affine of an array without world geometry: (column, row, slice) index × (dx, dy, dz)."""
    dz, dy, dx = voxel_size
    return np.diag([dx, dy, dz, 1.0])


def lps_to_ras(affine: np.ndarray) -> np.ndarray:
    """Convert a voxel → LPS affine into voxel → RAS (or back: the map is its own inverse)."""
    return LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)
