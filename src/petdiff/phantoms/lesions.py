"""Lesions inserted into slabs: 3D ellipsoids of 3–30 mm, hot (1.5–10× the local background) or cold (0–0.5×),
centred in any tissue (each tissue class of the centre slice equally likely) and often next to a hotter organ,
with soft partial-volume edges, kept inside the body (never in air), and a lesion label volume for
contrast-recovery and SUVmax evaluation."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from petdiff.phantoms import solids as so
from petdiff.phantoms._random import resolve_generator
from petdiff.phantoms.slabs import EDGE, Slabs, Window

_MIN_BACKGROUND = 0.05  # SUV: no lesion is centred in air (its background would be ~0)


@dataclass(frozen=True)
class LesionConfig:
    """Ranges of the inserted lesions: count per slab (lo, hi), volume-equivalent diameter (mm, log-uniform),
    share of hot lesions, hot and cold activity ratios to the local background, and the share centred next to
    a hotter structure."""

    count: tuple[int, int] = (0, 3)
    diameter_mm: tuple[float, float] = (3.0, 30.0)
    hot_fraction: float = 0.75
    hot_ratio: tuple[float, float] = (1.5, 10.0)
    cold_ratio: tuple[float, float] = (0.0, 0.5)
    near_hot: float = 0.3

    def __post_init__(self) -> None:
        lo, hi = self.count
        if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi <= 32):
            raise ValueError(f"LesionConfig.count: expected ints 0 <= lo <= hi <= 32, found {self.count!r}")
        for name in ("diameter_mm", "hot_ratio", "cold_ratio"):
            a, b = getattr(self, name)
            if not (math.isfinite(a) and math.isfinite(b) and 0 <= a <= b):
                raise ValueError(f"LesionConfig.{name}: expected a range 0 <= lo <= hi, found {(a, b)!r}")
        if self.diameter_mm[0] <= 0 or self.hot_ratio[0] <= 0:
            raise ValueError("LesionConfig: diameter_mm and hot_ratio must be > 0")
        for name in ("hot_fraction", "near_hot"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"LesionConfig.{name}: expected a probability in [0, 1], found {getattr(self, name)!r}"
                )


def _centre_weights(activity: torch.Tensor, labels: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, G²) pixel weights of the centre slice: every tissue class equally likely, and the same restricted to
    pixels with a structure at least twice as hot within ~3 pixels."""
    flat_lab = labels.flatten(1)
    counts = torch.zeros((labels.shape[0], n_classes), device=labels.device)
    counts.scatter_add_(1, flat_lab, torch.ones_like(flat_lab, dtype=counts.dtype))
    weight = 1.0 / counts.gather(1, flat_lab).clamp_min(1.0)
    weight = weight * ((flat_lab > 0) & (activity.flatten(1) > _MIN_BACKGROUND))
    nearby = F.max_pool2d(F.max_pool2d(activity[:, None], (7, 1), 1, (3, 0)), (1, 7), 1, (0, 3))[:, 0]
    hotter = nearby > 2.0 * activity
    return weight, weight * hotter.flatten(1)


