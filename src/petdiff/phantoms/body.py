"""Whole-body FDG phantom slabs: a random axial level in the neck, thorax, abdomen or pelvis of a randomly shaped
adult body (`body_anatomy`), evaluated at the slab's 2k+1 slice positions, with soft partial-volume edges and a
mild smooth texture inside the tissues."""

from __future__ import annotations

import math

import torch

from petdiff.phantoms import body_anatomy as ba
from petdiff.phantoms import solids as so
from petdiff.phantoms._random import resolve_generator
from petdiff.phantoms.lesions import LesionConfig, insert_lesions
from petdiff.phantoms.slabs import (
    EDGE,
    Canvas,
    Slabs,
    Window,
    check_slab_arguments,
    per_slab,
    pixel_coordinates,
    slice_offsets,
)

_N_TEXTURE_WAVES, _N_BOWEL_WAVES, _N_WARP_WAVES = 8, 8, 4


def _u(g: torch.Generator, shape: tuple[int, ...], lo: float, hi: float, device: torch.device) -> torch.Tensor:
    """U(lo, hi) of the given shape."""
    return lo + (hi - lo) * torch.rand(shape, generator=g, device=device)


def _col(t: torch.Tensor) -> torch.Tensor:
    """(n,) → (n, 1, 1, 1) for broadcasting against (n, S, G, G)."""
    return t.view(-1, 1, 1, 1)


