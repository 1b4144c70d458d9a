"""`enhance_scan`: a `Scan` in its own units, grid and size → enhanced `Scan`s on the same grid, in the same units.

The one typed boundary between a user's scan and the networks (64×64 slices at the sidecar's
`data.pixel_size_mm`, default 4 mm, in counts at low dose):

1. Units. The networks see counts: x = K·img with K counts per unit of the input. Counts inputs have K = 1
   (or the given K); Bq/mL and SUV need K from the user (`counts_per_unit`), else K is estimated so that the
   median non-empty slice (or tile) sits at the geometric centre of the training count range at the scan's
   dose fraction (a warning says so: the count level only tells the network the noise level). The output o
   of the networks is in full-dose counts (low / f scale); it goes back to the input's units as o/K for
   counts (full dose, as the docs define it) and o·f/K for concentrations (a concentration does not change
   with the dose; only the counts do). One K and one f per volume: no per-slice renormalisation.
2. Grid. Each slice is resampled to the model's pixel size (`grid.to_model_grid`: counts keep their slice
   totals, concentrations their values) and back to the input's (H, W) afterwards, so the outputs keep the
   input's shape, affine, orientation and header (`Scan.with_images`).
3. Field of view. A slice that fits the network is zero-padded to it and run whole; a larger one runs in
   overlapping tiles blended by a Gaussian window (`tiling.sliding_window`). Each sample k is blended across
   tiles first and the mean and std are taken over the blended samples, so the std is that of the blended
   estimate. The count level of a tile (or padded slice) is its own K·Σ s_j x_j (`count_level`).
4. All-zero slices are not enhanced: their outputs are 0 and a note says which.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from petdiff.inference.enhancer import PairEnhancement, SamplingSettings, count_level, training_span
from petdiff.inference.grid import EXTENSIVE_UNITS, from_model_grid, to_model_grid
from petdiff.inference.tiling import sliding_window, tile_count
from petdiff.io import Scan
from petdiff.physics import Projector
from petdiff.utils.validation import check_fraction, check_non_negative

DEFAULT_PIXEL_SIZE_MM = 4.0
OVERLAP = 0.5
SLICES_PER_CHUNK = 8  # slices blended per sliding_window call (bounds the float64 accumulators)
TILES_PER_CALL = 8  # tiles per network call (each call samples K posterior samples per tile)
Progress = Callable[[int, int], None]  # (tiles done, tiles in total)


class EnhancerLike(Protocol):
    """What enhance_scan needs of `Enhancer` (and of `SingleNetworkEnhancer` for old snapshots)."""

    resolution: tuple[int, int]
    device: torch.device
    data: dict[str, Any]

    def enhance(self, low_dose: torch.Tensor, fraction: Any, counts: Any, settings: SamplingSettings | None = ...,
                keep_samples: bool = ..., callback: Any = ...) -> PairEnhancement:
        """Enhance low-dose counts (B, 1, h, w) at the network resolution → full-dose counts."""


@dataclass(frozen=True)
class ScanEnhancement:
    """Outputs on the input's grid and in its units: mean, std (None for K < 2), regression (None: denoiser)."""

    mean: Scan
    std: Scan | None
    regression: Scan | None
    samples: torch.Tensor | None  # (K, N, 1, H, W) with keep_samples
    settings: SamplingSettings
    report: dict[str, Any] = field(default_factory=dict)  # units, K, grid, tiles, count levels, notes


def model_pixel_size(data: dict[str, Any]) -> tuple[float, float]:
    """(dy, dx) mm the networks were trained at: sidecar `data.pixel_size_mm` (a number or a pair), else 4 mm."""
    value = data.get("pixel_size_mm", DEFAULT_PIXEL_SIZE_MM)
    pair = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in pair):
        raise ValueError(f"sidecar data.pixel_size_mm: expected a positive number or (dy, dx) in mm, found {value!r}")
    return float(pair[0]), float(pair[1])


