"""The evaluation run shared by `petdiff evaluate` and `petdiff demo`: scans → every method → scores.

For each dose fraction: baselines tuned on procedural training scans (evaluate.baselines), the noiseless
MLEM reference, and (with a model) the model's outputs, all in full-dose units, then scored with
evaluate.scoring. A residual-corrective pair (`inference.Enhancer`) gives the regression mean
(`regression_mean`, the supervised-UNet method `--method mean`) and the posterior mean / std of its
residual diffusion; a single conditional denoiser (`pet_cpu_64`, the reference design) its posterior.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import torch

from petdiff.evaluate.baselines import BaselineSettings, run_baselines, tune_baselines
from petdiff.evaluate.lesion_scores import lesion_errors
from petdiff.evaluate.masks import head_mask
from petdiff.evaluate.scans import Phantoms, Scans, simulate_scans
from petdiff.evaluate.scoring import aggregate, best_baseline, score_images, score_posterior
from petdiff.inference.context import with_context
from petdiff.inference.enhance import data_iterations
from petdiff.inference.enhancer import Enhancer, PairEnhancement
from petdiff.inference.single import SingleNetworkEnhancer
from petdiff.physics import Projector
from petdiff.recon import mlem

LOW_DOSE_BASELINES = ("low_dose_mlem", "early_stop_mlem", "post_filter")


@dataclass
class DoseResult:
    """Everything measured at one dose fraction."""

    fraction: float
    settings: BaselineSettings
    images: dict[str, torch.Tensor]  # method → (B, 1, H, W) full-dose units
    per_slice: dict[str, dict]  # scoring.score_images output
    summary: dict[str, dict]  # aggregated over slices
    best_baseline: str
    std: torch.Tensor | None = None  # posterior std (B, 1, H, W)
    calibration: dict[str, dict[str, float]] | None = None
    lesions: dict[str, dict] | None = None  # lesion_scores.lesion_errors: SUVmax / MTV relative errors per method


@dataclass
class Evaluation:
    """The scans and the results per dose fraction (in the order given)."""

    phantoms: Phantoms
    scans: Scans
    mask: torch.Tensor
    results: list[DoseResult] = field(default_factory=list)
    model_info: dict[str, Any] | None = None


def _enhance(
    enhancer: Enhancer | SingleNetworkEnhancer, low: torch.Tensor, recon: torch.Tensor, n_iter: int,
    projector: Projector, fraction: float, options: dict[str, Any], adjacent: bool = False,
) -> PairEnhancement:
    """The model's outputs for low-dose scans, told each scan's measured counts, conditioned on MLEM with the
    iterations the networks were trained on (`recon`, the n_iter-iteration image in low-dose units, is reused
    when those agree). A pair gives its regression and, with a residual model, its posterior; a single denoiser
    its posterior."""
    trained = data_iterations(enhancer.data, default=n_iter)  # scan models saw many: the evaluation's own
    if trained != n_iter:
        recon = mlem(low, projector, n_iter=trained)
    counts = low.flatten(1).sum(dim=1)  # = Σ s·λ of the MLEM image: MLEM preserves counts
    k = getattr(enhancer, "context", 0)  # 2.5D models: neighbours when the scans are adjacent slices, else 2D input
    recon = with_context(recon, k) if adjacent else recon.repeat(1, 2 * k + 1, 1, 1)
    if isinstance(enhancer, SingleNetworkEnhancer):
        method = "denoiser"
    else:
        method = "posterior" if enhancer.residual_model is not None else "mean"
    settings = enhancer.settings(method, **({} if method == "mean" else options))
    return enhancer.enhance(recon, fraction, counts, settings, keep_samples=method != "mean")


def evaluate_scans(
    phantoms: Phantoms,
    counts: float = 1e6,
    fractions: tuple[float, ...] = (0.25,),
    model: Any = None,
    samples: int = 8,
    seed: int = 0,
    tune_n: int = 32,
    n_iter: int = 50,
    enhance_options: dict[str, Any] | None = None,
    log=print,
) -> Evaluation:
    """Simulate the phantoms' scans (seeded), run every method at every fraction, score them against truth/full dose."""
    activity = phantoms.activity
    resolution = activity.shape[-1]
    device = activity.device
    projector = Projector(resolution, device=device)
    generator = torch.Generator(device).manual_seed(seed)
    scans = simulate_scans(activity, projector, counts, fractions, generator)
    mask = head_mask(scans.truth)
    # full-dose and noiseless MLEM do not depend on the fraction: one batched run for both
    both = mlem(torch.cat([scans.full, scans.expected]), projector, n_iter=n_iter)
    n = activity.shape[0]
    full_recon, noiseless = both[:n], both[n:]
    evaluation = Evaluation(phantoms, scans, mask, model_info=model_info(model))
    ids = list(phantoms.indices)
    adjacent = phantoms.source != "procedural" and ids == list(range(ids[0], ids[0] + len(ids)))
    for fraction in fractions:
        settings = tune_baselines(counts, fraction, resolution, n=tune_n, seed=seed, n_iter=n_iter, device=device)
        log(f"fraction {fraction:g}: early stop at {settings.early_stop_iter} iterations, "
            f"post-filter FWHM {settings.fwhm:g} px (tuned on {tune_n} procedural scans)")
        images = run_baselines(scans.low[fraction], projector, fraction, settings)
        std = calib = None
        if model is not None:
            options = {"samples": samples, "seeds": [seed + k for k in range(samples)], **(enhance_options or {})}
            recon = images["low_dose_mlem"] * fraction
            result = _enhance(model, scans.low[fraction], recon, n_iter, projector, fraction, options, adjacent)
            if isinstance(model, Enhancer):
                images["regression_mean"] = result.regression
            if result.std is not None or not isinstance(model, Enhancer):
                images["posterior_mean"] = result.mean
            std = result.std
            if std is not None:
                calib = score_posterior(result.mean, std, scans.truth, full_recon, mask, samples, result.samples)
        images["full_dose_mlem"] = full_recon
        images["noiseless_mlem"] = noiseless
        per_slice = score_images(images, scans.truth, mask, phantoms.regions, phantoms.region_names)
        summary = aggregate(per_slice)
        best = best_baseline(summary, LOW_DOSE_BASELINES)
        lesions = lesion_errors(images, scans.truth, phantoms.regions, phantoms.region_names)
        evaluation.results.append(DoseResult(fraction, settings, images, per_slice, summary, best, std, calib,
                                             lesions))
    return evaluation


