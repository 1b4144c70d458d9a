"""Evaluation on held-out procedural scans shaped like users' scans (issue 16, item 3).

A setting fixes what a site fixes: anatomy (brain or whole body), grid and pixel size, the scanner's resolution, the
reconstruction, the post-filter and the count level; the dose fraction is swept. Test slabs come from the project's
own generators with a seed stream that training never draws (held-out procedural volumes). Per setting and dose the
methods are: the low-dose image, a Gaussian filter whose FWHM is tuned on a separate tuning set of the same setting,
the full-dose image, the regression mean and the posterior mean. Reported against the truth (the true activity) and
against the full-dose scan: PSNR (data range = the reference's max per slice), SSIM; per lesion (the phantoms' lesion
labels, centre slice): contrast recovery CR = (x̄_L − x̄_B)/(t̄_L − t̄_B) with B a 2-pixel ring around the lesion,
and the SUVmax ratio max_L(x)/max_L(full dose); the coverage of the 90 % intervals mean ± 1.645·std read as a user
reads the std map (pixels of the object); and, for the count-level estimator, the factor ρ̂/ρ of each slice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from petdiff.data.normalization import Normalizer
from petdiff.data.scan_pairs import ScanPairSimulator, ScanSimulation, SimulatedScans
from petdiff.evaluate.masks import dilate
from petdiff.evaluate.metrics import psnr, ssim
from petdiff.inference.tiling import object_tiles
from petdiff.inference.volume import enhance_volume
from petdiff.models.dose import density_from_labels, peak_density
from petdiff.phantoms import body_slabs, brain_slabs
from petdiff.recon import gaussian_filter

HELD_OUT_SEED = 104_729  # test slabs: seeds from here on; training pair files use small seeds
TUNING_SEED = 7_919  # the filter's tuning slabs
FILTER_FWHM_MM = tuple(0.5 * i for i in range(25))  # 0 … 12 mm
Z90 = 1.6448536269514722


@dataclass(frozen=True)
class ScanSetting:
    """One kind of scan a site makes (see the module docstring)."""

    name: str
    anatomy: str  # "brain" | "body"
    pixel_mm: float
    scanner_fwhm_mm: float
    recon: tuple[int, int]  # (iterations, subsets); subsets 1 = MLEM
    postfilter_mm: float
    counts_per_suv_cm2: float  # full dose
    grid: int = 128
    slice_mm: float = 2.5

    def simulation(self, fraction: float) -> ScanSimulation:
        """The simulator's ranges pinned to this setting at dose `fraction`."""
        it, sub = self.recon
        return ScanSimulation(
            grid=self.grid, patch=self.grid, patches_per_slab=1, pixel_size_mm=(self.pixel_mm, self.pixel_mm),
            slice_mm=(self.slice_mm, self.slice_mm), scanner_fwhm_mm=(self.scanner_fwhm_mm,) * 2,
            postfilter_mm=(self.postfilter_mm,) * 2, no_postfilter=1.0 if self.postfilter_mm == 0 else 0.0,
            counts_per_suv_cm2=(self.counts_per_suv_cm2,) * 2, fraction=(fraction, fraction),
            mlem_share=1.0 if sub == 1 else 0.0, mlem_iterations=(it,), osem_iterations=(it,), osem_subsets=(sub,),
            single_slice=0.0)


SETTINGS: dict[str, ScanSetting] = {
    s.name: s for s in (
        # a 2 mm brain grid (mCT / Discovery brain protocols), OSEM, no filter, a 10-minute brain scan's counts
        ScanSetting("brain-2mm", "brain", 2.0, 4.5, (3, 16), 0.0, 3000.0),
        # the same with a 4 mm Gaussian post-filter, a common clinical reconstruction
        ScanSetting("brain-2mm-filtered", "brain", 2.0, 4.5, (3, 16), 4.0, 3000.0),
        # whole body at 3.5 mm (older PET/CT), 5 mm resolution, OSEM + 5 mm filter, a 2–3 minute bed
        ScanSetting("body-3.5mm", "body", 3.5, 5.0, (3, 16), 5.0, 800.0),
    )
}


def held_out_slabs(setting: ScanSetting, n: int, seed: int, context: int = 1) -> Any:
    """n slabs of the setting's anatomy from a seed stream training never uses."""
    make = body_slabs if setting.anatomy == "body" else brain_slabs
    g = torch.Generator().manual_seed(seed)
    return make(n, setting.grid, float(setting.pixel_mm), float(setting.slice_mm), context, g)