def _tensor(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """A float32 tensor of a constant table."""
    return torch.tensor(values, dtype=torch.float32, device=device)


def draw_suv(n: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n, K) tissue activities in SUV per phantom, from `body_anatomy.SUV_RANGES` (background 0)."""
    suv = torch.zeros((n, len(ba.BODY_CLASS_NAMES)), device=device)
    for name, (lo, hi, log) in ba.SUV_RANGES.items():
        t = torch.rand((n,), generator=g, device=device)
        suv[:, ba.TISSUE[name]] = lo * torch.exp(t * math.log(hi / lo)) if log else lo + (hi - lo) * t
    liver = ba.LIVER_MEAN + ba.LIVER_STD * torch.randn((n,), generator=g, device=device)
    lo, hi, _ = ba.SUV_RANGES["liver"]
    suv[:, ba.TISSUE["liver"]] = liver.clamp(lo, hi)
    lung, soft = suv[:, ba.TISSUE["lung"]], suv[:, ba.TISSUE["soft_tissue"]]
    suv[:, ba.TISSUE["lung"]] = torch.minimum(lung, ba.LUNG_TO_SOFT_TISSUE * soft)
    return suv


def _draw_levels(n: int, names: tuple[str, ...], g: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n,) canonical axial level (mm) of each slab's centre: a region by its weight, then uniform within it."""
    regions = [ba.REGIONS[name] for name in names]
    weights = _tensor(tuple(w for _, _, w in regions), device)
    which = torch.multinomial(weights, n, replacement=True, generator=g)
    lo, hi = _tensor(tuple(r[0] for r in regions), device)[which], _tensor(tuple(r[1] for r in regions), device)[which]
    return lo + (hi - lo) * torch.rand((n,), generator=g, device=device)


def _draw(n: int, regions: tuple[str, ...], g: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    """Every random quantity of n body phantoms, drawn up front in a fixed order."""
    p: dict[str, torch.Tensor] = {"level": _draw_levels(n, regions, g, device)}
    p["sx"] = _u(g, (n,), 0.9, 1.4, device)
    p["sy"] = p["sx"] * _u(g, (n,), 0.82, 1.08, device)
    p["sz"] = _u(g, (n,), 0.9, 1.1, device)
    organ = _u(g, (n,), 0.95, 1.05, device)
    p["ox"], p["oy"] = (1.0 + 0.5 * (p["sx"] - 1.0)) * organ, (1.0 + 0.5 * (p["sy"] - 1.0)) * organ
    p["power"] = _u(g, (n,), 2.0, 3.2, device)
    p["t_fat"] = _u(g, (n,), 4.0, 12.0, device) + 70.0 * (p["sx"] - 0.9)  # larger bodies: more subcutaneous fat
    p["t_mus"] = _u(g, (n,), 8.0, 18.0, device)
    p["angle"] = _u(g, (n,), -8.0, 8.0, device) * math.pi / 180.0
    p["shift"] = _u(g, (n, 2), -1.0, 1.0, device)
    p["arms"] = torch.rand((n,), generator=g, device=device) < 0.4
    p["arm"] = torch.stack([_u(g, (n,), *r, device) for r in ((5.0, 40.0), (38.0, 50.0), (42.0, 55.0), (-30, 10))], 1)
    p["breasts"] = torch.rand((n,), generator=g, device=device) < 0.35
    # semi-axes (lateral, anterior, axial), lateral position, centre level, glandular share of the size
    ranges = ((55.0, 85.0), (25.0, 50.0), (45.0, 70.0), (60.0, 90.0), ba.BREAST_Z, (0.45, 0.75))
    p["breast"] = torch.stack([_u(g, (n,), lo, hi, device) for lo, hi in ranges], 1)
    n_solids = len(ba.SOLIDS)
    p["jitter"] = _u(g, (n, n_solids, 7), -1.0, 1.0, device)
    p["on"] = torch.rand((n, n_solids), generator=g, device=device)
    p["suv"] = draw_suv(n, g, device)
    p["texture"] = so.draw_waves(n, _N_TEXTURE_WAVES, (30.0, 120.0), g, device)
    p["texture_amp"] = _u(g, (n,), 0.02, 0.08, device)
    p["warp"] = so.draw_waves(n, 2 * _N_WARP_WAVES, (100.0, 250.0), g, device)
    p["warp_amp"] = _u(g, (n,), 0.5, 3.0, device)
    p["bowel"] = so.draw_waves(n, _N_BOWEL_WAVES, (20.0, 90.0), g, device)
    p["bowel_low"] = _u(g, (n,), 0.8, 1.5, device)
    p["vertebra"] = torch.stack([_u(g, (n,), *r, device) for r in ((24.0, 32.0), (0.0, 1.0), (2.5, 4.5))], 1)
    return p


def _solid_geometry(p: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Per solid, its (n,) centre, semi-axes and angle in mm, and whether it is present in each phantom."""
    out: list[dict[str, torch.Tensor]] = []
    jit = p["jitter"]
    for i, solid in enumerate(ba.SOLIDS):
        j = jit[:, i]
        size = 1.0 + solid.size_jitter * j[:, 3:6]
        if solid.parent is None:
            cx = solid.centre[0] * p["ox"] + 6.0 * j[:, 0]
            cy = solid.centre[1] * p["oy"] + 6.0 * j[:, 1]
            cz = (solid.centre[2] + 12.0 * j[:, 2]) * p["sz"]
            semi = [solid.semi[0] * p["ox"], solid.semi[1] * p["oy"], solid.semi[2] * p["sz"]]
            angle = math.radians(solid.angle_deg) + 0.15 * j[:, 6]
            on = p["on"][:, i] < solid.probability
        else:
            par = out[solid.parent]
            dx, dy = (solid.centre[0] * par["semi"][0], solid.centre[1] * par["semi"][1])
            c, s = torch.cos(par["angle"]), torch.sin(par["angle"])
            cx, cy = par["centre"][0] + c * dx - s * dy, par["centre"][1] + s * dx + c * dy
            cz = par["centre"][2] + solid.centre[2] * par["semi"][2]
            semi = [f * ps for f, ps in zip(solid.semi, par["semi"])]
            angle, on = par["angle"], par["on"]
        semi = [a * size[:, k] for k, a in enumerate(semi)]
        geo = {"centre": [cx, cy, cz], "semi": semi, "angle": angle, "on": on}
        if solid.cylinder:
            lo, hi = ba.CYLINDER_Z[i]
            geo["z_range"] = [(lo + 10.0 * j[:, 2]) * p["sz"], (hi + 10.0 * j[:, 2]) * p["sz"]]
        out.append(geo)
    return out


class _BodyRenderer:
    """Paints n body slabs on a Canvas: outline and wall layers, arms, the solids, then the spine; adds texture."""

    def __init__(
        self, p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, width: torch.Tensor
    ) -> None:
        self.p, self.z, self.width = p, z, _col(width)
        self.canvas = Canvas(z.shape[0], z.shape[1], x.shape[-1], z.device)
        zc = z / _col(p["sz"])  # canonical axial level of every slice
        dev = z.device
        self.zc = zc
        self.a = so.profile(zc, _tensor(ba.OUTLINE_Z, dev), _tensor(ba.OUTLINE_A, dev)) * _col(p["sx"])
        self.b = so.profile(zc, _tensor(ba.OUTLINE_Z, dev), _tensor(ba.OUTLINE_B, dev)) * _col(p["sy"])
        self.yc = so.profile(zc, _tensor(ba.OUTLINE_Z, dev), _tensor(ba.OUTLINE_Y, dev)) * _col(p["sy"])
        # Random in-plane placement: shift so that a body wider than the field of view shows a random part of it.
        fov_half = x.abs().amax(dim=(1, 2, 3))
        k = z.shape[1] // 2
        arm_room = p["arms"].float() * (p["arm"][:, 0] + 2.0 * p["arm"][:, 1])
        room_x = (self.a[:, k, 0, 0] + arm_room - fov_half).clamp_min(0.0) + 15.0
        room_y = (self.b[:, k, 0, 0] - fov_half).clamp_min(0.0) + 15.0
        self.shift_x, self.shift_y = p["shift"][:, 0] * room_x, p["shift"][:, 1] * room_y - self.yc[:, k, 0, 0]
        u, v = so.rotate(x - _col(self.shift_x), y - _col(self.shift_y), _col(p["angle"]))
        # A smooth 3D displacement (a few mm) so that no boundary is an exact ellipse; solids are placed with
        # windows this much larger. Its wavelengths (≥ 100 mm) dwarf a slab's thickness: taken at the centre slice.
        amp, z_mid = _col(p["warp_amp"]), z[:, k : k + 1]
        self.u = u + amp * so.smooth_field(u, v, z_mid, p["warp"][:, :_N_WARP_WAVES])
        self.v = v + amp * so.smooth_field(u, v, z_mid, p["warp"][:, _N_WARP_WAVES:])
        self.margin = 3.0 * p["warp_amp"]
        self.pixel, self.grid = x[:, 0, 0, 1] - x[:, 0, 0, 0], x.shape[-1]

    def window(self, idx: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, radius: torch.Tensor) -> Window:
        """Pixel windows of the slabs idx holding the disc of `radius` (mm) around the body-frame point (cx, cy)."""
        c, s = torch.cos(self.p["angle"][idx]), torch.sin(self.p["angle"][idx])
        x = c * cx - s * cy + self.shift_x[idx]
        y = s * cx + c * cy + self.shift_y[idx]
        px, half = self.pixel[idx], self.grid / 2 - 0.5
        size = min(self.grid, 2 * math.ceil(float(((radius + self.margin[idx]) / px).max())) + 3)
        return Window(idx, half - y / px, x / px + half, size, self.grid)

    def suv(self, tissue: str, idx: torch.Tensor | None = None) -> torch.Tensor:
        """(m, 1, 1, 1) activity of a tissue in the phantoms idx."""
        t = self.p["suv"][:, ba.TISSUE[tissue]]
        return _col(t if idx is None else t[idx])

    def outline(self) -> None:
        """Fat under the skin, the muscle wall (thicker at the back), and the visceral interior (neck: muscle)."""
        p, c = self.p, self.canvas
        v = self.v - self.yc
        self.depth = so.superellipse_depth(self.u, v, self.a, self.b, _col(p["power"]))
        self.body = so.occupancy(self.depth, self.width)
        c.paint(None, self.body, self.suv("fat"), ba.TISSUE["fat"])
        self.breasts()
        t_fat = _col(p["t_fat"])
        c.paint(None, so.occupancy(self.depth - t_fat, self.width), self.suv("muscle"), ba.TISSUE["muscle"])
        back = (-v / self.b).clamp(0.0, 1.0)
        self.interior = so.occupancy(self.depth - t_fat - _col(p["t_mus"]) * (1.0 + 1.2 * back), self.width)
        neck = (self.zc > ba.NECK_Z).float()
        c.paint(None, self.interior * (1.0 - neck), self.suv("soft_tissue"), ba.TISSUE["soft_tissue"])
        c.paint(None, self.interior * neck, self.suv("muscle"), ba.TISSUE["muscle"])

    def breasts(self) -> None:
        """Breasts on the anterior chest wall (some phantoms): fat around glandular tissue, outside the outline;
        the muscle wall painted next covers their base."""
        p = self.p
        zlo, zhi = self.z.amin(dim=(1, 2, 3)), self.z.amax(dim=(1, 2, 3))
        sx, sy, sz, spread, zc, gland = (p["breast"][:, j] for j in range(6))
        sz, zc = sz * p["sz"], zc * p["sz"]
        idx = torch.nonzero(p["breasts"] & (zc + sz > zlo) & (zc - sz < zhi)).flatten()
        if not idx.numel():
            return
        k = self.z.shape[1] // 2
        z, w = self.z[idx], self.width[idx]
        a, b, power = self.a[idx, k, 0, 0], self.b[idx, k, 0, 0], p["power"][idx]
        semi = [_col(sx[idx] * p["ox"][idx]), _col(sy[idx]), _col(sz[idx])]
        for side in (-1.0, 1.0):
            cx = side * spread[idx] * p["ox"][idx]
            # the chest's anterior surface above the breast's centre; the breast's base sinks into it
            front = self.yc[idx, k, 0, 0] + b * (1.0 - (cx.abs() / a).clamp(max=0.95) ** power) ** (1.0 / power)
            cy = front - 0.3 * sy[idx]
            win = self.window(idx, cx, cy, torch.maximum(semi[0], semi[1]).flatten() + 4.0 * w.flatten() + 1.0)
            u, v = win.take(self.u), win.take(self.v)
            centre = (_col(cx), _col(cy), _col(zc[idx]))
            m = so.occupancy(so.ellipsoid_depth(u, v, z, centre, semi), w)
            self.canvas.paint(win, m, self.suv("fat", idx), ba.TISSUE["fat"])
            win.put(self.body, torch.maximum(win.take(self.body), m))
            f = _col(gland[idx])
            inner = (centre[0], centre[1] - 0.15 * semi[1], centre[2])
            m = so.occupancy(so.ellipsoid_depth(u, v, z, inner, [f * a for a in semi]), w)
            self.canvas.paint(win, m, self.suv("breast", idx), ba.TISSUE["breast"])

    def arms(self) -> None:
        """Arms beside the body (some phantoms): fat, muscle and a humerus with marrow."""
        p = self.p
        idx = torch.nonzero(p["arms"]).flatten()
        if not idx.numel():
            return
        gap, ra, rb, ya = (p["arm"][idx, j] for j in range(4))
        z, w = self.z[idx], self.width[idx]
        z_range = (ba.ARM_Z[0] * _col(p["sz"][idx]), ba.ARM_Z[1] * _col(p["sz"][idx]))
        a = self.a[idx]
        drift = (a.amax(dim=(1, 2, 3)) - a.amin(dim=(1, 2, 3))) / 2
        for side in (-1.0, 1.0):
            x_mid = side * ((a.amax(dim=(1, 2, 3)) + a.amin(dim=(1, 2, 3))) / 2 + gap + ra)
            win = self.window(idx, x_mid, ya, torch.maximum(ra, rb) + drift + 4.0 * w.flatten() + 1.0)
            u, v = win.take(self.u), win.take(self.v)
            centre = (side * (a + _col(gap + ra)), _col(ya))
            layers = (("fat", ra, rb), ("muscle", ra - 7.0, rb - 7.0), ("bone", 12.0, 12.0), ("marrow", 8.0, 8.0))
            for tissue, sa, sb in layers:
                sa, sb = torch.as_tensor(sa), torch.as_tensor(sb)
                sa, sb = (_col(t) if t.ndim else t for t in (sa, sb))
                d = so.cylinder_depth(u, v, z, centre, (sa, sb), z_range)
                self.canvas.paint(win, so.occupancy(d, w), self.suv(tissue, idx), ba.TISSUE[tissue])

    def solids(self) -> None:
        """Every solid of body_anatomy.SOLIDS present in some slab, in painting order, clipped to the body."""
        zlo, zhi = self.z.amin(dim=(1, 2, 3)), self.z.amax(dim=(1, 2, 3))
        for solid, geo in zip(ba.SOLIDS, _solid_geometry(self.p)):
            cz = geo["centre"][2]
            if solid.cylinder:
                lo, hi = geo["z_range"]
            else:
                lo, hi = cz - geo["semi"][2], cz + geo["semi"][2]
            margin = 3.0 * self.width.flatten()
            present = geo["on"] & (hi + margin > zlo) & (lo - margin < zhi)
            idx = torch.nonzero(present).flatten()
            if not idx.numel():
                continue
            z, w = self.z[idx], self.width[idx]
            cx, cy = geo["centre"][0][idx], geo["centre"][1][idx]
            semi = [_col(s[idx]) for s in geo["semi"]]
            angle = _col(geo["angle"][idx])
            radius = torch.maximum(semi[0], semi[1]).flatten() + 4.0 * w.flatten() + 1.0
            if solid.cylinder:
                z_mid, z_half = (zlo[idx] + zhi[idx]) / 2, (zhi[idx] - zlo[idx]) / 2
                drift_x, drift_y = solid.tilt[0] * torch.sign(cx), solid.tilt[1]
                wx, wy = cx + drift_x * (z_mid - lo[idx]), cy + drift_y * (z_mid - lo[idx])
                win = self.window(idx, wx, wy, radius + max(solid.tilt) * z_half)
            else:
                win = self.window(idx, cx, cy, radius)
            u, v = win.take(self.u), win.take(self.v)
            cx, cy = _col(cx), _col(cy)
            if solid.cylinder:
                z_lo = _col(lo[idx])
                cx, cy = cx + solid.tilt[0] * (z - z_lo) * torch.sign(cx), cy + solid.tilt[1] * (z - z_lo)
                d = so.cylinder_depth(u, v, z, (cx, cy), (semi[0], semi[1]), (z_lo, _col(hi[idx])), angle)
            else:
                d = so.ellipsoid_depth(u, v, z, (cx, cy, _col(cz[idx])), semi, angle)
            m = so.occupancy(d, w)
            if solid.clip == "interior":
                m = m * win.take(self.interior)
            elif solid.clip == "body":
                m = m * win.take(self.body)
            value = self._bowel(idx, u, v) if solid.tissue == "bowel" else self.suv(solid.tissue, idx)
            self.canvas.paint(win, m, value, ba.TISSUE[solid.tissue])

    def _bowel(self, idx: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Patchy bowel activity: hot loops along the zero set of a smooth 3D field over a lower base."""
        field = so.smooth_field(u, v, self.z[idx], self.p["bowel"][idx])
        loops = torch.exp(-0.5 * (field / 0.4) ** 2)
        low = _col(self.p["bowel_low"][idx])
        return low + (self.suv("bowel", idx) - low).clamp_min(0.0) * loops

    def spine(self) -> None:
        """Paraspinal muscles, vertebral bodies (cortex, marrow, discs), the spinal canal and the posterior arch."""
        p, c = self.p, self.canvas
        dev = self.z.device
        zk = _tensor(ba.SPINE_Z, dev)
        idx = torch.nonzero(self.zc.amax(dim=(1, 2, 3)) > ba.SPINE_Z[0] - 10.0).flatten()
        if not idx.numel():
            return
        zc, z, w = self.zc[idx], self.z[idx], self.width[idx]
        ox, oy, sz = _col(p["ox"][idx]), _col(p["oy"][idx]), _col(p["sz"][idx])
        ys = so.profile(zc, zk, _tensor(ba.SPINE_Y, dev)) * oy
        r = so.profile(zc, zk, _tensor(ba.SPINE_R, dev)) * ox
        z_range = (ba.SPINE_Z[0] * sz, ba.SPINE_Z[-1] * sz)
        y_mid = (ys.amax(dim=(1, 2, 3)) + ys.amin(dim=(1, 2, 3))) / 2 - 25.0
        radius = 1.6 * (r.amax(dim=(1, 2, 3)) + 16.0 + 22.0 * ox.flatten()) + (ys.amax((1, 2, 3)) - ys.amin((1, 2, 3)))
        win = self.window(idx, torch.zeros_like(y_mid), y_mid, radius + 4.0 * w.flatten())
        u, v, body = win.take(self.u), win.take(self.v), win.take(self.body)

        def paint(tissue: str, centre: tuple, semi: tuple, value: torch.Tensor | None = None) -> torch.Tensor:
            m = so.occupancy(so.cylinder_depth(u, v, z, centre, semi, z_range), w) * body
            c.paint(win, m, self.suv(tissue, idx) if value is None else value, ba.TISSUE[tissue])
            return m

        for side in (-1.0, 1.0):
            paint("muscle", (side * (r + 16.0), ys - 38.0), (22.0 * ox, 20.0 * oy))
        paint("bone", (0.0, ys), (r, 0.85 * r))
        period, phase, half = (_col(p["vertebra"][idx, j]) for j in range(3))
        period = period * sz * r / 20.0  # vertebrae are taller where they are wider (lumbar)
        cycle = torch.remainder(z / period + phase, 1.0)
        disc = torch.sigmoid((half / period - (cycle - 0.5).abs()) * period / w.clamp_min(0.5))
        marrow = self.suv("marrow", idx) * (1.0 - disc) + self.suv("disc", idx) * disc
        m = paint("marrow", (0.0, ys), (r - 2.5, 0.85 * r - 2.5), marrow)
        win.put(c.labels, torch.where((m > 0.5) & (disc > 0.5), ba.TISSUE["disc"], win.take(c.labels)))
        rc = 0.3 * r + 4.0
        y_canal = ys - 0.85 * r - rc - 1.5
        y_arch = y_canal - rc - 6.0
        paint("bone", (0.0, y_arch), (0.5 * r + 4.0, 8.0))
        paint("marrow", (0.0, y_arch), (0.5 * r + 1.5, 5.5))
        paint("spinal_canal", (0.0, y_canal), (rc, rc))

    def texture(self) -> torch.Tensor:
        """The activity times (1 + a·f) with f a smooth unit-variance 3D field: mild variation within tissues."""
        field = so.smooth_field(self.u, self.v, self.z, self.p["texture"])
        return (self.canvas.activity * (1.0 + _col(self.p["texture_amp"]) * field)).clamp_min(0.0)


def body_slabs(
    n: int,
    grid: int,
    pixel_size_mm: float | tuple[float, float] | torch.Tensor,
    slice_mm: float | tuple[float, float] | torch.Tensor,
    context: int,
    generator: torch.Generator | int | None = None,
    device: torch.device | str = "cpu",
    regions: tuple[str, ...] = tuple(ba.REGIONS),
    lesions: LesionConfig | None = None,
) -> Slabs:
    """n whole-body FDG slabs of 2·context+1 slices on a grid×grid image, activity in SUV.

    pixel_size_mm and slice_mm: a number, a (lo, hi) range drawn log-uniformly per slab, or an (n,) tensor.
    Each slab's centre lies at a random level of the neck, thorax, abdomen or pelvis; the body is 300–500 mm wide
    and may exceed the field of view (then the grid shows a random part of it). `regions` restricts the levels
    to some of "neck", "thorax", "abdomen", "pelvis" (drawn with their relative weights). Lesions are inserted
    by `insert_lesions` with `lesions` (default LesionConfig(): 0–3 per slab; LesionConfig(count=(0, 0)): none).
    """
    check_slab_arguments(n, grid, context)
    unknown = [r for r in regions if r not in ba.REGIONS]
    if not regions or unknown:
        raise ValueError(f"regions: expected a non-empty subset of {list(ba.REGIONS)}, found {regions!r}")
    device = torch.device(device)
    g = resolve_generator(generator, device)
    pixel = per_slab("pixel_size_mm", pixel_size_mm, n, g, device)
    spacing = per_slab("slice_mm", slice_mm, n, g, device)
    p = _draw(n, tuple(regions), g, device)
    x, y = pixel_coordinates(grid, pixel)
    z = _col(p["level"] * p["sz"]) + slice_offsets(context, spacing)
    r = _BodyRenderer(p, x, y, z, EDGE * pixel)
    r.outline()
    r.arms()
    r.solids()
    r.spine()
    activity = r.texture()
    labels = r.canvas.labels
    slabs = Slabs.lesion_free(activity, labels, ba.BODY_CLASS_NAMES, pixel, spacing, "body")
    return insert_lesions(slabs, g, lesions)
