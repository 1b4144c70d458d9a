"""On-the-fly (full-dose, low-dose) reconstruction pairs: science.md §4.

phantom → optional tissue perturbation → full-dose Poisson sinogram → binomial thinning → MLEM of
both (one batched sparse product) → normalised images sharing one scale (see normalization.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch

from petdiff.data.normalization import Normalizer
from petdiff.phantoms.perturb import class_pixel_counts, perturbed_class_concentrations
from petdiff.physics import Projector, expected_sinogram, thin
from petdiff.recon import MLEM_ITERATIONS, mlem
from petdiff.utils.validation import check_fraction, check_image_batch, check_non_negative, check_positive

Range = float | tuple[float, float] | Sequence[float]
TARGETS = ("full_dose", "truth")


@dataclass
class Pairs:
    """A batch of simulated pairs; images are normalised to the network range, scales invert them."""

    full_dose: torch.Tensor  # (B, 1, H, W) normalised full-dose MLEM
    low_dose: torch.Tensor  # (B, 1, H, W) normalised low-dose MLEM (in full-dose units before normalising)
    truth: torch.Tensor  # (B, 1, H, W) normalised true activity t·λ (the noiseless full-dose image)
    scale: torch.Tensor  # (B,) full-dose scale: Normalizer.invert(x, scale) gives full-dose recon units
    counts: torch.Tensor  # (B,) expected full-dose true counts
    fraction: torch.Tensor  # (B,) dose fraction of the low-dose scan

    def target(self, kind: str = "full_dose") -> torch.Tensor:
        """The training target: the full-dose reconstruction (default) or the true activity."""
        if kind not in TARGETS:
            raise ValueError(f"target: expected one of {TARGETS}, found {kind!r}")
        return self.full_dose if kind == "full_dose" else self.truth

    def to(self, device: torch.device | str) -> Pairs:
        """The same pairs on another device."""
        return Pairs(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def _range(name: str, value: Range, check) -> tuple[float, float]:
    """A fixed value v → (v, v); a pair (lo, hi) with lo ≤ hi, both validated by `check`."""
    if isinstance(value, (int, float)):
        v = check(name, value)
        return v, v
    values = list(value)
    if len(values) != 2:
        raise ValueError(f"{name}: expected a number or a (low, high) pair, found {value!r}")
    lo, hi = check(name, values[0]), check(name, values[1])
    if lo > hi:
        raise ValueError(f"{name}: expected low ≤ high in (low, high), found {value!r}")
    return lo, hi


def perturb_activity(
    activity: torch.Tensor,
    labels: torch.Tensor,
    alpha: float,
    generator: torch.Generator | None = None,
    flat: bool = False,
) -> torch.Tensor:
    """Scale each tissue class o by D_o / c_o with D ~ Dirichlet(α·c) (science.md §4), c = class mean activities.

    Scaling (rather than overwriting with the class value) keeps partial-volume edges and texture;
    for piecewise-constant phantoms such as BrainWeb levels it is exactly the Dirichlet assignment.
    With `flat`, c is uniform over the classes with activity (α = their number gives contrasts uniform
    on the simplex): any tissue may come out hottest, as in the perturbed BrainWeb slices.
    """
    if labels.shape != activity.shape:
        raise ValueError(f"labels: expected the shape of activity {tuple(activity.shape)}, found {tuple(labels.shape)}")
    index = labels.reshape(labels.shape[0], -1).long()
    n_classes = int(index.max()) + 1 if index.numel() else 1
    pixels = class_pixel_counts(labels, n_classes)
    sums = torch.zeros_like(pixels).scatter_add_(1, index, activity.reshape(index.shape).double())
    means = (sums / pixels.clamp_min(1)).float()
    prior = torch.where(means > 0, torch.ones_like(means), torch.zeros_like(means)) if flat else means
    new = perturbed_class_concentrations(labels, prior, alpha, generator)
    factor = torch.where(means > 0, new / means.clamp_min(torch.finfo(torch.float32).tiny), torch.ones_like(means))
    return activity * torch.gather(factor, 1, index).reshape(activity.shape)


class PairSimulator:
    """Simulates (full-dose, low-dose) MLEM pairs from activity phantoms, batched on their device.

    `counts` (expected full-dose true counts per slice, reference 1e6 at 64×64) and `fraction`
    (low-dose fraction, reference 0.25) are numbers or (low, high) ranges: per sample, counts are
    drawn log-uniformly and fractions uniformly, so one model can learn many dose settings.
    `alpha` enables the Dirichlet tissue perturbation (needs labels); `random_contrast` is the
    probability that a phantom's tissue contrasts are drawn from the flat prior instead (see
    :func:`perturb_activity`).
    """

    def __init__(
        self,
        projector: Projector,
        counts: Range = 1e6,
        fraction: Range = 0.25,
        n_iter: int = MLEM_ITERATIONS,
        alpha: float | None = None,
        normalization: str = "quantitative",
        random_contrast: float = 0.0,
    ) -> None:
        self.projector = projector
        self.counts = _range("counts", counts, check_positive)
        self.fraction = _range("fraction", fraction, check_fraction)
        if not isinstance(n_iter, int) or n_iter < 1:
            raise ValueError(f"n_iter: expected a positive integer, found {n_iter!r}")
        self.n_iter = n_iter
        self.alpha = None if alpha is None else check_positive("alpha", alpha)
        if not 0.0 <= float(random_contrast) <= 1.0:
            raise ValueError(f"random_contrast: expected a probability in [0, 1], found {random_contrast!r}")
        self.random_contrast = float(random_contrast)
        self.normalizer = Normalizer(normalization)

    def draw_settings(
        self, batch: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample (counts, fraction): log-uniform counts, uniform fraction within the ranges."""
        u = torch.rand(2, batch, generator=generator, device=device, dtype=torch.float64)
        lo, hi = math.log(self.counts[0]), math.log(self.counts[1])
        counts = torch.exp(lo + (hi - lo) * u[0])
        fraction = self.fraction[0] + (self.fraction[1] - self.fraction[0]) * u[1]
        return counts.float(), fraction.float()

    def __call__(
        self,
        activity: torch.Tensor,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        counts: torch.Tensor | float | None = None,
        fraction: torch.Tensor | float | None = None,
    ) -> Pairs:
        """Simulate one pair per activity image (B, 1, H, W); `labels` enable tissue perturbation."""
        check_image_batch("activity", activity)
        check_non_negative("activity", activity)
        batch, device = activity.shape[0], activity.device
        drawn_counts, drawn_fraction = self.draw_settings(batch, generator, device)
        counts = drawn_counts if counts is None else torch.as_tensor(counts, device=device).float().expand(batch)
        fraction = (
            drawn_fraction if fraction is None else torch.as_tensor(fraction, device=device).float().expand(batch)
        )
        if self.alpha is not None:
            if labels is None:
                raise ValueError("labels: tissue perturbation (alpha set) needs the label map, found None")
            perturbed = perturb_activity(activity, labels, self.alpha, generator)
            if self.random_contrast > 0:
                # A share of the phantoms get tissue contrasts drawn uniformly on the simplex instead.
                flat = perturb_activity(activity, labels, self.alpha, generator, flat=True)
                pick = torch.rand(batch, generator=generator, device=device) < self.random_contrast
                perturbed = torch.where(pick.view(-1, 1, 1, 1), flat, perturbed)
            activity = perturbed

        # Poisson means t·Aλ with t = counts / Σ Aλ per slice (the expected total true counts).
        unit = expected_sinogram(activity, self.projector, counts=1.0)
        mean = unit.true * counts.view(-1, 1, 1)
        full_counts = torch.poisson(mean, generator=generator)
        low_counts = thin(full_counts, fraction, generator=generator)
        recon = mlem(torch.cat([full_counts, low_counts]), self.projector, n_iter=self.n_iter)
        full, low = recon[:batch], recon[batch:]
        truth = activity * (unit.scale.to(activity.dtype) * counts).view(-1, 1, 1, 1)

        full_scale, low_scale = self.normalizer.pair_scales(full, low, fraction)
        return Pairs(
            full_dose=self.normalizer.normalize(full, full_scale),
            low_dose=self.normalizer.normalize(low, low_scale),
            truth=self.normalizer.normalize(truth, full_scale),
            scale=full_scale,
            counts=counts,
            fraction=fraction,
        )