def simulate_setting(setting: ScanSetting, fraction: float, n: int, seed: int) -> tuple[SimulatedScans, Any]:
    """(whole simulated slices, their slabs) for n held-out slabs of a setting at a dose fraction."""
    slabs = held_out_slabs(setting, n, seed)
    simulator = ScanPairSimulator(setting.simulation(fraction))
    g = torch.Generator().manual_seed(seed + 1)
    return simulator.scans(slabs.activity, torch.full((n,), setting.pixel_mm), g), slabs


def tune_filter(setting: ScanSetting, fraction: float, n: int = 8) -> float:
    """The post-filter FWHM (mm) on the low-dose image that maximises mean PSNR vs the truth on tuning slabs."""
    scans, _ = simulate_setting(setting, fraction, n, TUNING_SEED)
    low = scans.low_dose[:, 1:2] / scans.fraction.view(-1, 1, 1, 1)
    scores = [float(psnr(_filter(low, fwhm, setting.pixel_mm), scans.truth).mean()) for fwhm in FILTER_FWHM_MM]
    return FILTER_FWHM_MM[int(np.argmax(scores))]


def _filter(images: torch.Tensor, fwhm_mm: float, pixel_mm: float) -> torch.Tensor:
    """Gaussian post-filter of FWHM fwhm_mm (0: none)."""
    return images if fwhm_mm <= 0 else gaussian_filter(images, fwhm_mm / pixel_mm)


def lesion_scores(x: torch.Tensor, truth: torch.Tensor, full: torch.Tensor, lesions: torch.Tensor
                  ) -> dict[str, list[float]]:
    """Per lesion of the centre slices: contrast recovery (hot, cold) and SUVmax ratios to the full dose and truth."""
    out: dict[str, list[float]] = {"cr_hot": [], "cr_cold": [], "suvmax_vs_full": [], "suvmax_vs_truth": []}
    for i in range(x.shape[0]):
        labels = lesions[i]
        for j in labels.unique().tolist():
            if j == 0:
                continue
            inside = labels == j
            if int(inside.sum()) < 3:
                continue
            ring = dilate(inside[None, None], 3)[0, 0] & ~dilate(inside[None, None], 1)[0, 0] & (labels == 0)
            ring &= truth[i, 0] > 0
            if int(ring.sum()) < 3:
                continue
            t_l, t_b = truth[i, 0][inside].mean(), truth[i, 0][ring].mean()
            if abs(float(t_l - t_b)) < 0.05 * float(t_b):
                continue
            cr = float((x[i, 0][inside].mean() - x[i, 0][ring].mean()) / (t_l - t_b))
            if t_l > t_b:
                out["cr_hot"].append(cr)
                out["suvmax_vs_full"].append(float(x[i, 0][inside].max() / full[i, 0][inside].max()))
                out["suvmax_vs_truth"].append(float(x[i, 0][inside].max() / truth[i, 0][inside].max()))
            else:
                out["cr_cold"].append(cr)
    return out


def _summary(values: list[float]) -> float | None:
    """Mean of a list (None when empty)."""
    return float(np.mean(values)) if values else None


def method_scores(x: torch.Tensor, scans: SimulatedScans, lesions: torch.Tensor) -> dict[str, Any]:
    """PSNR / SSIM vs the truth and the full dose, and the lesion numbers, of one method's images."""
    lesion = lesion_scores(x, scans.truth, scans.full_dose, lesions)
    itself = x is scans.full_dose  # the full dose against itself: no score
    return {
        "psnr": float(psnr(x, scans.truth).mean()),
        "ssim": float(ssim(x, scans.truth).mean()),
        "psnr_vs_full": None if itself else float(psnr(x, scans.full_dose).mean()),
        "ssim_vs_full": None if itself else float(ssim(x, scans.full_dose).mean()),
        "contrast_recovery_hot": _summary(lesion["cr_hot"]),
        "contrast_recovery_cold": _summary(lesion["cr_cold"]),
        "suvmax_ratio_vs_full": _summary(lesion["suvmax_vs_full"]),
        "suvmax_abs_error_vs_full": _summary([abs(v - 1) for v in lesion["suvmax_vs_full"]]),
        "suvmax_ratio_vs_truth": _summary(lesion["suvmax_vs_truth"]),
        "n_hot_lesions": len(lesion["cr_hot"]),
        "n_cold_lesions": len(lesion["cr_cold"]),
    }


