"""The slab source of the scan simulator: whole-body, brain and label-field slabs drawn by a mix, with pixel sizes
drawn so that the field of view holds the anatomy when the caller does not fix them."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from petdiff.phantoms._random import resolve_generator
from petdiff.phantoms.body import body_slabs
from petdiff.phantoms.brain_slabs import brain_slabs
from petdiff.phantoms.label_fields import label_field_phantoms
from petdiff.phantoms.lesions import LesionConfig, insert_lesions
from petdiff.phantoms.slabs import Slabs, check_slab_arguments, concat_slabs, per_slab, slice_offsets

KINDS = ("body", "brain", "field")
# Fields of view (mm) users' grids hold (the project's notes on users' scans): a head 200–260, a body 350–600;
# pixel sizes are kept within 1.5–4.5 mm.
FIELD_OF_VIEW_MM = {"body": (350.0, 600.0), "brain": (200.0, 260.0), "field": (200.0, 600.0)}
PIXEL_RANGE_MM = (1.5, 4.5)


def _replicate_along_z(
    images: torch.Tensor, labels: torch.Tensor, offsets_mm: torch.Tensor, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, S, G, G) slabs from 2D (n, 1, G, G) images: slice i is the image slightly scaled, rotated and shifted in
    proportion to its offset from the centre (smooth, consistent change along z)."""
    n, s = images.shape[0], offsets_mm.shape[1]
    dev = images.device

    def rate(bound: float) -> torch.Tensor:
        return (2.0 * torch.rand((n, 1), generator=g, device=dev) - 1.0) * bound * offsets_mm.view(n, s)

    scale = torch.exp(rate(0.004))  # per mm
    angle = rate(0.003)  # rad per mm
    tx, ty = rate(0.002), rate(0.002)  # normalised units per mm
    c, si = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([c, -si, tx], -1), torch.stack([si, c, ty], -1)], -2).view(n * s, 2, 3)
    grid = F.affine_grid(theta, (n * s, 1, *images.shape[-2:]), align_corners=False)
    rep = images.repeat_interleave(s, 0)
    act = F.grid_sample(rep, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    lab = F.grid_sample(labels.repeat_interleave(s, 0).float(), grid, mode="nearest", align_corners=False)
    return act.view(n, s, *images.shape[-2:]).clamp_min(0.0), lab.view(n, s, *images.shape[-2:]).long()


def field_slabs(
    n: int,
    grid: int,
    pixel_size_mm: torch.Tensor,
    slice_mm: torch.Tensor,
    context: int,
    g: torch.Generator,
    lesions: LesionConfig | None = None,
) -> Slabs:
    """Label-field phantoms (piecewise-constant domain randomisation) replicated along z with small smooth changes."""
    ph = label_field_phantoms(n, grid, generator=g, device=pixel_size_mm.device)
    act, lab = _replicate_along_z(ph.activity, ph.labels, slice_offsets(context, slice_mm), g)
    slabs = Slabs.lesion_free(act, lab, ph.class_names, pixel_size_mm, slice_mm, "field")
    return insert_lesions(slabs, g, lesions)


def _pixel_sizes(kinds: torch.Tensor, grid: int, g: torch.Generator) -> torch.Tensor:
    """(n,) pixel sizes making each slab's field of view hold its anatomy, within PIXEL_RANGE_MM."""
    n = kinds.shape[0]
    t = torch.rand((n,), generator=g, device=kinds.device)
    lo = torch.tensor([FIELD_OF_VIEW_MM[k][0] for k in KINDS], device=kinds.device)[kinds]
    hi = torch.tensor([FIELD_OF_VIEW_MM[k][1] for k in KINDS], device=kinds.device)[kinds]
    return (lo * torch.exp(t * torch.log(hi / lo)) / grid).clamp(*PIXEL_RANGE_MM)


def scan_slabs(
    n: int,
    grid: int,
    pixel_size_mm: float | tuple[float, float] | torch.Tensor | None,
    slice_mm: float | tuple[float, float] | torch.Tensor,
    context: int,
    generator: torch.Generator | int | None = None,
    mix: tuple[float, float, float] = (0.5, 0.35, 0.15),
    device: torch.device | str = "cpu",
    lesions: LesionConfig | None = None,
) -> Slabs:
    """n slabs drawn by `mix` = shares of (body, brain, label-field) slabs, in a random order, SUV units.

    pixel_size_mm None: per slab, so that the field of view holds a body (350–600 mm) or a head (200–260 mm),
    clipped to 1.5–4.5 mm; else a number, a (lo, hi) range or an (n,) tensor, as for body_slabs.
    """
    check_slab_arguments(n, grid, context)
    if len(mix) != 3 or any(not (math.isfinite(m) and m >= 0) for m in mix) or sum(mix) <= 0:
        raise ValueError(f"mix: expected three shares >= 0 (body, brain, field) with a positive sum, found {mix!r}")
    device = torch.device(device)
    g = resolve_generator(generator, device)
    kinds = torch.multinomial(torch.tensor(mix, device=device, dtype=torch.float32), n, True, generator=g)
    if pixel_size_mm is None:
        pixel = _pixel_sizes(kinds, grid, g)
    else:
        pixel = per_slab("pixel_size_mm", pixel_size_mm, n, g, device)
    spacing = per_slab("slice_mm", slice_mm, n, g, device)
    parts, order = [], []
    makers = {"body": body_slabs, "brain": brain_slabs}
    for k, kind in enumerate(KINDS):
        idx = torch.nonzero(kinds == k).flatten()
        if not idx.numel():
            continue
        m = idx.numel()
        if kind == "field":
            parts.append(field_slabs(m, grid, pixel[idx], spacing[idx], context, g, lesions))
        else:
            parts.append(makers[kind](m, grid, pixel[idx], spacing[idx], context, g, device, lesions=lesions))
        order.append(idx)
    merged = concat_slabs(parts)
    inverse = torch.empty(n, dtype=torch.long, device=device)
    inverse[torch.cat(order)] = torch.arange(n, device=device)
    return merged.select(inverse)
