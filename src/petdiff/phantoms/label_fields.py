"""Random piecewise-constant head phantoms ("label fields"): domain randomisation for the denoising prior.

Real BrainWeb-like slices are piecewise constant with 3–8 activity levels per slice, values ordered
differently from slice to slice, jagged (nearest-neighbour) tissue boundaries, outer rings (scalp, skull),
and slices from the vertex down to the orbits and the neck. Hand-drawn anatomy covers only part of that, so
this generator draws the *statistics* instead of one anatomy:

1. a head: an ellipse with a smooth random boundary (radial harmonics), rotated and shifted;
2. zero to two outer rings of random thickness (scalp- and skull-like), each its own class;
3. an interior partition into K classes: label = argmax_k (g_k + b_k) over K Gaussian random fields g_k,
   each with its own correlation length (log-uniform, 0.5–8 pixels), so one slice mixes large smooth
   regions with speckled, folded ones;
4. a random level per class (integers on BrainWeb's 1–12 scale, or continuous; some classes cold), with
   a few hot or cold round lesions;
5. sampling at pixel centres of a finer grid (hard, jagged edges) or, for a share of phantoms, area
   averaging (partial-volume edges).

Everything is vectorised in torch and reproducible from a seed or generator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from petdiff.phantoms._random import resolve_generator
from petdiff.phantoms.procedural import Phantoms

MAX_CLASSES = 12  # interior classes at most; class indices: 0 background, 1-2 rings, 3.. interior, then lesions
_RING_CLASSES = 2
FOV_RADIUS = 0.98  # in units of the half field of view
FIELD_CLASS_NAMES: tuple[str, ...] = (
    "background",
    "outer_ring",
    "inner_ring",
    *(f"region_{k}" for k in range(MAX_CLASSES)),
    "hot_lesion",
    "cold_lesion",
)


def _uniform(g: torch.Generator, shape: tuple[int, ...], lo: float, hi: float, device: torch.device) -> torch.Tensor:
    """U(lo, hi) of the given shape."""
    return lo + (hi - lo) * torch.rand(shape, generator=g, device=device)


def gaussian_random_fields(
    n: int, k: int, size: int, correlation: torch.Tensor, g: torch.Generator, device: torch.device
) -> torch.Tensor:
    """(n, k, size, size) unit-variance Gaussian random fields, field (i, j) smoothed with a Gaussian of std
    `correlation[i, j]` pixels (white noise filtered in the Fourier domain, periodic)."""
    noise = torch.randn((n, k, size, size), generator=g, device=device)
    fy = torch.fft.fftfreq(size, device=device).view(1, 1, size, 1)
    fx = torch.fft.rfftfreq(size, device=device).view(1, 1, 1, size // 2 + 1)
    ell = correlation.view(n, k, 1, 1)
    transfer = torch.exp(-2.0 * math.pi**2 * ell**2 * (fx**2 + fy**2))
    field = torch.fft.irfft2(torch.fft.rfft2(noise) * transfer, s=(size, size))
    field = field - field.mean(dim=(-2, -1), keepdim=True)
    return field / field.std(dim=(-2, -1), keepdim=True).clamp_min(1e-8)


def _head_depth(n: int, fine: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n, fine, fine) normalised radial depth 1 − ρ/ρ_boundary(θ) of a randomly shaped head (> 0 inside)."""
    coords = (torch.arange(fine, device=device, dtype=torch.float32) + 0.5) / fine * 2.0 - 1.0
    y, x = -coords.view(1, fine, 1), coords.view(1, 1, fine)  # row 0 at y = +1, column 0 at x = −1
    angle = _uniform(g, (n, 1, 1), -0.35, 0.35, device)
    cx, cy = _uniform(g, (n, 1, 1), -0.08, 0.08, device), _uniform(g, (n, 1, 1), -0.08, 0.08, device)
    a = _uniform(g, (n, 1, 1), 0.40, 0.72, device)
    b = (a * _uniform(g, (n, 1, 1), 1.0, 1.4, device)).clamp_max(0.9)
    c, s = torch.cos(angle), torch.sin(angle)
    du, dv = x - cx, y - cy
    p, q = c * du + s * dv, -s * du + c * dv
    theta = torch.atan2(q, p)
    rho = torch.sqrt((p / a) ** 2 + (q / b) ** 2 + 1e-12)
    harmonics = torch.arange(2, 7, device=device, dtype=torch.float32).view(1, 1, 1, -1)
    amp = _uniform(g, (n, 1, 1, 5), 0.0, 0.05, device) / (harmonics - 1.0)
    phase = _uniform(g, (n, 1, 1, 5), 0.0, 2 * math.pi, device)
    boundary = 1.0 + (amp * torch.cos(harmonics * theta.unsqueeze(-1) + phase)).sum(dim=-1)
    # The scanner sees the unit disc from every angle: nothing may lie outside radius FOV_RADIUS.
    inside_fov = (x**2 + y**2).sqrt() < FOV_RADIUS
    return torch.where(inside_fov, 1.0 - rho / boundary, torch.full_like(rho, -1.0))


