"""(full-dose, low-dose) training pairs that look like users' scans: the scan models' data (issue 16).

One slab of 2k+1 adjacent axial slices of a 3D phantom (in SUV) on a G×G grid at a pixel size p (mm) becomes a
pair the way a scanner makes it:

1. activity a ≥ 0, zero outside the scanner's circular field of view;
2. scanner resolution: a ∗ Gaussian of FWHM r mm (3–7 mm, in-plane), the image-space PSF no reconstruction undoes;
3. counts: expected counts per pixel t·(a ∗ PSF) with t = κ·(p/10 mm)², κ = full-dose counts per SUV·cm² (a scan's
   sensitivity × dose × time, log-uniform over two decades), projected with the exact Siddon matrix (columns sum to
   one, so an image in counts per pixel sums to the slice's counts);
4. full dose Y ~ Poisson(A t (a ∗ PSF)), low dose Binomial(Y, f) (list-mode subsampling, f log-uniform 0.02–0.6);
5. the same reconstruction for both (MLEM or OSEM at an iteration/subset count drawn per chunk) and the same
   Gaussian post-filter (0–6 mm FWHM, or none);
6. 64×64 patches of the centre slice's target and of the 2k+1 low-dose slices, normalised per patch the way the
   networks see a tile at inference (`Normalizer`, scale from the low-dose centre slice), with the patch's peak
   low-dose count density ρ (`models.dose.peak_density`), the label the networks are told.

The target is the true activity t·a (unblurred, in full-dose counts per pixel): the posterior is about the activity
itself, so the model learns to undo part of the scanner blur where the counts allow it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from petdiff.data.normalization import Normalizer
from petdiff.models.dose import peak_density
from petdiff.physics import Projector, thin
from petdiff.recon import gaussian_filter, mlem

SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@dataclass(frozen=True)
class ScanSimulation:
    """The ranges a scan-like pair is drawn from (users-scans: scanners, reconstructions, counts, doses)."""

    grid: int = 128  # G: simulated slices are G×G
    patch: int = 64  # training patches are patch×patch
    patches_per_slab: int = 3
    context: int = 1  # k neighbour slices each side
    pixel_size_mm: tuple[float, float] = (1.5, 4.5)  # log-uniform
    slice_mm: tuple[float, float] = (2.0, 5.0)
    scanner_fwhm_mm: tuple[float, float] = (3.0, 7.0)
    postfilter_mm: tuple[float, float] = (0.0, 6.0)
    no_postfilter: float = 0.3  # share of scans without a post-filter
    counts_per_suv_cm2: tuple[float, float] = (100.0, 2.0e4)  # κ at full dose, log-uniform
    fraction: tuple[float, float] = (0.02, 0.6)  # log-uniform
    mlem_share: float = 0.2  # else OSEM; OSEM it × subsets spans 16–96 MLEM-equivalent updates at a tenth of the cost
    mlem_iterations: tuple[int, ...] = (10, 20, 30)
    osem_iterations: tuple[int, ...] = (2, 3, 4)
    osem_subsets: tuple[int, ...] = (8, 16, 24)
    single_slice: float = 0.1  # share of patches whose neighbours are the centre slice repeated (2D input)

    def as_dict(self) -> dict:
        """JSON-ready ranges (recorded in pair files and sidecars)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class SimulatedScans:
    """Whole simulated slices in counts per pixel (full dose for `full_dose` and `truth`, low dose for `low_dose`)."""

    full_dose: torch.Tensor  # (n, 1, G, G) full-dose reconstruction of the centre slice
    low_dose: torch.Tensor  # (n, 2k+1, G, G) low-dose reconstructions of the slab
    truth: torch.Tensor  # (n, 1, G, G) true activity of the centre slice, full-dose counts per pixel
    counts: torch.Tensor  # (n,) expected full-dose counts of the centre slice
    fraction: torch.Tensor  # (n,)
    per_pixel: torch.Tensor  # (n,) full-dose counts per SUV per pixel (t): activity in SUV = truth / t
    scanner_fwhm: torch.Tensor  # (n,) mm
    postfilter: torch.Tensor  # (n,) mm
    recon: tuple[int, int]  # (iterations, subsets) of the reconstruction (subsets 1: MLEM)


