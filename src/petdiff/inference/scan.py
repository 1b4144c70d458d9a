"""`enhance_scan`: a `Scan` in its own units, grid and size → enhanced `Scan`s on the same grid, in the same units.

The one typed boundary between a user's scan and the networks (which see LOW-DOSE COUNTS PER PIXEL at the
model's pixel size, `ModelSpec`):

1. Units. The networks see counts: x = K·img with K counts per unit of the input. Counts inputs have K = 1
   (or the given K); Bq/mL and SUV need K from the user (`counts_per_unit`), else K is estimated: by the
   model's count-level network when it has one (K̂ = median over slices of ρ̂/ρ_units), else so that the
   median non-empty slice sits at the geometric centre of the dose levels seen in training at the scan's
   fraction (a warning says so). The networks' output o is in full-dose counts; it goes back to the input's
   units as o/K for counts (full dose, as the docs define it) and o·f/K for concentrations (a concentration
   does not change with the dose). One K and one f per volume: no per-slice renormalisation.
2. Grid. Each slice is resampled to the model's pixel size (`grid.to_model_grid`: counts keep their slice
   totals, concentrations their values) — the fixed one of old models, the input's own (clipped to the trained
   range) for scan models — and back to the input's (H, W) afterwards, so the outputs keep the input's shape,
   affine, orientation and header (`Scan.with_images`).
3. The volume runs through `volume.enhance_volume` (slices with their 2.5D context, streamed in slabs, whole or
   tiled); samples are mapped back to the input's grid and units before the posterior statistics, so the std
   is that of the estimate the user gets. All-zero slices are not enhanced: their outputs are 0 (a note).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from petdiff.inference.enhancers import Enhancer
from petdiff.inference.grid import EXTENSIVE_UNITS, from_model_grid, to_model_grid
from petdiff.inference.posterior import SampleCallback
from petdiff.inference.settings import SamplingSettings
from petdiff.inference.tiling import object_tiles
from petdiff.inference.volume import MAX_PIXELS, Progress, context_stack, enhance_volume, network_tile
from petdiff.io import Scan
from petdiff.utils.validation import check_fraction, check_non_negative


@dataclass(frozen=True)
class ScanEnhancement:
    """Outputs on the input's grid and in its units: mean, std (None for K < 2), regression (None: denoiser)."""

    mean: Scan
    std: Scan | None
    regression: Scan | None
    samples: torch.Tensor | None  # (K, N, 1, H, W) in the input's units, with keep_samples
    settings: SamplingSettings
    report: dict[str, Any] = field(default_factory=dict)  # units, K, grid, tiles, dose levels, notes


