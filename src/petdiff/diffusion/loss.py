"""EDM training loss (Karras et al. 2022, eq. 2 and Table 1), unconditional or conditioned on a low-dose image."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from petdiff.models.rng import GeneratorLike, as_generator, randn
from petdiff.utils.validation import check_image_batch, check_positive

AugmentPipeLike = Callable[..., tuple[torch.Tensor, torch.Tensor]]


class LossTerms(NamedTuple):
    """Everything one loss evaluation drew and computed (for tests, logging and diagnostics)."""

    loss: torch.Tensor  # (B, C, H, W) per-pixel weighted loss λ(σ)·(D − x₀)²
    sigma: torch.Tensor  # (B, 1, 1, 1) sampled noise levels
    weight: torch.Tensor  # (B, 1, 1, 1) λ(σ)
    denoised: torch.Tensor  # D(x₀ + σn; σ)
    target: torch.Tensor  # x₀ after augmentation
    condition: torch.Tensor | None  # condition after the same augmentation
    augment_labels: torch.Tensor | None


class EDMLoss:
    """λ(σ)·‖D(x₀ + σn; σ, y) − x₀‖², ln σ ~ N(P_mean, P_std²), λ(σ) = (σ² + σ_d²)/(σ·σ_d)², n ~ N(0, I)."""

    def __init__(self, P_mean: float = -1.2, P_std: float = 1.2, sigma_data: float = 0.5):
        self.P_mean = float(P_mean)
        self.P_std = check_positive("P_std", P_std)
        self.sigma_data = check_positive("sigma_data", sigma_data)

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """λ(σ) = (σ² + σ_d²)/(σ·σ_d)² = 1 / c_out(σ)²."""
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def sample_sigma(self, batch: int, device: torch.device, generator: GeneratorLike = None) -> torch.Tensor:
        """σ = exp(P_mean + P_std·z), z ~ N(0, 1), one per image, shape (B, 1, 1, 1)."""
        z = randn((batch, 1, 1, 1), as_generator(generator), device)
        return (z * self.P_std + self.P_mean).exp()

    def terms(
        self,
        net: torch.nn.Module,
        images: torch.Tensor,
        condition: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        augment_pipe: AugmentPipeLike | None = None,
        generator: GeneratorLike = None,
    ) -> LossTerms:
        """Draw σ (then augmentation, then noise) from `generator` and return the loss with its ingredients."""
        check_image_batch("images", images, channels=None)
        if condition is not None:
            check_image_batch("condition", condition, channels=None)
            if condition.shape[0] != images.shape[0] or condition.shape[-2:] != images.shape[-2:]:
                raise ValueError(f"condition: expected batch and spatial size {images.shape[0]}×"
                                 f"{tuple(images.shape[-2:])} to match images, found {tuple(condition.shape)}")
        generator = as_generator(generator)
        sigma = self.sample_sigma(images.shape[0], images.device, generator)
        weight = self.weight(sigma)

        augment_labels = None
        if augment_pipe is not None:
            # One transform for the stacked (full-dose, low-dose) channels keeps the pair aligned.
            stacked = images if condition is None else torch.cat([images, condition.to(images.dtype)], dim=1)
            stacked, augment_labels = augment_pipe(stacked, generator=generator)
            images, condition = stacked[:, : images.shape[1]], (None if condition is None
                                                                 else stacked[:, images.shape[1]:])

        noise = randn(tuple(images.shape), generator, images.device) * sigma  # only x₀ is noised, never y
        kwargs = {} if augment_labels is None else {"augment_labels": augment_labels}
        if condition is not None:
            kwargs["condition"] = condition
        denoised = net(images + noise, sigma, class_labels=class_labels, **kwargs)
        loss = weight * (denoised - images) ** 2
        return LossTerms(loss, sigma, weight, denoised, images, condition, augment_labels)

    def __call__(
        self,
        net: torch.nn.Module,
        images: torch.Tensor,
        condition: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        augment_pipe: AugmentPipeLike | None = None,
        generator: GeneratorLike = None,
    ) -> torch.Tensor:
        """Per-pixel weighted loss (B, C, H, W); the training loop reduces it (sum or mean) itself."""
        return self.terms(net, images, condition, class_labels, augment_pipe, generator).loss
