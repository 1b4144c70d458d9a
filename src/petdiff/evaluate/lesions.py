"""The per-lesion numbers physicians read off a PET scan: SUVmax, SUVpeak, SUVmean, MTV and TLG.

For an image x on a grid of voxel size (dz, dy, dx) mm and a lesion L (a set of voxels, e.g. one label of a
mask), in the image's units (SUV when the image is in SUV):
  max   = max_{v ∈ L} x_v  (SUVmax).
  peak  = max_{c ∈ L} mean_{v ∈ S(c)} x_v  (SUVpeak, after PERCIST): S(c) is the 1 mL sphere centred on the
          centre of voxel c, i.e. the voxels whose centres lie within r = (3 · 1000 mm³ / 4π)^(1/3) ≈ 6.20 mm of
          it (in mm, so anisotropic voxels are handled), cut to the image (voxels outside the image are left out
          of the mean, not counted as zero); the sphere may reach outside L, its centre may not. On a single
          slice the sphere is its in-plane disc.
  MTV   = |M| · dz·dy·dx / 1000 mL, the metabolic tumour volume: M is the set of voxels of L with x_v ≥ 0.41 · max
          that are connected (26-neighbourhood in 3D, 8 in a slice) to the hottest voxel of L.
  mean  = mean_{v ∈ M} x_v (SUVmean inside the 41 % isocontour).
  TLG   = mean × MTV (total lesion glycolysis, units × mL).
A lesion whose max is not positive has no isocontour: mean, MTV and TLG are NaN.

`hotspot_labels` finds lesions without a mask: the N hottest connected regions of x ≥ threshold.
`lesion_table` gives the numbers of every label; `lesion_intervals` the 5th–95th percentile of each number over
posterior samples (each sample's numbers computed on its own, then the percentiles taken per number).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

PEAK_ML = 1.0
ISOCONTOUR = 0.41
FIELDS = ("max", "peak", "mean", "mtv_ml", "tlg")


@dataclass(frozen=True)
class LesionNumbers:
    """One lesion's numbers in the image's units (see the module docstring); `voxels` = |M|."""

    max: float
    peak: float
    mean: float
    mtv_ml: float
    tlg: float
    voxels: int

    def as_dict(self) -> dict[str, float]:
        """The numbers by field name."""
        return asdict(self)


def _volume(image: np.ndarray) -> np.ndarray:
    """A (N, H, W) float64 view of an image given as (H, W), (N, H, W) or (N, 1, H, W)."""
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"image: expected (H, W), (N, H, W) or (N, 1, H, W), found shape {np.shape(image)}")
    return arr


def sphere_offsets(voxel_size: tuple[float, float, float], volume_ml: float = PEAK_ML) -> np.ndarray:
    """(M, 3) integer (slice, row, column) offsets whose voxel centres lie within the sphere of `volume_ml`."""
    radius = (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
    reach = [math.floor(radius / s) for s in voxel_size]
    grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), axis=-1).reshape(-1, 3)
    dist2 = ((grid * np.asarray(voxel_size)) ** 2).sum(axis=1)
    return grid[dist2 <= radius**2 + 1e-9]


def peak(image: np.ndarray, centres: np.ndarray, voxel_size: tuple[float, float, float]) -> float:
    """max over `centres` (K, 3) of the mean of the image in the 1 mL sphere around each (cut to the image)."""
    x = _volume(image)
    offsets = sphere_offsets(voxel_size)
    points = centres[:, None, :] + offsets[None, :, :]  # (K, M, 3)
    inside = ((points >= 0) & (points < np.asarray(x.shape))).all(axis=-1)
    clipped = np.clip(points, 0, np.asarray(x.shape) - 1)
    values = np.where(inside, x[clipped[..., 0], clipped[..., 1], clipped[..., 2]], 0.0)
    return float((values.sum(axis=1) / inside.sum(axis=1)).max())


def lesion_numbers(image: np.ndarray, lesion: np.ndarray, voxel_size: tuple[float, float, float]) -> LesionNumbers:
    """SUVmax, SUVpeak, SUVmean, MTV and TLG of one lesion (boolean mask on the image's grid)."""
    from skimage.measure import label

    x = _volume(image)
    mask = _volume(lesion) > 0
    if mask.shape != x.shape:
        raise ValueError(f"lesion: expected a mask of the image's shape {x.shape}, found {mask.shape}")
    voxels = np.argwhere(mask)
    if not len(voxels):
        raise ValueError("lesion: expected at least one voxel, found an empty mask")
    values = x[mask]
    hottest = tuple(voxels[int(np.argmax(values))])
    top = float(values.max())
    peak_value = peak(x, voxels, voxel_size)
    if top <= 0:
        return LesionNumbers(top, peak_value, float("nan"), float("nan"), float("nan"), 0)
    above = mask & (x >= ISOCONTOUR * top)
    components = label(above, connectivity=3)  # 26 neighbours (8 within a single slice)
    region = components == components[hottest]
    count = int(region.sum())
    mtv = count * float(np.prod(voxel_size)) / 1000.0
    mean = float(x[region].mean())
    return LesionNumbers(top, peak_value, mean, mtv, mean * mtv, count)


def lesion_table(image: np.ndarray, labels: np.ndarray,
                 voxel_size: tuple[float, float, float]) -> dict[int, LesionNumbers]:
    """The numbers of every non-zero label present in `labels` (same grid as the image), by label."""
    lab = _volume(labels).astype(np.int64)
    return {int(k): lesion_numbers(image, lab == k, voxel_size) for k in np.unique(lab) if k > 0}


def lesion_intervals(samples: np.ndarray, labels: np.ndarray, voxel_size: tuple[float, float, float],
                     q: tuple[float, float] = (5.0, 95.0)) -> dict[int, tuple[dict[str, float], dict[str, float]]]:
    """Per label, the (q[0], q[1]) percentiles of each number over the K samples (K, N, [1,] H, W)."""
    tables = [lesion_table(s, labels, voxel_size) for s in samples]
    out = {}
    for k in tables[0]:
        stacked = {f: np.array([getattr(t[k], f) for t in tables]) for f in FIELDS}
        lo = {f: float(np.nanpercentile(v, q[0])) if np.isfinite(v).any() else float("nan")
              for f, v in stacked.items()}
        hi = {f: float(np.nanpercentile(v, q[1])) if np.isfinite(v).any() else float("nan")
              for f, v in stacked.items()}
        out[k] = (lo, hi)
    return out


def hotspot_labels(image: np.ndarray, threshold: float, n: int) -> np.ndarray:
    """Labels (N, H, W) int32 of the `n` hottest connected regions of image ≥ threshold (1 = hottest)."""
    from skimage.measure import label

    if n < 1:
        raise ValueError(f"hotspots: expected at least 1 region, found {n}")
    x = _volume(image)
    above = x >= threshold
    components = label(above, connectivity=3)
    found = int(components.max())
    if found == 0:
        return np.zeros(x.shape, dtype=np.int32)
    peaks = np.full(found + 1, -np.inf)
    np.maximum.at(peaks, components.ravel(), x.ravel())
    order = np.argsort(-peaks[1:], kind="stable")[:n] + 1
    out = np.zeros(x.shape, dtype=np.int32)
    for rank, comp in enumerate(order, start=1):
        out[components == comp] = rank
    return out