def _representative(grid: torch.Tensor, tile: tuple[int, int], k: int) -> torch.Tensor:
    """One network input per slice: its context stack, centre-cropped / zero-padded to the tile (N, 2k+1, th, tw)."""
    stack = context_stack(grid, range(grid.shape[0]), k)
    pad_h, pad_w = max(0, tile[0] - stack.shape[-2]), max(0, tile[1] - stack.shape[-1])
    stack = F.pad(stack, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
    top, left = (stack.shape[-2] - tile[0]) // 2, (stack.shape[-1] - tile[1]) // 2
    return stack[:, :, top:top + tile[0], left:left + tile[1]]


def resolve_counts_per_unit(enhancer: Enhancer, units: str, counts_per_unit: float | None, grid: torch.Tensor,
                            tile: tuple[int, int], fraction: float) -> tuple[float, str]:
    """(K, how it was found): given; 1 for counts; else estimated (see the module docstring)."""
    if counts_per_unit is not None:
        if not (isinstance(counts_per_unit, (int, float)) and math.isfinite(counts_per_unit) and counts_per_unit > 0):
            raise ValueError(f"counts_per_unit: expected a positive number, found {counts_per_unit!r}")
        return float(counts_per_unit), "given"
    if units in EXTENSIVE_UNITS:
        return 1.0, "counts"
    k = enhancer.spec.context
    inputs = _representative(grid, tile, k)
    inputs = inputs[inputs[:, k].flatten(1).amax(dim=1) > 0]
    if not len(inputs):
        return 1.0, "estimated"
    # The count-level network reads training-sized tiles of the object (every slice's), the median over all of them.
    tiles = torch.cat(object_tiles(context_stack(grid, range(grid.shape[0]), k), enhancer.spec.resolution))
    estimate = enhancer.estimate_counts_per_unit(tiles, fraction) if len(tiles) else None
    if estimate is not None:
        warnings.warn(f"counts per unit: not given for a {units} scan; estimated K = {estimate:.4g} counts per {units} "
                      "by the model's count-level network; pass --counts-per-unit for a calibrated noise level",
                      stacklevel=3)
        return estimate, "estimated by the count-level network"
    span = enhancer.spec.dose_level_range(fraction) or (1e5, 1e5)
    target = math.sqrt(span[0] * span[1])
    levels = enhancer.dose_level(inputs[:, k:k + 1].to(enhancer.device)).cpu().double()
    k_units = target / float(levels.median())
    warnings.warn(f"counts per unit: not given for a {units} scan; estimated K = {k_units:.4g} counts per {units} so "
                  f"the median slice is told the dose level {target:.3g} (the centre of the training range); pass "
                  "--counts-per-unit for a calibrated noise level", stacklevel=3)
    return k_units, "estimated"


def _pixel_sizes(enhancer: Enhancer, scan: Scan, pixel_size: tuple[float, float] | None, notes: list[str]
                 ) -> tuple[tuple[float, float], tuple[float, float]]:
    """(the input's pixel size, the model's pixel size for it), with notes on assumptions and clipping."""
    spec = enhancer.spec
    if pixel_size is None:
        if scan.space is None and scan.kind in ("npy", "npz", "array"):
            pixel_size = spec.pixel_size or spec.model_pixel_size(scan.pixel_size)
            notes.append(f"{scan.kind} input without voxel size: taken to be on the model's pixel size "
                         f"{pixel_size[0]:g}×{pixel_size[1]:g} mm")
        else:
            pixel_size = scan.pixel_size
    pixel_size = (float(pixel_size[0]), float(pixel_size[1]))
    model_px = spec.model_pixel_size(pixel_size)
    if spec.native and model_px != pixel_size:
        notes.append(f"pixel size {pixel_size[0]:g}×{pixel_size[1]:g} mm is outside the trained range "
                     f"{spec.pixel_size_range[0]:g}–{spec.pixel_size_range[1]:g} mm: resampled to "
                     f"{model_px[0]:g}×{model_px[1]:g} mm")
    return pixel_size, model_px


def enhance_scan(enhancer: Enhancer, scan: Scan, settings: SamplingSettings, counts_per_unit: float | None = None,
                 pixel_size: tuple[float, float] | None = None, keep_samples: bool = False,
                 progress: Progress | None = None, callback: SampleCallback | None = None,
                 max_pixels: int = MAX_PIXELS) -> ScanEnhancement:
    """Enhance a low-dose scan on its own grid and in its own units (see the module docstring).

    `scan.fraction` (low / full dose) is required; `pixel_size` (dy, dx) mm overrides the scan's (arrays
    without geometry are taken to be on the model's pixel size unless it is given); `progress(done, total)` is
    called after each batch of network inputs; `callback(k, slices, sample)` sees each posterior sample (input grid
    and units, a slab of slices at a time) without storing them; `keep_samples` keeps them all.
    """
    where = str(scan.source) if scan.source is not None else "scan"
    if scan.fraction is None:
        raise ValueError(f"{where}: expected the dose fraction of the scan (low / full, e.g. --fraction 0.25), "
                         "found none")
    fraction = check_fraction("fraction", scan.fraction)
    images = check_non_negative(where, scan.images.detach().cpu().float())
    notes: list[str] = []
    pixel_size, model_px = _pixel_sizes(enhancer, scan, pixel_size, notes)
    h, w = images.shape[-2:]
    grid = to_model_grid(images, pixel_size, model_px, scan.units)
    spec = enhancer.spec
    tile, _ = network_tile(spec.resolution, spec.whole_slices, spec.size_multiple, tuple(grid.shape[-2:]), max_pixels)
    k, k_source = resolve_counts_per_unit(enhancer, scan.units, counts_per_unit, grid, tile, fraction)
    back = (fraction if scan.units not in EXTENSIVE_UNITS else 1.0) / k  # full-dose counts → input units

    def to_input(x: torch.Tensor) -> torch.Tensor:
        """Model grid, full-dose counts → the input's grid and units."""
        return from_model_grid(x, (h, w), scan.units) * back

    low_counts = grid * k if k != 1 else grid
    result = enhance_volume(enhancer, low_counts, fraction, settings, to_output=to_input, keep_samples=keep_samples,
                            callback=callback, progress=progress, max_pixels=max_pixels)
    if result.empty:
        notes.append(f"slice(s) {_ranges(list(result.empty))} are all zero: their outputs are 0 (not enhanced)")
    report = {
        "units": scan.units,
        "fraction": fraction,
        "counts_per_unit": k,
        "counts_per_unit_source": k_source,
        "pixel_size_mm": list(pixel_size),
        "model_pixel_size_mm": list(model_px),
        "model_grid": list(grid.shape[-2:]),
        "network_input": list(result.tile),
        "tiles_per_slice": result.tiles_per_slice,
        "tile_overlap": result.overlap,
        "context": spec.context,
        "dose_level": _summary(result.levels, spec.dose_label),
        "empty_slices": list(result.empty),
        "notes": notes,
        "settings": settings.as_dict(),
    }
    return ScanEnhancement(
        mean=scan.with_images(result.mean),
        std=None if result.std is None else scan.with_images(result.std),
        regression=None if result.regression is None else scan.with_images(result.regression),
        samples=result.samples,
        settings=settings,
        report=report,
    )


def _summary(values: torch.Tensor, kind: str) -> dict[str, Any] | None:
    """Kind and min / median / max of the dose levels the networks were told (None when nothing ran)."""
    if not len(values):
        return None
    t = values.double()
    return {"kind": kind, "min": float(t.min()), "median": float(t.median()), "max": float(t.max())}


def _ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] → '0-2, 5'."""
    parts, start = [], None
    for a, b in zip(indices, [*indices[1:], None]):
        start = a if start is None else start
        if b != a + 1:
            parts.append(f"{start}" if start == a else f"{start}-{a}")
            start = None
    return ", ".join(parts)
