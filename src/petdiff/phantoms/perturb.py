"""Tissue-concentration perturbation (science.md §4): one Dirichlet draw per slice over its tissue classes."""

from __future__ import annotations

import torch

from petdiff.phantoms.dirichlet import sample_dirichlet
from petdiff.utils.validation import check_non_negative, check_positive


def _check_labels(labels: torch.Tensor, concentrations: torch.Tensor) -> None:
    """Labels (N,1,H,W) integer in [0, K) and concentrations (N,K) or (K,) finite and non-negative."""
    if not isinstance(labels, torch.Tensor) or labels.ndim != 4 or labels.shape[1] != 1:
        found = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels: expected a tensor of shape (N, 1, H, W), found {found}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels: expected an integer tensor, found dtype {labels.dtype}")
    if not isinstance(concentrations, torch.Tensor) or concentrations.ndim != 2:
        found = tuple(concentrations.shape) if isinstance(concentrations, torch.Tensor) else type(concentrations)
        raise ValueError(f"concentrations: expected a tensor of shape (N, K), found {found}")
    if concentrations.shape[0] != labels.shape[0]:
        raise ValueError(
            f"concentrations: expected {labels.shape[0]} rows (one per label image), found {concentrations.shape[0]}"
        )
    check_non_negative("concentrations", concentrations.float())
    n_classes = concentrations.shape[1]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(
            f"labels: expected class indices in [0, {n_classes}) to index concentrations, "
            f"found range [{int(labels.min())}, {int(labels.max())}]"
        )


def class_pixel_counts(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """n[i, o] = number of pixels of slice i with label o, as float (N, K)."""
    flat = labels.reshape(labels.shape[0], -1).long()
    counts = torch.zeros(labels.shape[0], n_classes, dtype=torch.float64, device=labels.device)
    return counts.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float64))


def perturbed_class_concentrations(
    labels: torch.Tensor,
    concentrations: torch.Tensor,
    alpha: float,
    generator: torch.Generator | int | None = None,
) -> torch.Tensor:
    """New per-class concentrations (N, K): s·D with D ~ Dirichlet(α·c) over the classes present in each slice.

    c_o = λ_o / Σ_{o'∈present} λ_{o'} (classes absent or with λ_o = 0 get D_o = 0), and
    s = Σ_o n_o λ_o / Σ_o n_o D_o keeps each slice's total activity Σ_j x_j (n_o = pixels of class o).
    """
    _check_labels(labels, concentrations)
    alpha = check_positive("alpha", alpha)
    conc = concentrations.to(device=labels.device, dtype=torch.float64)
    counts = class_pixel_counts(labels, conc.shape[1])
    present = (counts > 0) & (conc > 0)
    lam = torch.where(present, conc, torch.zeros_like(conc))
    total = lam.sum(dim=1, keepdim=True)
    c = lam / total.clamp_min(torch.finfo(torch.float64).tiny)
    d = sample_dirichlet(alpha * c, generator)
    old_total = (counts * lam).sum(dim=1, keepdim=True)
    new_total = (counts * d).sum(dim=1, keepdim=True)
    scale = old_total / new_total.clamp_min(torch.finfo(torch.float64).tiny)
    return torch.where(present, d * scale, conc).to(concentrations.dtype)


def perturb_concentrations(
    labels: torch.Tensor,
    concentrations: torch.Tensor,
    alpha: float,
    generator: torch.Generator | int | None = None,
) -> torch.Tensor:
    """Perturbed activity (N,1,H,W): x_j = s·D_{label(j)}, D ~ Dirichlet(α·c), s keeps Σ_j x_j (see science.md §4).

    Large α = small variation (Var D_o = c_o(1−c_o)/(α+1)); zero-concentration classes (background) stay 0.
    """
    new_conc = perturbed_class_concentrations(labels, concentrations, alpha, generator)
    index = labels.reshape(labels.shape[0], -1).long()
    return torch.gather(new_conc.float(), 1, index).reshape(labels.shape)
