"""Brain slabs: the procedural brain (`procedural`) evaluated at 2k+1 nearby axial levels in millimetres, its hard
tissue map partial-volumed (an in-plane Gaussian of the pixel box and a sub-millimetre tissue blur), a mild
smooth texture, FDG / amyloid-like / striatum-only activities in SUV, and lesions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from petdiff.phantoms import procedural as pr
from petdiff.phantoms import solids as so
from petdiff.phantoms._random import resolve_generator
from petdiff.phantoms.config import (
    CEREBELLUM,
    CLASS_NAMES,
    CSF,
    DEEP_GREY,
    GREY,
    SCALP,
    SKULL,
    WHITE,
    PhantomConfig,
)
from petdiff.phantoms.lesions import LesionConfig, insert_lesions
from petdiff.phantoms.slabs import Slabs, check_slab_arguments, per_slab, pixel_coordinates, slice_offsets

TRACERS = ("fdg", "amyloid", "striatal")
_CHUNK_PIXELS = 2**20  # slices × pixels rendered at once
_PIXEL_BOX_SIGMA = 0.29  # std of a one-pixel box, in pixels


def _u(g: torch.Generator, n: int, lo: float, hi: float, device: torch.device) -> torch.Tensor:
    """U(lo, hi) of shape (n,)."""
    return lo + (hi - lo) * torch.rand((n,), generator=g, device=device)


def brain_suv(tracer: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """(n, K) class activities in SUV for tracer indices into TRACERS (0 FDG, 1 amyloid-like, 2 striatum-only).

    FDG: grey 7–12, white 2.5–4, CSF 0.5–1 (the project's table of users' scans); amyloid-like: white matter
    hotter than grey; striatum-only (dopamine transporter / DOPA-like): deep grey nuclei 3–8, the rest ≈ 1.
    """
    n, dev = tracer.shape[0], tracer.device
    conc = torch.zeros((n, len(CLASS_NAMES)), device=dev)

    def u(lo: float, hi: float) -> torch.Tensor:
        return _u(g, n, lo, hi, dev)

    grey = u(7.0, 12.0)
    fdg = {WHITE: u(2.5, 4.0), CSF: u(0.5, 1.0), SCALP: u(0.5, 1.5), SKULL: u(0.1, 0.4)}
    fdg.update({GREY: grey, DEEP_GREY: grey * u(0.8, 1.05), CEREBELLUM: grey * u(0.7, 0.95)})
    white = u(2.0, 3.5)
    amyloid = {WHITE: white, GREY: white * u(0.55, 0.85), DEEP_GREY: white * u(0.8, 1.0)}
    amyloid.update({CEREBELLUM: white * u(0.5, 0.7), CSF: u(0.3, 0.7), SCALP: u(0.5, 1.2), SKULL: u(0.2, 0.6)})
    striatal = {DEEP_GREY: u(3.0, 8.0), GREY: u(0.8, 1.5), WHITE: u(0.6, 1.2), CEREBELLUM: u(0.8, 1.4)}
    striatal.update({CSF: u(0.2, 0.6), SCALP: u(0.3, 1.0), SKULL: u(0.1, 0.4)})
    for k, model in enumerate((fdg, amyloid, striatal)):
        for cls, value in model.items():
            conc[:, cls] = torch.where(tracer == k, value, conc[:, cls])
    return conc


def _blur(images: torch.Tensor, sigma_px: torch.Tensor) -> torch.Tensor:
    """In-plane Gaussian blur of (n, S, G, G) with one std (pixels) per slab, zero padding."""
    n, s, h, w = images.shape
    half = max(1, math.ceil(3.0 * float(sigma_px.max())))
    t = torch.arange(-half, half + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-0.5 * (t[None, :] / sigma_px[:, None]) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(s, 0)
    x = images.reshape(1, n * s, h, w)
    x = F.conv2d(x, kernel.view(n * s, 1, 1, -1), padding=(0, half), groups=n * s)
    x = F.conv2d(x, kernel.view(n * s, 1, -1, 1), padding=(half, 0), groups=n * s)
    return x.view(n, s, h, w)


def _levels(p: dict[str, torch.Tensor], offsets_mm: torch.Tensor, height_mm: torch.Tensor) -> torch.Tensor:
    """(n, S) axial levels of the slab's slices: the centre level plus offset / brain height, in [0, 1]."""
    centre = p["level"].clamp(0.02, 0.98)
    return (centre[:, None] + offsets_mm.flatten(1) / height_mm[:, None]).clamp(0.0, 1.0)


