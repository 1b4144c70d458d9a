"""Denoiser callables for the samplers: ``denoise(x, sigma) -> D(x; σ)``, plain or with classifier-free guidance."""

from __future__ import annotations

from collections.abc import Callable

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def denoiser(net: torch.nn.Module, condition: torch.Tensor | None = None,
             class_labels: torch.Tensor | None = None) -> Denoiser:
    """denoise(x, σ) = D(x; σ, condition, class_labels) with the augmentation label fixed at 0 (no augmentation)."""

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """D(x; σ)."""
        kwargs = {} if condition is None else {"condition": condition}
        return net(x, sigma, class_labels=class_labels, **kwargs)

    return denoise


def guided_denoiser(net: torch.nn.Module, class_labels: torch.Tensor, guidance: float = 1.0,
                    condition: torch.Tensor | None = None) -> Denoiser:
    """Classifier-free guidance: denoise(x, σ) = D_u + w·(D_c − D_u), D_u with the all-zero (dropped) label.

    w = 1 is the plain conditional denoiser and w = 0 the unconditional one (each a single pass); otherwise both
    passes run as one batch of 2B.
    """
    label_dim = getattr(net, "label_dim", 0)
    if not label_dim:
        raise ValueError("net: classifier-free guidance needs a class-conditional network (label_dim > 0), "
                         f"found label_dim={label_dim}")
    if not isinstance(class_labels, torch.Tensor) or class_labels.ndim != 2 or class_labels.shape[1] != label_dim:
        found = tuple(class_labels.shape) if isinstance(class_labels, torch.Tensor) else type(class_labels).__name__
        raise ValueError(f"class_labels: expected a (B, {label_dim}) tensor, found {found}")
    w = float(guidance)
    if w == 1.0:
        return denoiser(net, condition, class_labels)
    if w == 0.0:
        return denoiser(net, condition, torch.zeros_like(class_labels))

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """D_u + w (D_c − D_u), both passes in one forward of batch 2B."""
        b = x.shape[0]
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
        sigma2 = sigma.reshape(1).expand(2 * b) if sigma.numel() == 1 else sigma.reshape(b).repeat(2)
        if class_labels.shape[0] not in (1, b):
            raise ValueError(f"class_labels: expected batch 1 or {b} (that of x), found {tuple(class_labels.shape)}")
        labels = class_labels.to(x.device).expand(b, label_dim)
        labels2 = torch.cat([torch.zeros_like(labels), labels])
        kwargs = {} if condition is None else {"condition": torch.cat([condition, condition])}
        d_u, d_c = net(torch.cat([x, x]), sigma2, class_labels=labels2, **kwargs).chunk(2)
        return d_u + w * (d_c - d_u)

    return denoise
