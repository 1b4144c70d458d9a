"""Test scans for evaluation: phantoms (procedural or a file) → full-dose Poisson sinograms → thinned low doses.

The truth is kept in full-dose count units t·λ (t = counts / Σ Aλ per slice), the units of a full-dose MLEM
image (MLEM preserves counts and the projector's columns sum to 1), so every image here is comparable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from petdiff.data.sources import FileSource
from petdiff.evaluate.regions import BRAINWEB_REGION_NAMES, brainweb_regions, procedural_regions
from petdiff.phantoms import procedural_phantoms
from petdiff.physics import Projector, expected_sinogram, thin
from petdiff.utils.validation import check_fraction

# a BrainWeb-format slice has a handful of tissue levels; more distinct values than this means a continuous image
MAX_TISSUE_LEVELS = 64


@dataclass
class Phantoms:
    """Test phantoms: activity (N,1,H,W), region labels + names for region metrics, slice ids, source name."""

    activity: torch.Tensor
    regions: torch.Tensor | None
    region_names: tuple[str, ...]
    indices: list[int]
    source: str


@dataclass
class Scans:
    """Simulated scans of the phantoms: truth in full-dose units, full-dose and noiseless sinograms, low doses."""

    truth: torch.Tensor  # (B, 1, H, W) t·λ
    full: torch.Tensor  # (B, n_angles, n_bins) full-dose counts
    expected: torch.Tensor  # (B, n_angles, n_bins) noiseless full-dose means t·Aλ
    low: dict[float, torch.Tensor]  # fraction → thinned counts
    counts: float


def select_indices(n_total: int, n_slices: int | None = None, slices: tuple[int, int] | None = None) -> list[int]:
    """Slice ids: the inclusive range `slices` = (a, b) if given, then n_slices evenly spaced ones (None = all)."""
    ids = list(range(n_total))
    if slices is not None:
        a, b = slices
        if not (0 <= a <= b < n_total):
            raise ValueError(f"slices: expected a range a-b with 0 ≤ a ≤ b < {n_total}, found {a}-{b}")
        ids = ids[a : b + 1]
    if n_slices is not None:
        if n_slices < 1:
            raise ValueError(f"n_slices: expected a positive number of slices, found {n_slices}")
        if n_slices < len(ids):
            step = len(ids) / n_slices
            ids = [ids[int((i + 0.5) * step)] for i in range(n_slices)]
    return ids


def load_phantoms(
    spec: str | os.PathLike,
    resolution: int,
    n_slices: int | None = None,
    slices: tuple[int, int] | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Phantoms:
    """'procedural' → n_slices (default 32) seeded procedural phantoms; a path → its non-empty slices (all by default).

    BrainWeb-format files (few distinct levels) get grey/white-matter regions (see evaluate.regions);
    procedural phantoms their named classes; other images no regions.
    """
    if str(spec) == "procedural":
        n = 32 if n_slices is None else n_slices
        if slices is not None:
            n = slices[1] + 1
        generator = torch.Generator(device).manual_seed(seed)
        ph = procedural_phantoms(n, resolution, generator=generator, device=device)
        ids = select_indices(n, n_slices, slices)
        regions, names = procedural_regions(ph.labels[ids], ph.class_names)
        return Phantoms(ph.activity[ids], regions, names, ids, "procedural")
    source = FileSource(spec, resolution)
    ids = select_indices(len(source), n_slices, slices)  # ids count the file's non-empty slices
    activity = source.activity[ids].to(device=device, dtype=torch.float32)
    if torch.unique(activity).numel() <= MAX_TISSUE_LEVELS:
        return Phantoms(activity, brainweb_regions(activity), BRAINWEB_REGION_NAMES, ids, str(spec))
    return Phantoms(activity, None, ("other",), ids, str(spec))


def simulate_scans(
    activity: torch.Tensor,
    projector: Projector,
    counts: float,
    fractions: tuple[float, ...],
    generator: torch.Generator | None = None,
) -> Scans:
    """Y ~ Poisson(t·Aλ) with Σ t·Aλ = counts per slice, then Binomial(Y, f) for every f (the same scan, thinned)."""
    fractions = tuple(check_fraction("fraction", f) for f in fractions)
    expected = expected_sinogram(activity, projector, counts)
    full = torch.poisson(expected.total, generator=generator)
    truth = activity * expected.scale.to(activity.dtype).view(-1, 1, 1, 1)
    low = {f: thin(full, f, generator) for f in fractions}
    return Scans(truth, full, expected.total, low, float(counts))

