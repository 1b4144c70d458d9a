"""Explicit random draws: every draw goes through a torch.Generator (or a seed), never hidden global state."""

from __future__ import annotations

import torch

GeneratorLike = torch.Generator | int | None


def as_generator(generator: GeneratorLike) -> torch.Generator | None:
    """Turn a seed into a CPU torch.Generator; pass a Generator (or None = torch's default stream) through."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, bool) or not isinstance(generator, int):
        found = type(generator).__name__
        raise ValueError(f"generator: expected a torch.Generator, an int seed or None, found {found}")
    return torch.Generator().manual_seed(generator)


def _draw_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    """Draw on the generator's own device (a CPU generator cannot fill a CUDA tensor), else on `device`."""
    return generator.device if generator is not None else device


def rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """U[0, 1) float32 samples of `shape` on `device`, drawn from `generator`."""
    out = torch.rand(shape, generator=generator, device=_draw_device(generator, device))
    return out.to(device)


def randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """N(0, 1) float32 samples of `shape` on `device`, drawn from `generator`."""
    out = torch.randn(shape, generator=generator, device=_draw_device(generator, device))
    return out.to(device)


def randint(high: int, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Uniform int64 samples in {0, …, high−1} of `shape` on `device`, drawn from `generator`."""
    out = torch.randint(high, shape, generator=generator, device=_draw_device(generator, device))
    return out.to(device)