def _class_levels(n: int, n_interior: torch.Tensor, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n, n_classes) activity per class: BrainWeb-scale levels in random order, some cold, lesions relative."""
    n_classes = len(FIELD_CLASS_NAMES)
    top = _uniform(g, (n, 1), 3.0, 12.0, device)
    levels = _uniform(g, (n, n_classes), 0.0, 1.0, device) * (top - 0.5) + 0.5
    integer = torch.rand((n, 1), generator=g, device=device) < 0.5
    levels = torch.where(integer, levels.round().clamp_min(1.0), levels)
    cold = torch.rand((n, n_classes), generator=g, device=device) < 0.12
    levels = torch.where(cold, torch.zeros_like(levels), levels)
    levels[:, 0] = 0.0
    present = torch.arange(MAX_CLASSES, device=device).view(1, -1) < n_interior.view(-1, 1)
    interior = slice(1 + _RING_CLASSES, 1 + _RING_CLASSES + MAX_CLASSES)
    levels[:, interior] = torch.where(present, levels[:, interior], torch.zeros_like(levels[:, interior]))
    # Every class may come out cold, but not all of them: the first interior class then takes the top level.
    all_cold = levels[:, interior].amax(dim=1) == 0
    levels[:, interior.start] = torch.where(all_cold, top.squeeze(1).round(), levels[:, interior.start])
    brain_max = levels[:, interior].amax(dim=1).clamp_min(1.0)
    levels[:, -2] = brain_max * _uniform(g, (n,), 1.2, 1.8, device)  # hot lesion
    levels[:, -1] = brain_max * _uniform(g, (n,), 0.0, 0.3, device)  # cold lesion
    return levels


def label_field_phantoms(
    n: int,
    resolution: int = 64,
    generator: torch.Generator | int | None = None,
    classes: tuple[int, int] = (2, 7),
    supersample: int = 2,
    partial_volume: float = 0.3,
    device: torch.device | str | None = None,
) -> Phantoms:
    """n random piecewise-constant head phantoms (see the module docstring), (N, 1, H, W) at `resolution`.

    `classes` is the (min, max) number of interior classes (plus up to two rings and lesions: 3–8 distinct
    levels per slice for the default); `partial_volume` is the share of phantoms rendered with area-averaged
    edges instead of pixel-centre sampling. `levels` of the result is NaN (no axial level).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive int, found {n!r}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or not 16 <= resolution <= 1024:
        raise ValueError(f"resolution: expected an int in [16, 1024], found {resolution!r}")
    lo, hi = (int(c) for c in classes)
    if not 1 <= lo <= hi <= MAX_CLASSES:
        raise ValueError(f"classes: expected 1 <= min <= max <= {MAX_CLASSES}, found {classes!r}")
    if isinstance(supersample, bool) or not isinstance(supersample, int) or not 1 <= supersample <= 8:
        raise ValueError(f"supersample: expected an int in [1, 8], found {supersample!r}")
    if not 0.0 <= float(partial_volume) <= 1.0:
        raise ValueError(f"partial_volume: expected a probability in [0, 1], found {partial_volume!r}")
    if device is None:
        device = generator.device if isinstance(generator, torch.Generator) else torch.device("cpu")
    device = torch.device(device)
    g = resolve_generator(generator, device)
    fine = resolution * supersample
    px = 2.0 / resolution  # one output pixel in normalised units

    depth = _head_depth(n, fine, g, device)
    head_radius_px = 0.5 / px  # depth 1 is the centre; ≈ half the head width in pixels
    ring_width = _uniform(g, (n, _RING_CLASSES, 1, 1), 0.6, 2.2, device) / head_radius_px
    ring_on = torch.rand((n, _RING_CLASSES, 1, 1), generator=g, device=device) < 0.75
    ring_width = ring_width * ring_on
    outer_edge, inner_edge = ring_width[:, 0], ring_width[:, 0] + ring_width[:, 1]

    n_interior = torch.randint(lo, hi + 1, (n,), generator=g, device=device)
    correlation = torch.exp(_uniform(g, (n, hi), math.log(0.5), math.log(8.0), device)) * supersample
    fields = gaussian_random_fields(n, hi, fine, correlation, g, device)
    bias = _uniform(g, (n, hi, 1, 1), -0.8, 0.8, device)
    absent = torch.arange(hi, device=device).view(1, -1, 1, 1) >= n_interior.view(-1, 1, 1, 1)
    score = (fields + bias).masked_fill(absent, -math.inf)
    interior = score.argmax(dim=1) + 1 + _RING_CLASSES

    labels = torch.zeros((n, fine, fine), dtype=torch.long, device=device)
    labels = torch.where(depth > 0, torch.full_like(labels, 1), labels)
    labels = torch.where(depth > outer_edge, torch.full_like(labels, 2), labels)
    labels = torch.where(depth > inner_edge, interior, labels)

    # Round lesions inside the interior: up to two hot and one cold.
    coords = (torch.arange(fine, device=device, dtype=torch.float32) + 0.5) / fine * 2.0 - 1.0
    yy, xx = -coords.view(1, fine, 1), coords.view(1, 1, fine)
    for cls, count in ((len(FIELD_CLASS_NAMES) - 2, 2), (len(FIELD_CLASS_NAMES) - 1, 1)):
        for _ in range(count):
            on = torch.rand((n, 1, 1), generator=g, device=device) < 0.3
            cx, cy = _uniform(g, (n, 1, 1), -0.4, 0.4, device), _uniform(g, (n, 1, 1), -0.4, 0.4, device)
            radius = _uniform(g, (n, 1, 1), 0.8, 3.5, device) * px
            inside = ((xx - cx) ** 2 + (yy - cy) ** 2 < radius**2) & on & (labels > _RING_CLASSES)
            labels = torch.where(inside, torch.full_like(labels, cls), labels)

    levels = _class_levels(n, n_interior, g, device)
    fine_activity = torch.gather(levels, 1, labels.flatten(1)).view(n, 1, fine, fine)
    centre = supersample // 2
    sampled_labels = labels[:, centre::supersample, centre::supersample].unsqueeze(1)
    sampled = torch.gather(levels, 1, sampled_labels.flatten(1)).view(n, 1, resolution, resolution)
    averaged = F.avg_pool2d(fine_activity, supersample) if supersample > 1 else sampled
    smooth_edges = torch.rand((n, 1, 1, 1), generator=g, device=device) < float(partial_volume)
    activity = torch.where(smooth_edges, averaged, sampled)
    # A phantom whose only warm classes missed every pixel would have no counts: give its head one level.
    empty = (activity.flatten(1).sum(dim=1) == 0).view(-1, 1, 1, 1)
    activity = torch.where(empty & (sampled_labels > 0), torch.ones_like(activity), activity)
    return Phantoms(
        activity=activity.float(),
        labels=sampled_labels,
        concentrations=levels.float(),
        class_names=FIELD_CLASS_NAMES,
        levels=torch.full((n,), float("nan"), device=device),
    )