def optional_model(network: str | None, no_model: bool, device: str | None = None) -> tuple[Any, str]:
    """(model or None, a note saying what is evaluated): --no-model, or no --network and no shipped weights → None.

    A regression or residual snapshot gives an Enhancer (the residual brings its regression network), a
    single conditional denoiser its LoadedModel. A --network that cannot be loaded is an error (ValueError),
    not a silent fallback to the baselines.
    """
    if no_model:
        return None, "Baselines only (--no-model): no posterior mean / uncertainty."
    from petdiff.inference.model import load_model, load_pair, read_role

    if network is not None:
        if read_role(network) == "denoiser":
            model = load_model(network, device=device)
            return SingleNetworkEnhancer(model), f"Model: {model.path} (single conditional denoiser)."
        enhancer = Enhancer(*load_pair(network, device=device))
        return enhancer, f"Model: {describe(enhancer)}."
    try:
        enhancer = Enhancer(*load_pair(None, device=device))
    except ValueError as exc:
        return None, f"Baselines only: no --network given and no shipped model ({exc})."
    return enhancer, f"Model: the shipped pair ({describe(enhancer)})."


def describe(enhancer: Enhancer) -> str:
    """'mean.safetensors (regression, 40 kimg) + residual.safetensors (residual diffusion, 20 kimg)'."""
    parts = [f"{enhancer.mean_model.path.name} (regression, {enhancer.mean_model.meta.get('kimg', '?')} kimg)"]
    if enhancer.residual_model is not None:
        residual = enhancer.residual_model
        parts.append(f"{residual.path.name} (residual diffusion, {residual.meta.get('kimg', '?')} kimg)")
    return " + ".join(parts)


def open_model(
    network: str | None, no_model: bool, samples: int, device: str | None, default_resolution: int
) -> tuple[torch.device, Any, str, int]:
    """The commands' common start: check the sample count, pick the device, load the model (or none).

    Returns (device, model or None, note, resolution: the network's, else `default_resolution`).
    """
    if samples < 2 and not no_model:
        raise ValueError(f"--samples: expected at least 2 posterior samples (for a std), found {samples}")
    from petdiff.training.distributed import select_device

    device = select_device(0, device)
    model, note = optional_model(network, no_model, device)
    resolution = model.resolution[0] if model is not None else default_resolution
    return device, model, note, resolution


def log_stderr(message: str) -> None:
    """Progress messages of the commands go to stderr, so stdout holds only the results."""
    print(message, file=sys.stderr, flush=True)


def model_info(model: Any) -> dict[str, Any] | None:
    """Path and the sidecar facts that matter for reading the numbers (kimg, target, normalisation, data, sampling)."""
    if model is None:
        return None
    keys = ("role", "kimg", "target", "normalization", "data", "sampling", "config_hash", "residual_std")
    if isinstance(model, SingleNetworkEnhancer):
        model = model.model
    if isinstance(model, Enhancer):
        loaded = [m for m in (model.mean_model, model.residual_model) if m is not None]
        return {m.meta.get("role", "denoiser"): {"path": str(m.path), **{k: m.meta[k] for k in keys if k in m.meta}}
                for m in loaded}
    return {"path": str(model.path), **{k: model.meta[k] for k in keys if k in model.meta}}