@dataclass
class ScanPairs:
    """A batch of normalised patches; `scale` inverts them to full-dose counts per pixel."""

    full_dose: torch.Tensor  # (B, 1, h, w) normalised full-dose reconstruction
    low_dose: torch.Tensor  # (B, 2k+1, h, w) normalised low-dose reconstructions (full-dose units before normalising)
    truth: torch.Tensor  # (B, 1, h, w) normalised true activity (full-dose counts per pixel before normalising)
    scale: torch.Tensor  # (B,) full-dose scale s
    counts: torch.Tensor  # (B,) expected full-dose counts of the slice (whole field of view)
    fraction: torch.Tensor  # (B,)
    density: torch.Tensor  # (B,) ρ: peak low-dose counts per pixel of the patch (the networks' label)
    pixel_size: torch.Tensor  # (B,) mm
    scanner_fwhm: torch.Tensor  # (B,) mm
    postfilter: torch.Tensor  # (B,) mm (0: none)


def _log_uniform(lo: float, hi: float, n: int, g: torch.Generator) -> torch.Tensor:
    """n values log-uniform on [lo, hi]."""
    u = torch.rand(n, generator=g, dtype=torch.float64)
    return torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * u).float()


def _choice(options: tuple, g: torch.Generator):
    """One of `options`, uniformly."""
    return options[int(torch.randint(len(options), (1,), generator=g))]


def blur_mm(images: torch.Tensor, fwhm_mm: torch.Tensor, pixel_mm: torch.Tensor) -> torch.Tensor:
    """Each (C, H, W) image i convolved in-plane with a Gaussian of FWHM fwhm_mm[i] / pixel_mm[i] pixels (0: none)."""
    out = torch.empty_like(images)
    for i in range(images.shape[0]):
        fwhm = float(fwhm_mm[i] / pixel_mm[i])
        out[i] = images[i] if fwhm <= 0 else gaussian_filter(images[i : i + 1], fwhm)[0]
    return out


