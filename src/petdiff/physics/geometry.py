"""Parallel-beam 2D PET geometry on the square domain [-1, 1]²."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_RESOLUTION = 2
MAX_RESOLUTION = 1024


def _check_count(name: str, value: object, low: int, high: int) -> int:
    """Require an integer (not bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer in [{low}, {high}], found {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name}: expected an integer in [{low}, {high}], found {value!r}")
    return int(value)


@dataclass(frozen=True)
class Geometry:
    """Image H×H on [-1, 1]², angles φ_i = π·i/n_angles, radial bins s_k = -1 + ds/2 + k·ds, ds = 2/n_bins.

    Defaults follow the reference system: n_angles = 2H, n_bins = H (bins at pixel centres).
    """

    resolution: int
    n_angles: int | None = None
    n_bins: int | None = None

    def __post_init__(self) -> None:
        res = _check_count("resolution", self.resolution, MIN_RESOLUTION, MAX_RESOLUTION)
        n_angles = 2 * res if self.n_angles is None else _check_count("n_angles", self.n_angles, 1, 8 * MAX_RESOLUTION)
        n_bins = res if self.n_bins is None else _check_count("n_bins", self.n_bins, 1, 8 * MAX_RESOLUTION)
        # frozen dataclass: normalise the fields once, so equal geometries compare (and cache) equal
        object.__setattr__(self, "resolution", res)
        object.__setattr__(self, "n_angles", n_angles)
        object.__setattr__(self, "n_bins", n_bins)

    @classmethod
    def coerce(cls, geometry_or_resolution: Geometry | int, name: str = "geometry_or_resolution") -> Geometry:
        """Accept a Geometry or an int resolution (default sinogram size)."""
        if isinstance(geometry_or_resolution, Geometry):
            return geometry_or_resolution
        if isinstance(geometry_or_resolution, bool) or not isinstance(geometry_or_resolution, (int, np.integer)):
            raise ValueError(f"{name}: expected a Geometry or an int resolution, found {geometry_or_resolution!r}")
        return cls(int(geometry_or_resolution))

    @property
    def image_shape(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return (self.resolution, self.resolution)

    @property
    def sinogram_shape(self) -> tuple[int, int]:
        """(n_angles, n_bins) of one sinogram."""
        return (self.n_angles, self.n_bins)

    @property
    def n_pixels(self) -> int:
        """p = H·W."""
        return self.resolution * self.resolution

    @property
    def n_lors(self) -> int:
        """d = n_angles·n_bins."""
        return self.n_angles * self.n_bins

    @property
    def pixel_size(self) -> float:
        """Pixel width w = 2/H in domain units."""
        return 2.0 / self.resolution

    def angles(self) -> np.ndarray:
        """φ_i = π·i/n_angles, i = 0 … n_angles-1 (float64)."""
        return math.pi * np.arange(self.n_angles, dtype=np.float64) / self.n_angles

    def offsets(self) -> np.ndarray:
        """s_k = -1 + ds/2 + k·ds with ds = 2/n_bins (float64)."""
        ds = 2.0 / self.n_bins
        return -1.0 + ds / 2 + ds * np.arange(self.n_bins, dtype=np.float64)
