"""Posterior enhancement of low-dose PET reconstructions: K conditional samples per slice → mean and spread.

Units: the input is a low-dose MLEM reconstruction in its own count units; outputs are in full-dose
reconstruction units (low-dose units / f, MLEM preserves counts). With the model's normaliser the condition
is y = 2·low/(s·f) − 1 where s is the full-dose scale (quantitative: s = max(smooth(low/f)); reference:
s = max(low)/f), and a sample x in the network range maps back to img = (x + 1)·s/2, so the posterior
standard deviation scales by s/2.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from petdiff.data.normalization import Normalizer
from petdiff.diffusion import parse_seeds, posterior_ensemble
from petdiff.diffusion.guidance import denoiser
from petdiff.inference.model import LoadedModel
from petdiff.inference.settings import sampling_settings
from petdiff.physics import Projector
from petdiff.recon import mlem
from petdiff.utils.validation import check_finite, check_fraction, check_non_negative


@dataclass(frozen=True)
class Enhancement:
    """Posterior summary per slice in full-dose units: mean, std (None for K = 1), samples (K,B,1,H,W) or None."""

    mean: torch.Tensor  # (B, 1, H, W)
    std: torch.Tensor | None  # (B, 1, H, W) unbiased spread over the K samples
    samples: torch.Tensor | None  # (K, B, 1, H, W) with keep_samples
    seeds: tuple[int, ...]  # seed of sample k
    skipped: tuple[int, ...] = ()  # all-zero input slices (outputs set to 0, not enhanced)


def _check_model(model: LoadedModel) -> None:
    """Require a loaded conditional (mode 'pet') model."""
    if not isinstance(model, LoadedModel):
        raise ValueError(f"model: expected a LoadedModel (petdiff.inference.load_model), found {type(model).__name__}")
    if model.mode != "pet":
        raise ValueError(
            f"model: enhancement needs a conditional PET network (sidecar mode 'pet'), found mode {model.mode!r} "
            f"in {model.path}; use `petdiff generate` for unconditional networks"
        )


def check_low_dose(low_dose: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
    """Require finite, non-negative (B, 1, H, W) slices at the network's resolution; returns them as float32."""
    if not isinstance(low_dose, torch.Tensor):
        raise ValueError(f"low_dose: expected a torch.Tensor (B, 1, H, W), found {type(low_dose).__name__}")
    if low_dose.ndim != 4 or low_dose.shape[1] != 1:
        raise ValueError(
            f"low_dose: expected slices of shape (B, 1, H, W), found shape {tuple(low_dose.shape)} "
            "(add the batch/channel axes, e.g. x[None, None] for one (H, W) slice)"
        )
    if not (low_dose.is_floating_point() or low_dose.dtype in (torch.uint8, torch.int16, torch.int32, torch.int64)):
        raise ValueError(f"low_dose: expected real numbers, found dtype {low_dose.dtype}")
    if low_dose.shape[0] == 0:
        raise ValueError("low_dose: expected at least one slice, found an empty batch")
    if tuple(low_dose.shape[-2:]) != tuple(resolution):
        h, w = resolution
        raise ValueError(
            f"low_dose: expected slices of the network's resolution {h}×{w}, found {low_dose.shape[-2]}×"
            f"{low_dose.shape[-1]}; resample them first (`petdiff enhance --resample`, or "
            "petdiff.phantoms.resample_images, which keeps the pixel values)"
        )
    low_dose = low_dose.float()
    check_finite("low_dose", low_dose)
    return check_non_negative("low_dose", low_dose)


def _check_fraction(fraction: float | torch.Tensor, batch: int) -> torch.Tensor:
    """f as a float32 (B,) tensor, every value in (0, 1]."""
    f = torch.as_tensor(fraction, dtype=torch.float32).detach().cpu()
    if f.ndim == 0:
        check_fraction("fraction", float(f))
        return f.expand(batch).clone()
    if f.shape != (batch,):
        raise ValueError(f"fraction: expected a number or one value per slice ({batch},), found {tuple(f.shape)}")
    for value in f.tolist():
        check_fraction("fraction", value)
    return f


def _warn_outside_training(model: LoadedModel, fraction: torch.Tensor) -> None:
    """Warn when f lies outside the dose fractions the network was trained on (sidecar data.fraction)."""
    trained = model.meta.get("data", {}).get("fraction")
    if trained is None:
        return
    lo, hi = (trained, trained) if isinstance(trained, (int, float)) else (min(trained), max(trained))
    outside = sorted({round(v, 6) for v in fraction.tolist() if not lo - 1e-6 <= v <= hi + 1e-6})
    if outside:
        warnings.warn(
            f"fraction: the network was trained on dose fractions in [{lo}, {hi}], found {outside}; "
            "the output may be miscalibrated",
            stacklevel=3,
        )