def insert_lesions(
    slabs: Slabs, generator: torch.Generator | int | None = None, config: LesionConfig | None = None
) -> Slabs:
    """The slabs with lesions painted in: each slab gets count ∈ [lo, hi] lesions centred in its centre slice."""
    cfg = config if config is not None else LesionConfig()
    if not isinstance(cfg, LesionConfig):
        raise ValueError(f"config: expected a LesionConfig, found {type(cfg).__name__}")
    act = slabs.activity.clone()
    n, s, grid = act.shape[0], act.shape[1], act.shape[-1]
    n_slots = cfg.count[1]
    if n_slots == 0:
        return slabs
    device = act.device
    g = resolve_generator(generator, device)
    k = slabs.context

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand((n, n_slots), generator=g, device=device)

    count = torch.randint(cfg.count[0], cfg.count[1] + 1, (n, 1), generator=g, device=device)
    on = torch.arange(n_slots, device=device)[None, :] < count
    weight, near = _centre_weights(act[:, k], slabs.labels[:, k], len(slabs.class_names))
    has_tissue, has_near = weight.sum(1) > 0, near.sum(1) > 0
    anywhere = torch.multinomial(torch.where(has_tissue[:, None], weight, 1.0), n_slots, True, generator=g)
    by_hot = torch.multinomial(torch.where(has_near[:, None], near, 1.0), n_slots, True, generator=g)
    use_near = (torch.rand((n, n_slots), generator=g, device=device) < cfg.near_hot) & has_near[:, None]
    pixel = torch.where(use_near, by_hot, anywhere)
    on = on & has_tissue[:, None]
    diameter = torch.exp(u(math.log(cfg.diameter_mm[0]), math.log(cfg.diameter_mm[1])))
    shape = 0.15 * torch.randn((n, n_slots, 3), generator=g, device=device)
    shape = torch.exp(shape - shape.mean(-1, keepdim=True))  # axis ratios, geometric mean 1: same volume
    angle = u(0.0, math.pi)
    dz = u(-0.5, 0.5) * slabs.slice_mm[:, None]
    hot = torch.rand((n, n_slots), generator=g, device=device) < cfg.hot_fraction
    hot_ratio = torch.exp(u(math.log(cfg.hot_ratio[0]), math.log(cfg.hot_ratio[1])))
    ratio = torch.where(hot, hot_ratio, u(*cfg.cold_ratio))

    background = F.avg_pool2d(act[:, k : k + 1], 3, 1, 1, count_include_pad=False)[:, 0].flatten(1)
    background = background.gather(1, pixel)
    row, col = (pixel // grid).float(), (pixel % grid).float()
    px = slabs.pixel_size_mm
    half = grid / 2 - 0.5
    x = torch.arange(grid, device=device, dtype=torch.float32) - half
    xx = (x.view(1, 1, 1, grid) * px.view(-1, 1, 1, 1)).expand(n, 1, grid, grid).contiguous()
    yy = (-x.view(1, 1, grid, 1) * px.view(-1, 1, 1, 1)).expand(n, 1, grid, grid).contiguous()
    zz = (torch.arange(s, device=device, dtype=torch.float32) - k).view(1, s, 1, 1) * slabs.slice_mm.view(-1, 1, 1, 1)
    lesions = slabs.lesions.clone()
    for j in range(n_slots):
        idx = torch.nonzero(on[:, j]).flatten()
        if not idx.numel():
            continue
        radius_px = (0.5 * diameter[idx, j] * shape[idx, j].amax(-1) + 4 * EDGE * px[idx]) / px[idx] + 1.0
        win = Window(idx, row[idx, j], col[idx, j], min(grid, 2 * math.ceil(float(radius_px.max())) + 3), grid)
        cx, cy = ((col[idx, j] - half) * px[idx]).view(-1, 1, 1, 1), ((half - row[idx, j]) * px[idx]).view(-1, 1, 1, 1)
        u_w, v_w = win.take(xx), win.take(yy)
        semi = [(0.5 * diameter[idx, j] * shape[idx, j, a]).view(-1, 1, 1, 1) for a in range(3)]
        depth = so.ellipsoid_depth(
            u_w, v_w, zz[idx], (cx, cy, dz[idx, j].view(-1, 1, 1, 1)), semi, angle[idx, j].view(-1, 1, 1, 1)
        )
        m = so.occupancy(depth, (EDGE * px[idx]).view(-1, 1, 1, 1)) * (win.take(slabs.labels) > 0)  # not in air
        value = (background[idx, j] * ratio[idx, j]).view(-1, 1, 1, 1)
        win.put(act, torch.lerp(win.take(act), value.expand_as(m), m))
        win.put(lesions, win.take(lesions).masked_fill(m > 0.5, j + 1))
    nan = torch.full_like(diameter, float("nan"))
    return dataclasses.replace(
        slabs,
        activity=act,
        lesions=lesions,
        lesion_diameter_mm=torch.where(on, diameter, nan),
        lesion_contrast=torch.where(on, ratio, nan),
    )