def field_of_view(grid: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(G, G) mask of the pixels whose centres lie inside the scanner's circular field of view (radius 1)."""
    c = (torch.arange(grid, device=device, dtype=torch.float32) + 0.5) / grid * 2 - 1
    return (c[None, :] ** 2 + c[:, None] ** 2 <= 1.0).float()


class ScanPairSimulator:
    """Draws scan-like pairs from slabs (see the module docstring); one reconstruction setting per call."""

    def __init__(self, settings: ScanSimulation | None = None, device: torch.device | str = "cpu"):
        self.settings = settings or ScanSimulation()
        self.projector = Projector(self.settings.grid, device=device)
        self.fov = field_of_view(self.settings.grid, device)
        self.normalizer = Normalizer("quantitative")

    def draw_geometry(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(pixel size, slice spacing) in mm for n slabs, to render the phantoms with."""
        s = self.settings
        return _log_uniform(*s.pixel_size_mm, n, g), s.slice_mm[0] + (s.slice_mm[1] - s.slice_mm[0]) * torch.rand(
            n, generator=g)

    def __call__(self, activity: torch.Tensor, pixel_mm: torch.Tensor, g: torch.Generator) -> ScanPairs:
        """Pairs of patches from slabs of activity (n, 2k+1, G, G) in SUV at pixel sizes `pixel_mm` (n,)."""
        scans = self.scans(activity, pixel_mm, g)
        return self._patches(scans, pixel_mm, g)

    def scans(self, activity: torch.Tensor, pixel_mm: torch.Tensor, g: torch.Generator) -> SimulatedScans:
        """Whole simulated slices (not normalised, counts per pixel) of slabs (n, 2k+1, G, G) in SUV."""
        s = self.settings
        n, depth = activity.shape[:2]
        if depth != 2 * s.context + 1 or tuple(activity.shape[2:]) != (s.grid, s.grid):
            raise ValueError(f"activity: expected slabs (n, {2 * s.context + 1}, {s.grid}, {s.grid}), "
                             f"found {tuple(activity.shape)}")
        device = activity.device
        activity = activity.clamp_min(0) * self.fov
        scanner = s.scanner_fwhm_mm[0] + (s.scanner_fwhm_mm[1] - s.scanner_fwhm_mm[0]) * torch.rand(n, generator=g)
        kappa = _log_uniform(*s.counts_per_suv_cm2, n, g)
        fraction = _log_uniform(*s.fraction, n, g)
        filtered = torch.rand(n, generator=g) >= s.no_postfilter
        post = torch.where(filtered, s.postfilter_mm[0] + (s.postfilter_mm[1] - s.postfilter_mm[0])
                           * torch.rand(n, generator=g), torch.zeros(n))
        per_pixel = (kappa * (pixel_mm / 10.0) ** 2).to(device)  # full-dose counts per SUV per pixel
        seen = blur_mm(activity, scanner, pixel_mm) * self.fov

        flat = (seen * per_pixel.view(-1, 1, 1, 1)).reshape(n * depth, 1, s.grid, s.grid)
        mean = self.projector.forward(flat)
        full = torch.poisson(mean, generator=g if device == torch.device("cpu") else None)
        low = thin(full, fraction.repeat_interleave(depth).to(device), generator=g)
        if torch.rand(1, generator=g).item() < s.mlem_share:
            n_iter, subsets = _choice(s.mlem_iterations, g), 1
        else:
            n_iter, subsets = _choice(s.osem_iterations, g), _choice(s.osem_subsets, g)
        recon = mlem(torch.cat([full, low]), self.projector, n_iter=n_iter, subsets=subsets)
        recon = recon.reshape(2, n, depth, s.grid, s.grid).transpose(0, 1).reshape(n, 2 * depth, s.grid, s.grid)
        recon = blur_mm(recon, post, pixel_mm)
        return SimulatedScans(
            full_dose=recon[:, s.context : s.context + 1], low_dose=recon[:, depth:],
            truth=activity[:, s.context : s.context + 1] * per_pixel.view(-1, 1, 1, 1),
            counts=(seen[:, s.context] * per_pixel.view(-1, 1, 1)).flatten(1).sum(1), fraction=fraction,
            per_pixel=per_pixel, scanner_fwhm=scanner, postfilter=post, recon=(n_iter, subsets))

    def _patches(self, scans: SimulatedScans, pixel_mm: torch.Tensor, g: torch.Generator) -> ScanPairs:
        """`patches_per_slab` crops per slab, centred on the object (9 in 10) or anywhere; normalised per patch."""
        s = self.settings
        full, low, truth, fraction = scans.full_dose, scans.low_dose, scans.truth, scans.fraction
        n, h = full.shape[0], s.patch
        rows, cols, owners = [], [], []
        for i in range(n):
            inside = (truth[i, 0] > 0).nonzero()
            for _ in range(s.patches_per_slab):
                if len(inside) and torch.rand(1, generator=g).item() < 0.9:
                    r, c = inside[int(torch.randint(len(inside), (1,), generator=g))].tolist()
                    r, c = r - h // 2, c - h // 2
                else:
                    r, c = (int(v) for v in torch.randint(s.grid - h + 1, (2,), generator=g))
                rows.append(min(max(r, 0), s.grid - h))
                cols.append(min(max(c, 0), s.grid - h))
                owners.append(i)

        def crop(images: torch.Tensor) -> torch.Tensor:
            return torch.stack([images[o, :, r : r + h, c : c + h] for o, r, c in zip(owners, rows, cols)])

        full_p, low_p, truth_p = crop(full), crop(low), crop(truth)
        index = torch.tensor(owners)
        f = fraction[index]
        single = torch.rand(len(owners), generator=g) < s.single_slice
        centre = low_p[:, s.context : s.context + 1]
        low_p = torch.where(single.view(-1, 1, 1, 1), centre.expand_as(low_p), low_p)
        density = peak_density(low_p)
        scale = self.normalizer.scale(centre, f)
        return ScanPairs(
            full_dose=self.normalizer.normalize(full_p, scale),
            low_dose=self.normalizer.normalize(low_p, scale * f),
            truth=self.normalizer.normalize(truth_p, scale),
            scale=scale, counts=scans.counts[index].float(), fraction=f, density=density.float(),
            pixel_size=pixel_mm[index].float(), scanner_fwhm=scans.scanner_fwhm[index].float(),
            postfilter=scans.postfilter[index].float(),
        )