def brain_slabs(
    n: int,
    grid: int,
    pixel_size_mm: float | tuple[float, float] | torch.Tensor,
    slice_mm: float | tuple[float, float] | torch.Tensor,
    context: int,
    generator: torch.Generator | int | None = None,
    device: torch.device | str = "cpu",
    tracers: tuple[float, float, float] = (0.8, 0.1, 0.1),
    lesions: LesionConfig | None = None,
) -> Slabs:
    """n brain slabs of 2·context+1 slices on a grid×grid image, activity in SUV (head 140–200 mm wide).

    tracers: the shares of FDG, amyloid-like (white > grey) and striatum-only activity maps. Slices lie at the
    slab's level ± i·slice_mm over a brain 110–135 mm high, so neighbouring slices are real z-context. A field of
    view smaller than the head shows a random part of it.
    """
    check_slab_arguments(n, grid, context)
    if len(tracers) != 3 or any(not (math.isfinite(t) and t >= 0) for t in tracers) or sum(tracers) <= 0:
        raise ValueError(
            f"tracers: expected three shares >= 0 (fdg, amyloid, striatal) with a positive sum, found {tracers!r}"
        )
    device = torch.device(device)
    g = resolve_generator(generator, device)
    pixel = per_slab("pixel_size_mm", pixel_size_mm, n, g, device)
    spacing = per_slab("slice_mm", slice_mm, n, g, device)
    p = pr._draw_parameters(n, PhantomConfig(), g, device)
    p["lesion_on"] = torch.zeros_like(p["lesion_on"])
    unit = _u(g, n, 105.0, 128.0, device)  # mm per normalised unit: the head is ≈ 1.3 × 1.6 units
    height = _u(g, n, 110.0, 135.0, device)  # skull base to vertex
    fov_half = grid * pixel / 2
    for axis, extent in (("shift_x", 0.68), ("shift_y", 0.82)):
        room = (extent * unit - fov_half).clamp_min(0.0) / unit
        p[axis] = p[axis] + room * _u(g, n, -1.0, 1.0, device)
    tracer = torch.multinomial(torch.tensor(tracers, device=device), n, replacement=True, generator=g)
    conc = brain_suv(tracer, g)
    blur_mm = _u(g, n, 0.4, 1.2, device)
    waves = so.draw_waves(n, 8, (20.0, 80.0), g, device)
    texture_amp = _u(g, n, 0.02, 0.06, device)

    s = 2 * context + 1
    offsets = slice_offsets(context, spacing)
    levels = _levels(p, offsets, height)
    x, y = pixel_coordinates(grid, pixel)
    labels = torch.empty((n, s, grid, grid), dtype=torch.int64, device=device)
    chunk = max(1, _CHUNK_PIXELS // (s * grid * grid))
    for start in range(0, n, chunk):
        part = slice(start, min(n, start + chunk))
        sub = {k: t[part].repeat_interleave(s, 0) for k, t in p.items()}
        sub["level"] = levels[part].flatten()
        xs = (x[part] / unit[part].view(-1, 1, 1, 1)).expand(-1, s, -1, -1).reshape(-1, grid, grid)
        ys = (y[part] / unit[part].view(-1, 1, 1, 1)).expand(-1, s, -1, -1).reshape(-1, grid, grid)
        labels[part] = pr._render_labels(sub, xs, ys).view(-1, s, grid, grid)
    activity = conc.gather(1, labels.flatten(1)).view(n, s, grid, grid)
    sigma = torch.sqrt(_PIXEL_BOX_SIGMA**2 + (blur_mm / pixel) ** 2)
    activity = _blur(activity, sigma)
    field = so.smooth_field(x, y, offsets, waves)
    activity = (activity * (1.0 + texture_amp.view(-1, 1, 1, 1) * field)).clamp_min(0.0)
    slabs = Slabs.lesion_free(activity, labels, CLASS_NAMES, pixel, spacing, "brain")
    return insert_lesions(slabs, g, lesions)
