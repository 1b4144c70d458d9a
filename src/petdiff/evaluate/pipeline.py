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
from petdiff.inference.enhancers import Enhancer
from petdiff.inference.volume import VolumeEnhancement, enhance_volume
from petdiff.physics import Projector
from petdiff.recon import MLEM_ITERATIONS, mlem

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
    enhancer: Enhancer, low: torch.Tensor, recon: torch.Tensor, n_iter: int,
    projector: Projector, fraction: float, options: dict[str, Any], adjacent: bool = False,
) -> VolumeEnhancement:
    """The model's outputs for low-dose scans, conditioned on MLEM with the iterations the networks were trained
    on (`recon`, the n_iter-iteration image in low-dose counts, is reused when those agree; scan models saw many:
    the evaluation's own). Adjacent slices of one volume go in with their 2.5D context, else each slice on its own.
    The enhancer's fullest method runs: a pair's posterior (or its regression alone), a denoiser's."""
    trained = enhancer.spec.n_iter or n_iter
    if trained != n_iter:
        recon = mlem(low, projector, n_iter=trained)
    method = enhancer.methods[-1]
    settings = enhancer.settings(method, **({} if method == "mean" else options))
    return enhance_volume(enhancer, recon, fraction, settings, independent=not adjacent, keep_samples=method != "mean")


def evaluate_scans(
    phantoms: Phantoms,
    counts: float = 1e6,
    fractions: tuple[float, ...] = (0.25,),
    model: Any = None,
    samples: int = 8,
    seed: int = 0,
    tune_n: int = 32,
    n_iter: int = MLEM_ITERATIONS,
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
            if result.regression is not None:
                images["regression_mean"] = result.regression
            if result.samples is not None:
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

    A regression or residual snapshot gives the pair's enhancer (the residual brings its regression network), a
    single conditional denoiser its own. A --network that cannot be loaded is an error (ValueError),
    not a silent fallback to the baselines.
    """
    if no_model:
        return None, "Baselines only (--no-model): no posterior mean / uncertainty."
    from petdiff.inference.enhancers import load_enhancer
    from petdiff.inference.model import read_role

    if network is not None:
        method = "denoiser" if read_role(network) == "denoiser" else None
        enhancer = load_enhancer(network, method, device=device)
        return enhancer, f"Model: {describe(enhancer)}."
    try:
        enhancer = load_enhancer(None, device=device)
    except ValueError as exc:
        return None, f"Baselines only: no --network given and no shipped model ({exc})."
    return enhancer, f"Model: the shipped pair ({describe(enhancer)})."


ROLE_NAMES = {"regression": "regression", "residual": "residual diffusion", "denoiser": "single conditional denoiser",
              "count_level": "count level"}


def describe(enhancer: Enhancer) -> str:
    """'regression.safetensors (regression, 30 kimg) + residual.safetensors (residual diffusion, 20 kimg)'."""
    return " + ".join(f"{m.path.name} ({ROLE_NAMES[m.role]}, {m.meta.get('kimg', '?')} kimg)"
                      for m in enhancer.models)


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
    resolution = model.spec.resolution[0] if model is not None else default_resolution
    return device, model, note, resolution


def log_stderr(message: str) -> None:
    """Progress messages of the commands go to stderr, so stdout holds only the results."""
    print(message, file=sys.stderr, flush=True)


def model_info(model: Any) -> dict[str, Any] | None:
    """Path and the sidecar facts that matter for reading the numbers (kimg, target, normalisation, data, sampling)."""
    if model is None:
        return None
    keys = ("role", "kimg", "target", "normalization", "data", "sampling", "config_hash", "residual_std")
    facts = {m.meta.get("role", "denoiser"): {"path": str(m.path), **{k: m.meta[k] for k in keys if k in m.meta}}
             for m in model.models}
    return facts.get("denoiser", facts)  # a single denoiser: its facts alone
