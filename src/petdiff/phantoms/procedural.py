"""Procedural brain-like PET phantoms: axial slices with scalp, skull, folded cortex, white matter, ventricles,
deep grey nuclei, cerebellum at low levels and optional lesions, vectorised in torch.

Coordinates follow the physics contract: image row 0 is y = +1, column 0 is x = −1, the head spans about
[−0.65, 0.65] × [−0.78, 0.78] at mid levels (anterior up) like the 64×64 BrainWeb reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from petdiff.phantoms import anatomy as an
from petdiff.phantoms._random import resolve_generator
from petdiff.phantoms.config import (
    CEREBELLUM,
    CLASS_NAMES,
    COLD_LESION,
    CSF,
    DEEP_GREY,
    GREY,
    HOT_LESION,
    SCALP,
    SKULL,
    WHITE,
    PhantomConfig,
)

_LOW_LEVEL = 0.28  # below this axial level: temporal lobes, cerebellum and brainstem instead of ventricles
N_WARP = 5  # harmonics that make the gyri of unequal width
_CHUNK_PIXELS = 2**18  # phantoms are rendered in chunks of at most this many (super-sampled) pixels


@dataclass
class Phantoms:
    """A batch of phantoms: activity = concentrations[i, labels] (exactly, unless rendered with partial volume)."""

    activity: torch.Tensor  # (N, 1, H, W) float32
    labels: torch.Tensor  # (N, 1, H, W) int64, indices into class_names
    concentrations: torch.Tensor  # (N, K) float32, activity of each class in each phantom
    class_names: tuple[str, ...]
    levels: torch.Tensor  # (N,) axial level in [0, 1]: 0 = skull base, 1 = vertex

    def __len__(self) -> int:
        return self.activity.shape[0]

    def class_index(self, name: str) -> int:
        """Index of a tissue class by name (ValueError listing the names when unknown)."""
        if name not in self.class_names:
            raise ValueError(f"name: expected one of {list(self.class_names)}, found {name!r}")
        return self.class_names.index(name)


def _uniform(g: torch.Generator, shape: tuple[int, ...], lo: float, hi: float, device: torch.device) -> torch.Tensor:
    """U(lo, hi) of the given shape."""
    return lo + (hi - lo) * torch.rand(shape, generator=g, device=device)


def _draw_parameters(n: int, cfg: PhantomConfig, g: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    """Every random quantity of the n phantoms, drawn up front so chunked rendering cannot change the result."""

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return _uniform(g, (n, *shape), lo, hi, device)

    p: dict[str, torch.Tensor] = {}
    p["level"] = u(*cfg.level)
    p["rotation"] = u(-1.0, 1.0) * cfg.rotation_deg * torch.pi / 180.0
    p["shift_x"], p["shift_y"] = u(-cfg.shift, cfg.shift), u(-cfg.shift, cfg.shift)
    p["scale"] = u(*cfg.scale)
    p["asym"] = u(-cfg.asymmetry, cfg.asymmetry)
    p["head_a"], p["head_b"] = u(0.60, 0.68), u(0.72, 0.82)
    p["egg"] = u(0.0, 0.06)
    p["head_amp"], p["head_phase"] = u(0.0, 0.015, 3), u(0.0, 2 * torch.pi, 3)
    p["scalp"], p["skull"], p["csf"] = u(0.03, 0.05), u(0.025, 0.045), u(0.0, 0.015)
    p["n_gyri"] = torch.randint(26, 37, (n,), generator=g, device=device).float()
    harmonic = torch.arange(1, N_WARP + 1, device=device)
    p["warp"] = torch.stack([u(0.0, 1.0, N_WARP) * 4.0 / harmonic, u(0.0, 2 * torch.pi, N_WARP)], dim=-1)
    p["tilt"], p["seed"] = u(1.0, 3.0), u(0.0, 100.0)
    p["sulcus_min"], p["sulcus_max"] = u(0.04, 0.07), u(0.14, 0.22)
    p["sulcus_half"], p["grey"] = u(0.006, 0.014), u(0.03, 0.045)
    p["cb_n_gyri"] = torch.randint(40, 61, (n,), generator=g, device=device).float()
    p["cb_warp"] = torch.stack([u(0.0, 1.0, N_WARP) * 4.0 / harmonic, u(0.0, 2 * torch.pi, N_WARP)], dim=-1)
    p["cb_tilt"], p["cb_seed"] = u(0.5, 2.0), u(0.0, 100.0)
    p["fissure_w"], p["fissure_bend"] = u(0.004, 0.012), u(-0.08, 0.08)
    p["vent_l"], p["vent_r"] = u(0.7, 1.3), u(0.7, 1.3)
    p["vent_spread"], p["vent_y"] = u(0.7, 1.3), u(-0.04, 0.04)
    p["nuclei_l"], p["nuclei_r"] = u(0.85, 1.15), u(0.85, 1.15)
    p["sylvian_v"], p["sylvian_k"] = u(-0.05, 0.1), u(-0.3, 0.3)
    p["conc"] = _draw_concentrations(n, cfg, g, device)
    n_les = cfg.max_hot_lesions + cfg.max_cold_lesions
    n_hot = torch.randint(0, cfg.max_hot_lesions + 1, (n, 1), generator=g, device=device)
    n_cold = torch.randint(0, cfg.max_cold_lesions + 1, (n, 1), generator=g, device=device)
    slot = torch.arange(n_les, device=device)[None, :]
    is_hot = slot < cfg.max_hot_lesions
    p["lesion_on"] = torch.where(is_hot, slot < n_hot, slot - cfg.max_hot_lesions < n_cold)
    p["lesion_hot"] = is_hot.expand(n, -1)
    p["lesion_rho"], p["lesion_theta"] = torch.sqrt(u(0.0, 1.0, n_les)) * 0.75, u(0.0, 2 * torch.pi, n_les)
    p["lesion_r"] = u(*cfg.lesion_radius, n_les)
    return p


def _draw_concentrations(n: int, cfg: PhantomConfig, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n, K) FDG-like class activities: grey sets the scale, the other tissues are drawn ratios to grey/white."""

    def u(rng: tuple[float, float]) -> torch.Tensor:
        return _uniform(g, (n,), rng[0], rng[1], device)

    grey = u(cfg.grey_level)
    white = grey / u(cfg.grey_white_ratio)
    conc = torch.zeros(n, len(CLASS_NAMES), device=device)
    conc[:, SCALP] = grey * u(cfg.scalp_ratio)
    conc[:, SKULL] = grey * u(cfg.skull_ratio)
    conc[:, CSF] = u(cfg.csf_level)
    conc[:, GREY] = grey
    conc[:, WHITE] = white
    conc[:, DEEP_GREY] = grey * u(cfg.deep_grey_ratio)
    conc[:, CEREBELLUM] = grey * u(cfg.cerebellum_ratio)
    conc[:, HOT_LESION] = grey * u(cfg.hot_lesion_ratio)
    conc[:, COLD_LESION] = white * u(cfg.cold_lesion_ratio)
    return conc