def _unit_levels(images: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
    """Per slice (N,) on the model grid: the Σ of one network input (the padded slice, or about one tile)."""
    h, w = images.shape[-2:]
    share = min(1.0, resolution[0] * resolution[1] / (h * w))
    return images.flatten(1).double().sum(dim=1) * share


def resolve_counts_per_unit(units: str, counts_per_unit: float | None, grid_images: torch.Tensor,
                            resolution: tuple[int, int], data: dict[str, Any], fraction: float
                            ) -> tuple[float, str]:
    """(K, how it was found): given; 1 for counts; else estimated from the training count range (see module doc)."""
    if counts_per_unit is not None:
        if not (isinstance(counts_per_unit, (int, float)) and math.isfinite(counts_per_unit) and counts_per_unit > 0):
            raise ValueError(f"counts_per_unit: expected a positive number, found {counts_per_unit!r}")
        return float(counts_per_unit), "given"
    if units in EXTENSIVE_UNITS:
        return 1.0, "counts"
    levels = _unit_levels(grid_images, resolution)
    levels = levels[levels > 0]
    counts = training_span(data.get("counts")) or (1e6, 1e6)
    target = math.sqrt(counts[0] * counts[1]) * fraction  # low-dose counts at the centre of the training range
    k = target / float(levels.median()) if len(levels) else 1.0
    warnings.warn(f"counts per unit: not given for a {units} scan; estimated K = {k:.4g} counts per {units} so the "
                  f"median slice holds {target:.3g} low-dose counts (the centre of the training range); pass "
                  "--counts-per-unit for a calibrated noise level", stacklevel=3)
    return k, "estimated"


class _TileRunner:
    """fn for sliding_window: tiles (B, C, h, w) of low-dose counts → [regression, sample 1..K] per tile."""

    def __init__(self, enhancer: EnhancerLike, settings: SamplingSettings, fraction: float,
                 projector: Projector | None, channels: int, progress: Callable[[int], None]):
        self.enhancer, self.settings, self.fraction = enhancer, settings, fraction
        self.projector, self.channels, self.progress = projector, channels, progress
        self.levels: list[float] = []
        self.warned: set[str] = set()

    def _level(self, tiles: torch.Tensor) -> torch.Tensor:
        """Low-dose count level of each tile: K·Σ s_j x_j with x already in counts."""
        if self.projector is None:
            return tiles.flatten(1).double().sum(dim=1).float()
        return count_level(tiles, self.projector)

    def __call__(self, tiles: torch.Tensor) -> torch.Tensor:
        low = tiles[:, :1]
        out = torch.zeros(tiles.shape[0], self.channels, *tiles.shape[-2:], dtype=tiles.dtype, device=tiles.device)
        live = low.flatten(1).amax(dim=1) > 0
        if bool(live.any()):
            x = low[live].contiguous()
            levels = self._level(x)
            self.levels += levels.tolist()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = self.enhancer.enhance(x, self.fraction, levels, self.settings, keep_samples=True)
            self._rewarn(caught)
            parts = [result.regression]
            if result.samples is not None:
                parts += list(result.samples)
            elif self.channels > 1:
                parts.append(result.mean)
            out[live] = torch.cat(parts, dim=1).to(out.device, out.dtype)
        self.progress(int(tiles.shape[0]))
        return out

    def _rewarn(self, caught: list[warnings.WarningMessage]) -> None:
        """Pass each kind of warning on once per scan (the networks warn per call, i.e. per batch of tiles)."""
        for w in caught:
            key = str(w.message).split(", found")[0]
            if key not in self.warned:
                self.warned.add(key)
                warnings.warn(str(w.message), w.category, stacklevel=2)


def _projector(resolution: tuple[int, int]) -> Projector | None:
    """The model-grid projector whose sensitivity weighs the count level (None for a non-square network)."""
    return Projector(resolution[0]) if resolution[0] == resolution[1] else None


def enhance_scan(enhancer: EnhancerLike, scan: Scan, settings: SamplingSettings, counts_per_unit: float | None = None,
                 pixel_size: tuple[float, float] | None = None, keep_samples: bool = False,
                 progress: Progress | None = None, overlap: float = OVERLAP) -> ScanEnhancement:
    """Enhance a low-dose scan on its own grid and in its own units (see the module docstring).

    `scan.fraction` (low / full dose) is required; `pixel_size` (dy, dx) mm overrides the scan's (arrays
    without geometry are taken to be on the model's pixel size unless it is given); `progress(done, total)` is
    called after each batch of tiles.
    """
    where = str(scan.source) if scan.source is not None else "scan"
    if scan.fraction is None:
        raise ValueError(f"{where}: expected the dose fraction of the scan (low / full, e.g. --fraction 0.25), "
                         "found none")
    fraction = check_fraction("fraction", scan.fraction)
    images = check_non_negative(where, scan.images.detach().cpu().float())
    notes: list[str] = []
    model_px = model_pixel_size(enhancer.data)
    if pixel_size is None:
        if scan.space is None and scan.kind in ("npy", "npz", "array"):
            pixel_size = model_px
            notes.append(f"{scan.kind} input without voxel size: taken to be on the model's pixel size "
                         f"{model_px[0]:g}×{model_px[1]:g} mm")
        else:
            pixel_size = scan.pixel_size
    n, _, h, w = images.shape
    grid = to_model_grid(images, pixel_size, model_px, scan.units)
    resolution = tuple(enhancer.resolution)
    k, k_source = resolve_counts_per_unit(scan.units, counts_per_unit, grid, resolution, enhancer.data, fraction)
    empty = [i for i in range(n) if not bool(images[i].amax() > 0)]
    if empty:
        notes.append(f"slice(s) {_ranges(empty)} are all zero: their outputs are 0 (not enhanced)")
    live = [i for i in range(n) if i not in set(empty)]
    per_slice = tile_count(tuple(grid.shape[-2:]), resolution, overlap)
    total = len(live) * per_slice
    done = 0

    def advance(tiles: int) -> None:
        nonlocal done
        done += tiles
        if progress is not None:
            progress(min(done, total), total)

    samples_k = settings.samples if settings.method != "mean" else 0
    channels = 1 + samples_k
    runner = _TileRunner(enhancer, settings, fraction, _projector(resolution), channels, advance)
    back = (fraction if scan.units not in EXTENSIVE_UNITS else 1.0) / k  # full-dose counts → input units
    regression, mean = torch.zeros_like(images), torch.zeros_like(images)
    std = torch.zeros_like(images) if samples_k >= 2 else None
    drawn = images.new_zeros((samples_k, *images.shape)) if keep_samples and samples_k else None
    low_counts = grid * k
    for start in range(0, len(live), SLICES_PER_CHUNK):
        rows = live[start:start + SLICES_PER_CHUNK]
        chunk = low_counts[rows].expand(-1, channels, -1, -1)
        blended = sliding_window(runner, chunk, resolution, overlap, "gaussian", TILES_PER_CALL)
        out = from_model_grid(blended, (h, w), scan.units) * back
        regression[rows] = out[:, :1]
        if not samples_k:
            mean[rows] = out[:, :1]
            continue
        chunk_samples = out[:, 1:].transpose(0, 1).unsqueeze(2)  # (K, B, 1, H, W)
        mean[rows] = chunk_samples.mean(dim=0)
        if std is not None:
            std[rows] = chunk_samples.std(dim=0, correction=1)
        if drawn is not None:
            drawn[:, rows] = chunk_samples
    report = {
        "units": scan.units,
        "fraction": fraction,
        "counts_per_unit": k,
        "counts_per_unit_source": k_source,
        "pixel_size_mm": list(pixel_size),
        "model_pixel_size_mm": list(model_px),
        "model_grid": list(grid.shape[-2:]),
        "network_resolution": list(resolution),
        "tiles_per_slice": per_slice,
        "tile_overlap": overlap if per_slice > 1 else None,
        "count_level": _summary(runner.levels),
        "empty_slices": empty,
        "notes": notes,
        "settings": settings.as_dict(),
    }
    is_denoiser = settings.method == "denoiser"
    return ScanEnhancement(
        mean=scan.with_images(mean),
        std=None if std is None else scan.with_images(std),
        regression=None if is_denoiser else scan.with_images(regression),
        samples=drawn if keep_samples else None,
        settings=settings,
        report=report,
    )


def _summary(values: list[float]) -> dict[str, float] | None:
    """min / median / max of the count levels the networks were told (None when nothing ran)."""
    if not values:
        return None
    t = torch.tensor(values, dtype=torch.float64)
    return {"min": float(t.min()), "median": float(t.median()), "max": float(t.max())}


def _ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] → '0-2, 5'."""
    parts, start = [], None
    for a, b in zip(indices, [*indices[1:], None]):
        start = a if start is None else start
        if b != a + 1:
            parts.append(f"{start}" if start == a else f"{start}-{a}")
            start = None
    return ", ".join(parts)
