"""Emission data simulation: expected sinograms, Poisson counts Y ~ Poisson(t·Aλ + s), binomial thinning."""

from __future__ import annotations

import numbers
from typing import NamedTuple

import torch

from petdiff.physics.projector import Projector
from petdiff.utils.validation import check_fraction, check_image_batch, check_non_negative, check_positive


class ExpectedSinogram(NamedTuple):
    """Expected counts per LOR: `true` = t·Aλ and `background` = s, (B, n_angles, n_bins); `scale` = t, (B,)."""

    true: torch.Tensor
    background: torch.Tensor
    scale: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """t·Aλ + s, the Poisson mean."""
        return self.true + self.background


def _check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    """Require the generator (if any) to live on the data's device type."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator: expected a torch.Generator or None, found {type(generator).__name__}")
    if generator.device.type != device.type:
        raise ValueError(f"generator: expected a generator on device type {device.type!r}, found {generator.device}")


def _background(background: float | torch.Tensor | None, true: torch.Tensor, counts: float) -> torch.Tensor:
    """s per LOR: a float f ≥ 0 spreads f·counts uniformly over the LORs; a tensor gives expected counts per LOR."""
    if background is None:
        return torch.zeros_like(true)
    if isinstance(background, numbers.Real) and not isinstance(background, bool):
        fraction = float(background)
        if not fraction >= 0 or fraction == float("inf"):
            raise ValueError(f"background: expected a finite fraction ≥ 0 of the true counts, found {background!r}")
        return torch.full_like(true, fraction * counts / (true.shape[1] * true.shape[2]))
    if not isinstance(background, torch.Tensor) or not background.is_floating_point():
        raise ValueError(
            f"background: expected None, a float fraction or a floating tensor of expected counts per LOR, "
            f"found {type(background).__name__}"
        )
    try:
        out = torch.broadcast_to(background.to(true), true.shape)
    except RuntimeError:
        raise ValueError(
            f"background: expected a tensor broadcastable to (B, n_angles, n_bins) = {tuple(true.shape)}, "
            f"found shape {tuple(background.shape)}"
        ) from None
    return check_non_negative("background", out).clone()


def expected_sinogram(
    activity: torch.Tensor,
    projector: Projector,
    counts: float = 1e6,
    background: float | torch.Tensor | None = None,
) -> ExpectedSinogram:
    """Poisson means t·Aλ + s with t = counts / Σ_i (Aλ)_i per slice (expected true counts = `counts`)."""
    check_image_batch("activity", activity)
    if tuple(activity.shape[2:]) != projector.geometry.image_shape:
        raise ValueError(
            f"activity: expected images of size (H, W) = {projector.geometry.image_shape}, "
            f"found shape {tuple(activity.shape)}"
        )
    check_non_negative("activity", activity)
    counts = check_positive("counts", counts)
    projected = projector.forward(activity)
    totals = projected.double().sum(dim=(1, 2))
    empty = (totals <= 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"activity: expected every slice to have positive projected activity (to scale it to counts={counts:g}), "
            f"found zero total in slice(s) {empty[:10]}{' …' if len(empty) > 10 else ''} (all-zero image?)"
        )
    scale = counts / totals
    true = projected * scale.to(projected.dtype)[:, None, None]
    return ExpectedSinogram(true, _background(background, true, counts), scale)


def poisson_sinogram(
    activity: torch.Tensor,
    projector: Projector,
    counts: float = 1e6,
    generator: torch.Generator | None = None,
    background: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Y_i ~ Poisson(t·(Aλ)_i + s_i), float32 integer counts (B, n_angles, n_bins); E[Σ true counts] = `counts`.

    `background` is None, a float f (s_i = f·counts/d: a uniform background of f times the true counts),
    or a tensor of expected background counts per LOR broadcastable to (B, n_angles, n_bins).
    """
    _check_generator(generator, activity.device)
    mean = expected_sinogram(activity, projector, counts, background).total
    return torch.poisson(mean.float(), generator=generator)


def _fractions(fraction: float | torch.Tensor, counts: torch.Tensor) -> torch.Tensor | float:
    """A float in (0, 1], or a tensor of them: per slice when 1-D of length B = counts.shape[0], else broadcast."""
    if not isinstance(fraction, torch.Tensor) or fraction.ndim == 0:
        return check_fraction("fraction", fraction.item() if isinstance(fraction, torch.Tensor) else fraction)
    f = fraction.to(device=counts.device, dtype=counts.dtype)
    if f.ndim == 1 and counts.ndim >= 2 and f.shape[0] == counts.shape[0]:
        f = f.reshape(-1, *([1] * (counts.ndim - 1)))
    try:
        f = torch.broadcast_to(f, counts.shape)
    except RuntimeError:
        raise ValueError(
            f"fraction: expected a float, a (B,) tensor with B = {counts.shape[0] if counts.ndim else 0} or a tensor "
            f"broadcastable to {tuple(counts.shape)}, found shape {tuple(fraction.shape)}"
        ) from None
    if f.numel() and not bool(((f > 0) & (f <= 1)).all()):
        raise ValueError(
            f"fraction: expected values in (0, 1], found range [{float(f.min()):.6g}, {float(f.max()):.6g}]"
        )
    return f


def thin(
    sinogram: torch.Tensor, fraction: float | torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Y_low | Y ~ Binomial(Y, f): the counts of an f-times shorter acquisition of the same scan.

    `fraction` f is a float in (0, 1], a (B,) tensor (one fraction per slice along the first axis), or a
    tensor broadcastable to the sinogram. Returns the sinogram's dtype (float32 for integer input).
    """
    if not isinstance(sinogram, torch.Tensor):
        raise ValueError(f"sinogram: expected a torch.Tensor of counts, found {type(sinogram).__name__}")
    counts = sinogram if sinogram.is_floating_point() else sinogram.float()
    fraction = _fractions(fraction, counts)
    _check_generator(generator, sinogram.device)
    check_non_negative("sinogram", counts)
    if counts.numel() and not bool((counts == torch.round(counts)).all()):
        raise ValueError("sinogram: expected integer counts, found non-integer values")
    if isinstance(fraction, float):
        if fraction == 1.0:
            return counts.clone()
        fraction = torch.full_like(counts, fraction)
    return torch.binomial(counts, fraction.contiguous(), generator=generator)