def _col(t: torch.Tensor) -> torch.Tensor:
    """(N,) → (N, 1, 1) for broadcasting against (N, H, W) grids."""
    return t[:, None, None]


def _canonical_coordinates(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Anatomical (u, v) of every pixel: undo shift, rotation, scale and the left-right asymmetry of each phantom."""
    dx, dy = x - _col(p["shift_x"]), y - _col(p["shift_y"])
    c, s = torch.cos(_col(p["rotation"])), torch.sin(_col(p["rotation"]))
    u0 = (c * dx + s * dy) / _col(p["scale"])
    v = (-s * dx + c * dy) / _col(p["scale"])
    u = u0 / (1.0 + _col(p["asym"]) * torch.sign(u0))
    return u, v


def _head(
    p: dict[str, torch.Tensor], r: torch.Tensor, theta: torch.Tensor, z: torch.Tensor, low: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """(depth below the skin, scalp thickness, scalp+skull thickness, intracranial semi-axes a, b)."""
    # An egg-shaped ellipse (narrower in front) with small random harmonics, shrinking towards the vertex.
    size = torch.sqrt(1.0 - 0.8 * ((z - 0.55) / 0.45).clamp(0.0, 1.0) ** 2)
    a_head, b_head = _col(p["head_a"]) * size, _col(p["head_b"]) * size * (1.0 + 0.05 * low)
    wobble = 1.0 - _col(p["egg"]) * torch.sin(theta)
    for j in range(p["head_amp"].shape[1]):
        amp, phase = p["head_amp"][:, j, None, None], p["head_phase"][:, j, None, None]
        wobble = wobble + amp * torch.cos((j + 2) * theta + phase)
    depth = an.ellipse_radius(theta, a_head, b_head) * wobble - r
    t_scalp = _col(p["scalp"]) * (1.0 + 2.5 * low * torch.relu(-torch.sin(theta)))  # neck muscles at low levels
    t_bone = t_scalp + _col(p["skull"])
    return depth, t_scalp, t_bone, a_head - t_bone, b_head - t_bone


def _fissures(
    p: dict[str, torch.Tensor], u: torch.Tensor, v: torch.Tensor, z: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed distances to the interhemispheric fissure (interrupted by the corpus callosum) and the Sylvian one."""
    far = torch.full_like(u, 1e3)
    cc_half = 0.42 * b * an.smooth_bump(z, 0.26, 0.64).sqrt()
    d_med = torch.abs(u - _col(p["fissure_bend"]) * v * v) - _col(p["fissure_w"])
    d_med = torch.where(torch.abs(v + 0.05 * b) > cc_half, d_med, far)
    syl = an.smooth_bump(z, 0.18, 0.5)
    u_insula = a * (0.6 + 0.35 * (1.0 - syl))
    d_syl = torch.abs(v - _col(p["sylvian_v"]) * b - _col(p["sylvian_k"]) * (torch.abs(u) - u_insula)) - 0.008
    d_syl = torch.where((torch.abs(u) > u_insula) & (syl > 0.05), d_syl, far)
    return d_med, d_syl


def _cortex(
    p: dict[str, torch.Tensor],
    v: torch.Tensor,
    r: torch.Tensor,
    theta: torch.Tensor,
    z: torch.Tensor,
    d_eff: torch.Tensor,
    medial: torch.Tensor,
    r_mean: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(grey, sulcal CSF): the gyral phase runs along the outer surface (angle) or the medial surface (v)."""
    top = ((z - 0.5) / 0.4).clamp(0.0, 1.0)  # near the vertex the cortex is cut obliquely: deeper, thicker
    folds = {k: _col(p[k]) for k in ("n_gyri", "seed", "tilt", "sulcus_half")}
    folds["warp"] = p["warp"]
    deeper = torch.where(medial, 0.5, 1.0 + 0.6 * top)  # medial sulci are shallower, avoiding a fishbone look
    folds["sulcus_min"], folds["sulcus_max"] = _col(p["sulcus_min"]) * deeper, _col(p["sulcus_max"]) * deeper
    folds["grey"] = _col(p["grey"]) * (1.0 + 0.4 * top)
    psi = torch.where(medial, v / r_mean, theta)
    radius = torch.where(medial, r_mean, r)
    return an.folded_cortex(psi, d_eff, radius, 1000.0 * medial, ~medial, folds)


def _render_labels(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Tissue class of every grid point (N, H, W) int64 for the phantoms described by `p`."""
    u, v = _canonical_coordinates(p, x, y)
    z = _col(p["level"])
    r, theta = torch.sqrt(u * u + v * v), torch.atan2(v, u)
    low = ((_LOW_LEVEL - z) / _LOW_LEVEL).clamp(0.0, 1.0)  # 1 at the skull base, 0 from the ventricle levels up
    depth, t_scalp, t_bone, a_in, b_in = _head(p, r, theta, z, low)

    # Cerebrum: everything below the subarachnoid CSF, or the frontal/temporal lobes at low levels.
    d_cereb = depth - t_bone - _col(p["csf"])
    cerebellum_depth = torch.full_like(d_cereb, -1.0)
    low_idx = torch.nonzero(p["level"] < _LOW_LEVEL).flatten()
    if low_idx.numel():
        lobes, cb = _low_level_lobes(u[low_idx], v[low_idx], low[low_idx], a_in[low_idx], b_in[low_idx])
        d_cereb[low_idx] = torch.minimum(lobes, d_cereb[low_idx])
        cerebellum_depth[low_idx] = torch.minimum(cb, d_cereb[low_idx] + 1.0)
    d_med, d_syl = _fissures(p, u, v, z, a_in, b_in)
    medial = d_med < d_cereb
    d_eff = torch.minimum(torch.minimum(d_cereb, d_med), d_syl)  # depth below the nearest pial surface
    grey, sulcus = _cortex(p, v, r, theta, z, d_eff, medial, 0.5 * (a_in + b_in))

    labels = torch.zeros(u.shape, dtype=torch.int64, device=u.device)
    labels[depth > 0] = SCALP
    labels[depth > t_scalp] = SKULL
    labels[depth > t_bone] = CSF
    cerebrum = (d_cereb > 0) & (d_cereb >= cerebellum_depth)
    labels[cerebrum & (d_eff > 0)] = WHITE
    labels[cerebrum & (d_eff > 0) & grey] = GREY
    labels[cerebrum & sulcus] = CSF

    deep_idx = torch.nonzero((p["level"] > 0.26) & (p["level"] < 0.66)).flatten()
    if deep_idx.numel():
        sub = {k: t[deep_idx] for k, t in p.items()}
        part = labels[deep_idx]
        allowed = cerebrum[deep_idx] & (d_eff[deep_idx] > _col(sub["sulcus_max"]))
        _deep_structures(part, sub, u[deep_idx], v[deep_idx], a_in[deep_idx], b_in[deep_idx], allowed)
        labels[deep_idx] = part
    if low_idx.numel():
        sub = {k: t[low_idx] for k, t in p.items()}
        part = labels[low_idx]
        cb_mask = (cerebellum_depth[low_idx] > 0) & ~cerebrum[low_idx]
        args = (u[low_idx], v[low_idx], low[low_idx], a_in[low_idx], b_in[low_idx])
        _infratentorial(part, sub, *args, cb_mask, cerebellum_depth[low_idx])
        labels[low_idx] = part
    _lesions(labels, p, u, v, a_in, b_in)
    return labels


def _low_level_lobes(
    u: torch.Tensor, v: torch.Tensor, low: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth inside the frontal + temporal lobes and inside the cerebellum, for slices below the ventricles."""
    fa, fb = 1.0 - 0.4 * low, 1.0 - 0.55 * low
    lobes = an.ellipse_depth(u, v, 0.0, b * (1.0 - fb), a * fa, b * fb)
    has_temporal = low > 0.05
    for side in (1.0, -1.0):
        temporal = an.ellipse_depth(u, v, side * 0.6 * a, -0.08 * b, 0.38 * a, 0.5 * b)
        lobes = torch.where(has_temporal, torch.maximum(lobes, temporal), lobes)
    s = low.sqrt()
    cerebellum = an.ellipse_depth(u, v, 0.0, -0.55 * b, 0.8 * a * s + 1e-3, 0.45 * b * s + 1e-3)
    return lobes, cerebellum


def _deep_structures(
    labels: torch.Tensor,
    p: dict[str, torch.Tensor],
    u: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    allowed: torch.Tensor,
) -> None:
    """Basal ganglia and thalami (deep grey) and the butterfly-shaped lateral ventricles + third ventricle (CSF)."""
    z = _col(p["level"])
    vent = an.smooth_bump(z, 0.3, 0.66)
    nuc = an.smooth_bump(z, 0.26, 0.54)
    thal = an.smooth_bump(z, 0.28, 0.48)
    third = an.smooth_bump(z, 0.28, 0.46)
    # Frontal horns diverge forwards, occipital horns backwards; at higher levels only the bodies remain.
    spread = _col(p["vent_spread"]) * (1.0 - 0.6 * ((z - 0.45) / 0.2).clamp(0.0, 1.0))
    deep = torch.zeros_like(allowed)
    csf = torch.zeros_like(allowed)
    for side, s_v, s_n in ((1.0, p["vent_l"], p["nuclei_l"]), (-1.0, p["vent_r"], p["nuclei_r"])):
        s_v, s_n = _col(s_v), _col(s_n)
        nv, nn, nt = vent.sqrt() * s_v, nuc.sqrt() * s_n, thal.sqrt() * s_n
        deep |= an.inside_ellipse(u, v, side * 0.15 * a, 0.2 * b, 0.07 * a * nn, 0.11 * b * nn, side * 0.4)
        deep |= an.inside_ellipse(u, v, side * 0.36 * a, 0.0, 0.075 * a * nn, 0.2 * b * nn, side * -0.15)
        deep |= an.inside_ellipse(u, v, side * 0.1 * a, -0.14 * b, 0.1 * a * nt, 0.12 * b * nt, side * 0.2)
        y0 = _col(p["vent_y"]) * b
        origin = (side * 0.07 * a, y0)
        front = (side * (0.07 + 0.14 * spread) * a, y0 + 0.32 * b * nv.clamp(max=1.2))
        back = (side * (0.08 + 0.18 * spread) * a, y0 - 0.4 * b * nv.clamp(max=1.2))
        csf |= an.capsule_mask(u, v, origin, front, 0.04 * a * nv, 0.075 * a * nv)
        csf |= an.capsule_mask(u, v, origin, back, 0.045 * a * nv, 0.035 * a * nv)
    csf |= (torch.abs(u) < 0.015 * a) & (torch.abs(v + 0.12 * b) < 0.14 * b) & (third > 0.2)
    labels[allowed & deep] = DEEP_GREY
    labels[allowed & csf] = CSF


def _infratentorial(
    labels: torch.Tensor,
    p: dict[str, torch.Tensor],
    u: torch.Tensor,
    v: torch.Tensor,
    low: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    cb: torch.Tensor,
    cerebellum_depth: torch.Tensor,
) -> None:
    """Cerebellum with folia (cerebellar cortex around white arbor vitae), brainstem and fourth ventricle."""
    cv = -0.55 * b
    psi = torch.atan2(v - cv, u)
    radius = torch.sqrt(u * u + (v - cv) ** 2)
    folia = {k: _col(p["cb_" + k]) for k in ("n_gyri", "seed", "tilt")}
    folia["warp"] = p["cb_warp"]
    folia["sulcus_half"] = torch.full_like(folia["seed"], 0.004)
    folia["sulcus_min"], folia["sulcus_max"] = 0.1 * b * low.sqrt(), 0.3 * b * low.sqrt()
    folia["grey"] = torch.full_like(folia["seed"], 0.02)
    cortex, fissures = an.folded_cortex(
        psi, cerebellum_depth, radius, torch.zeros_like(psi), torch.ones_like(cb), folia
    )
    labels[cb] = WHITE
    labels[cb & cortex] = CEREBELLUM
    labels[cb & fissures] = CSF
    stem = an.inside_ellipse(u, v, 0.0, -0.14 * b, 0.15 * a * low.sqrt(), 0.14 * b * low.sqrt()) & (low > 0.1)
    labels[stem] = WHITE
    fourth = an.inside_ellipse(u, v, 0.0, -0.32 * b, 0.06 * a, 0.035 * b) & (low > 0.3)
    labels[fourth] = CSF


def _lesions(
    labels: torch.Tensor, p: dict[str, torch.Tensor], u: torch.Tensor, v: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> None:
    """Hot and cold discs at random positions, painted only over brain tissue (the tissue map before lesions)."""
    tissue = (labels == GREY) | (labels == WHITE) | (labels == DEEP_GREY) | (labels == CEREBELLUM)
    for j in range(p["lesion_on"].shape[1]):
        idx = torch.nonzero(p["lesion_on"][:, j]).flatten()
        if not idx.numel():
            continue
        cu = _col(p["lesion_rho"][idx, j] * torch.cos(p["lesion_theta"][idx, j])) * a[idx]
        cv = _col(p["lesion_rho"][idx, j] * torch.sin(p["lesion_theta"][idx, j])) * b[idx]
        rad = _col(p["lesion_r"][idx, j])
        disc = ((u[idx] - cu) ** 2 + (v[idx] - cv) ** 2 < rad * rad) & tissue[idx]
        value = _col(torch.where(p["lesion_hot"][idx, j], HOT_LESION, COLD_LESION))
        labels[idx] = torch.where(disc, value, labels[idx])


def _grid(resolution: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates (1, R, R): x = −1 + (2j+1)/R along columns, y = 1 − (2i+1)/R along rows."""
    c = -1.0 + (2.0 * torch.arange(resolution, device=device) + 1.0) / resolution
    return c[None, None, :].expand(1, resolution, resolution), (-c)[None, :, None].expand(1, resolution, resolution)


def procedural_phantoms(
    n: int,
    resolution: int = 64,
    generator: torch.Generator | int | None = None,
    lesions: bool = True,
    config: PhantomConfig | None = None,
    supersample: int = 1,
    device: torch.device | str | None = None,
) -> Phantoms:
    """n random brain-like axial slices at `resolution` (32…512), reproducible from a seed or generator.

    Each phantom gets a random axial level (`levels`, 0 = skull base … 1 = vertex): temporal lobes and a
    folded cerebellum below 0.28, basal ganglia/thalami and butterfly lateral ventricles around 0.3–0.66,
    white-matter centrum and smaller heads towards the vertex; a folded cortical ribbon with sulci
    everywhere; random rotation/shift/scale/left-right asymmetry; optional hot and cold lesions.
    Class activities (`concentrations`, see `PhantomConfig`) are FDG-like and on the BrainWeb scale (0…12).

    supersample = 1 samples the tissue map at pixel centres (hard edges, like the reference BrainWeb slices;
    activity == concentrations[i, labels] exactly); supersample = s > 1 renders at s× resolution and
    area-averages the activity (partial volume), the label being the majority class of each pixel.
    The device is `device`, else the generator's device, else CPU. On a busy CPU, torch.set_num_threads(1)
    is often faster: the work is many small tensor operations.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive int, found {n!r}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or not 8 <= resolution <= 1024:
        raise ValueError(f"resolution: expected an int in [8, 1024] (32…512 recommended), found {resolution!r}")
    if isinstance(supersample, bool) or not isinstance(supersample, int) or not 1 <= supersample <= 8:
        raise ValueError(f"supersample: expected an int in [1, 8], found {supersample!r}")
    cfg = config if config is not None else PhantomConfig()
    if not isinstance(cfg, PhantomConfig):
        raise ValueError(f"config: expected a PhantomConfig, found {type(cfg).__name__}")
    if device is None:
        device = generator.device if isinstance(generator, torch.Generator) else torch.device("cpu")
    device = torch.device(device)
    g = resolve_generator(generator, device)
    p = _draw_parameters(n, cfg, g, device)
    if not lesions:
        p["lesion_on"] = torch.zeros_like(p["lesion_on"])
    fine = resolution * supersample
    x, y = _grid(fine, device)
    chunk = max(1, _CHUNK_PIXELS // (fine * fine))
    n_classes = len(CLASS_NAMES)
    activity, labels = [], []
    for start in range(0, n, chunk):
        part = {k: t[start : start + chunk] for k, t in p.items()}
        lab = _render_labels(part, x, y)
        conc = part["conc"]
        act = torch.gather(conc, 1, lab.reshape(lab.shape[0], -1)).reshape(lab.shape)
        if supersample > 1:
            act = F.avg_pool2d(act[:, None], supersample)[:, 0]
            votes = F.avg_pool2d(F.one_hot(lab, n_classes).permute(0, 3, 1, 2).float(), supersample)
            lab = votes.argmax(dim=1)
        activity.append(act)
        labels.append(lab)
    return Phantoms(
        activity=torch.cat(activity)[:, None].float().contiguous(),
        labels=torch.cat(labels)[:, None].contiguous(),
        concentrations=p["conc"].float(),
        class_names=CLASS_NAMES,
        levels=p["level"],
    )
