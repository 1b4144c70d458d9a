"""The two losses of the residual-corrective pair (CorrDiff, Mardani et al. 2023; physicsnemo's
RegressionLoss / ResidualLoss), with the calling convention of EDMLoss: (net, images, condition,
class_labels, augment_pipe, generator) → per-pixel loss (B, C, H, W).

* RegressionLoss: ‖μθ(y, d) − x‖², which makes μθ the conditional mean E[x | y, d].
* ResidualLoss: EDM's denoising loss on r = (x − μ(y, d))·σ_d/σ_r with μ frozen, the network
  conditioned on (y, μ) and told d; σ_r is the residual's measured standard deviation, so the
  scaled residual has EDM's data std σ_d and its noise schedule fits.
* ResidualConsistencyLoss: consistency distillation of a trained residual model (the teacher) on the same
  scaled residual and condition, for one- or two-pass posterior samples (`diffusion.consistency`).
"""

from __future__ import annotations

import torch

from petdiff.diffusion.consistency import ConsistencyDistillationLoss
from petdiff.diffusion.loss import AugmentPipeLike, EDMLoss
from petdiff.models.dihedral import random_dihedral
from petdiff.models.rng import GeneratorLike, as_generator


class RegressionLoss:
    """‖μθ(y, d) − x‖² per pixel, with a random dihedral transform of each (x, y) pair."""

    def __call__(
        self,
        net: torch.nn.Module,
        images: torch.Tensor,
        condition: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        augment_pipe: AugmentPipeLike | None = None,
        generator: GeneratorLike = None,
    ) -> torch.Tensor:
        """Per-pixel squared error of the predicted conditional mean (augment_pipe is not used)."""
        if condition is None:
            raise ValueError("condition: the regression loss needs the low-dose image, found None")
        images, condition = random_dihedral(images, condition, generator=as_generator(generator))
        return (net(condition, class_labels=class_labels) - images) ** 2


class ResidualLoss:
    """EDM loss on the scaled residual (x − μ)·σ_d/σ_r, conditioned on (y, μ), with μ = mean_net(y, d) frozen.

    `edm` is the loss applied to the scaled residual (EDMLoss, or a consistency distillation loss); σ_d is its
    `sigma_data` unless given.
    """

    def __init__(self, mean_net: torch.nn.Module, residual_std: float, edm: EDMLoss | ConsistencyDistillationLoss,
                 sigma_data: float | None = None):
        if not residual_std > 0:
            raise ValueError(f"residual_std: expected a positive number, found {residual_std!r}")
        self.mean_net = mean_net.eval().requires_grad_(False)
        self.residual_scale = (edm.sigma_data if sigma_data is None else float(sigma_data)) / float(residual_std)
        self.edm = edm

    def residual(self, images: torch.Tensor, condition: torch.Tensor, class_labels: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scaled residual, μ) for a batch of targets and low-dose conditions."""
        with torch.no_grad():
            mean = self.mean_net(condition, class_labels=class_labels)
        return (images - mean) * self.residual_scale, mean

    def __call__(
        self,
        net: torch.nn.Module,
        images: torch.Tensor,
        condition: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        augment_pipe: AugmentPipeLike | None = None,
        generator: GeneratorLike = None,
    ) -> torch.Tensor:
        """Per-pixel weighted EDM loss of the residual model (augment_pipe is not used: dihedral instead)."""
        if condition is None:
            raise ValueError("condition: the residual loss needs the low-dose image, found None")
        generator = as_generator(generator)
        images, condition = random_dihedral(images, condition, generator=generator)
        residual, mean = self.residual(images, condition, class_labels)
        return self.edm(net, residual, condition=torch.cat([condition, mean], dim=1), class_labels=class_labels,
                        generator=generator)


class ResidualConsistencyLoss(ResidualLoss):
    """Consistency distillation of a residual model: ResidualLoss's residual and (y, μ) condition, the teacher's ODE."""

    def __init__(self, mean_net: torch.nn.Module, residual_std: float, teacher: torch.nn.Module,
                 num_scales: int = 18, sigma_min: float = 0.002, sigma_max: float = 10.0, rho: float = 7.0):
        super().__init__(mean_net, residual_std,
                         ConsistencyDistillationLoss(teacher, num_scales, sigma_min, sigma_max, rho),
                         sigma_data=float(teacher.sigma_data))