def _seed_list(seeds: str | int | Sequence[int] | None, samples: int) -> list[int]:
    """Seeds 0..K−1 by default; explicit seeds must number exactly `samples`."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples: expected an integer >= 1, found {samples!r}")
    if seeds is None:
        return list(range(samples))
    seed_list = parse_seeds(seeds, distinct=True)
    if len(seed_list) != samples:
        raise ValueError(f"seeds: expected {samples} seeds (samples={samples}), found {len(seed_list)}")
    return seed_list


def full_dose_scale(normalizer: Normalizer, low_dose: torch.Tensor, fraction: torch.Tensor) -> torch.Tensor:
    """Per-slice full-dose scale s (B,): quantitative max(smooth(low/f)); reference max(low)/f."""
    scale = normalizer.scale(low_dose, fraction.to(low_dose.device))
    return scale if normalizer.mode == "quantitative" else scale / fraction.to(low_dose.device)


def _progress_callback(bar: tqdm, num_steps: int, inner: Any) -> Any:
    """A sampler callback advancing `bar` by (chunk size)/num_steps samples per step (then calling `inner`)."""

    def callback(info: dict[str, Any]) -> None:
        bar.update(info["x"].shape[0] / num_steps)
        if inner is not None:
            inner(info)

    return callback


def enhance(
    model: LoadedModel,
    low_dose: torch.Tensor,
    fraction: float | torch.Tensor = 0.25,
    samples: int = 8,
    seeds: str | int | Sequence[int] | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    batch_size: int = 16,
    keep_samples: bool = False,
    progress: bool = False,
    **sampler_opts: Any,
) -> Enhancement:
    """K = `samples` posterior samples x_k ~ p(full dose | low_dose) per slice → mean, std in full-dose units.

    The condition is the low-dose image normalised with s·f, the samples are inverted with s (see the module
    docstring). Sample k uses seed k (0..K−1 by default) for all its noise, whatever the batch. Sampler defaults
    come from the snapshot's `sampling` section (else EDM Heun, 32 steps, no churn); `sampler_opts` (S_churn,
    sigma_max, ...) override them. All-zero slices are skipped with a warning and give zeros.
    Outputs are on low_dose's device; the network runs on its own.
    """
    _check_model(model)
    net = model.net
    low = check_low_dose(low_dose, model.resolution)
    batch = low.shape[0]
    f = _check_fraction(fraction, batch)
    seed_list = _seed_list(seeds, samples)
    name, opts = sampling_settings(model.meta.get("sampling"), net, sampler, steps, sampler_opts)
    _warn_outside_training(model, f)

    keep = low.flatten(1).amax(dim=1) > 0
    skipped = tuple(int(i) for i in torch.nonzero(~keep).flatten().tolist())
    if skipped:
        warnings.warn(
            f"low_dose: slice(s) {list(skipped)} are all zero; their outputs are set to 0 (not enhanced)", stacklevel=2
        )
    out_device = low.device
    mean = torch.zeros_like(low)
    std = torch.zeros_like(low) if samples >= 2 else None
    kept_samples = low.new_zeros((samples, *low.shape)) if keep_samples else None
    if not bool(keep.any()):
        return Enhancement(mean, std, kept_samples, tuple(seed_list), skipped)

    device = model.device
    rows = torch.nonzero(keep).flatten()
    low_kept, f_kept = low[rows.to(low.device)].to(device), f[rows.cpu()].to(device)
    normalizer = Normalizer(model.meta["normalization"])
    s = full_dose_scale(normalizer, low_kept, f_kept)
    condition = normalizer.normalize(low_kept, s * f_kept)

    total = len(rows) * samples
    with contextlib.ExitStack() as stack:
        if progress:
            bar = stack.enter_context(tqdm(total=total, unit="sample", desc="enhance", leave=False))
            opts["callback"] = _progress_callback(bar, opts["num_steps"], opts.get("callback"))
        result = posterior_ensemble(
            lambda cond: denoiser(net, condition=cond),
            condition,
            seed_list,
            image_channels=net.img_channels,
            sampler=name,
            batch_size=batch_size,
            keep_samples=keep_samples,
            **opts,
        )

    index = rows.to(out_device)
    mean[index] = normalizer.invert(result.mean, s).to(out_device)
    if std is not None:
        std[index] = (result.std * (s / 2).view(-1, 1, 1, 1)).to(out_device)
    if kept_samples is not None:
        inverted = torch.stack([normalizer.invert(x, s) for x in result.samples])
        kept_samples[:, index] = inverted.to(out_device)
    return Enhancement(mean, std, kept_samples, tuple(seed_list), skipped)


def training_iterations(model: LoadedModel, default: int = 50) -> int:
    """MLEM iterations the network's training pairs used (sidecar data.n_iter), else `default`."""
    return data_iterations(model.meta.get("data", {}), default)


def data_iterations(data: dict[str, Any], default: int = 50) -> int:
    """The `n_iter` of a sidecar's data section when it is an integer, else `default`."""
    n_iter = data.get("n_iter", default)
    return int(n_iter) if isinstance(n_iter, int) and not isinstance(n_iter, bool) else default


def reconstruct(model: LoadedModel, sinograms: torch.Tensor, n_iter: int | None = None) -> torch.Tensor:
    """MLEM (B, 1, H, W) of low-dose sinograms (B, n_angles, n_bins) with the Projector at the network's resolution.

    `n_iter` None = the iterations the training pairs used (sidecar data.n_iter, else 50), so the condition
    has the noise texture the network learnt. The reconstruction stays on the sinograms' device.
    """
    height, width = model.resolution
    if height != width:
        raise ValueError(f"model: sinogram input needs a square network, found resolution {height}×{width}")
    projector = Projector(height, device=sinograms.device if isinstance(sinograms, torch.Tensor) else None)
    if isinstance(sinograms, torch.Tensor) and not sinograms.is_floating_point():
        sinograms = sinograms.float()
    n_iter = training_iterations(model) if n_iter is None else n_iter
    return mlem(sinograms, projector, n_iter=n_iter)