def estimate_density(estimator: torch.nn.Module, low: torch.Tensor, fraction: torch.Tensor,
                     tile: tuple[int, int] = (64, 64)) -> torch.Tensor:
    """ρ̂/ρ (B,) per slab: the count-level network's median over the object's training-sized tiles (as
    `enhance_scan` estimates K), each tile seen normalised (scale-free: only its noise tells), divided by the truth."""
    normalizer = Normalizer("quantitative")
    k = low.shape[1] // 2
    factors = []
    for tiles, f in zip(object_tiles(low, tile), fraction.tolist()):
        ft = torch.full((tiles.shape[0],), f)
        scale = normalizer.scale(tiles[:, k : k + 1], ft)
        with torch.no_grad():
            rho_hat = density_from_labels(estimator(normalizer.normalize(tiles, scale * ft)))
        factors.append((rho_hat / peak_density(tiles)).median())
    return torch.stack(factors)


def evaluate_setting(enhancer: Any, setting: ScanSetting, fraction: float, n: int, samples: int = 8,
                     estimator: torch.nn.Module | None = None, batch: int = 4, seed: int = HELD_OUT_SEED,
                     precision: str = "float32") -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Scores of every method on n held-out slabs of one setting at one dose, and its images in SUV (for figures)."""
    scans, slabs = simulate_setting(setting, fraction, n, seed)
    centre = slabs.lesions[:, slabs.context : slabs.context + 1][:, 0]
    f = scans.fraction.view(-1, 1, 1, 1)
    low = scans.low_dose[:, 1:2] / f
    fwhm = tune_filter(setting, fraction)
    images = {"truth": scans.truth, "full dose": scans.full_dose, "low dose": low,
              f"filter {fwhm:g} mm": _filter(low, fwhm, setting.pixel_mm)}
    std = None
    if enhancer is not None:
        settings = (enhancer.settings("posterior", samples=samples, precision=precision) if samples
                    else enhancer.settings("mean", precision=precision))
        out = enhance_volume(enhancer, scans.low_dose, fraction, settings, slab=batch)  # stacks with their context
        images["regression"] = out.regression
        if samples:
            images["posterior mean"], std = out.mean, out.std
    result: dict[str, Any] = {"setting": setting.name, "fraction": fraction, "n": n, "filter_fwhm_mm": fwhm,
                              "methods": {name: method_scores(x, scans, centre) for name, x in images.items()
                                          if name != "truth"}}
    if std is not None:
        body = dilate((scans.truth > 0), 2)
        inside = (scans.truth - images["posterior mean"]).abs() <= Z90 * std
        result["coverage90"] = float(inside[body].float().mean())
        images["posterior std"] = std
    if estimator is not None:
        factor = estimate_density(estimator, scans.low_dose, scans.fraction)
        result["count_level"] = {"median_factor": float(factor.median()),
                                 "within_1.5x": float(((factor < 1.5) & (factor > 1 / 1.5)).float().mean()),
                                 "log10_rmse": float(factor.log10().pow(2).mean().sqrt())}
    suv = scans.per_pixel.view(-1, 1, 1, 1)  # full-dose counts per pixel per SUV
    return result, {name: x / suv for name, x in images.items()}


def evaluate_settings(enhancer: Any, names: list[str], fractions: list[float], n: int, samples: int = 8,
                      estimator: torch.nn.Module | None = None, precision: str = "float32"
                      ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every (setting, dose) pair: the results and, per setting, the example images at the first dose."""
    unknown = [name for name in names if name not in SETTINGS]
    if unknown:
        raise ValueError(f"settings: expected names among {sorted(SETTINGS)}, found {unknown}")
    results, examples = [], {}
    for name in names:
        for k, fraction in enumerate(fractions):
            if not (0 < fraction <= 1 and math.isfinite(fraction)):
                raise ValueError(f"fractions: expected dose fractions in (0, 1], found {fraction!r}")
            result, images = evaluate_setting(enhancer, SETTINGS[name], fraction, n, samples, estimator,
                                              precision=precision)
            results.append(result)
            if k == 0:
                examples[name] = images
    return results, examples

