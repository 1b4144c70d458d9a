"""Boundary checks that reject bad input with a message naming the argument, expected and found."""

from __future__ import annotations

import math

import torch


def _describe(x: torch.Tensor) -> str:
    """Short description of a tensor for error messages."""
    return f"tensor of shape {tuple(x.shape)} and dtype {x.dtype}"


def check_image_batch(name: str, x: torch.Tensor, channels: int | None = 1) -> torch.Tensor:
    """Require a (B, C, H, W) floating tensor (with C == channels when given)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor of shape (B, C, H, W), found {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name}: expected shape (B, C, H, W), found {_describe(x)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name}: expected {channels} channel(s) in (B, C, H, W), found {_describe(x)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, found {_describe(x)}")
    return x


def check_finite(name: str, x: torch.Tensor) -> torch.Tensor:
    """Require every element to be finite (no NaN or inf)."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        n_bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name}: expected finite values, found {n_bad} NaN/inf element(s) in {_describe(x)}")
    return x


def check_non_negative(name: str, x: torch.Tensor) -> torch.Tensor:
    """Require finite, non-negative values."""
    check_finite(name, x)
    if x.numel() and bool((x < 0).any()):
        raise ValueError(f"{name}: expected non-negative values, found minimum {float(x.min()):.6g}")
    return x


def check_positive(name: str, value: float) -> float:
    """Require a finite scalar > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a positive number, found {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: expected a positive finite number, found {value!r}")
    return v


def check_fraction(name: str, value: float) -> float:
    """Require a scalar in the half-open interval (0, 1]."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number in (0, 1], found {value!r}") from None
    if not (0.0 < v <= 1.0):
        raise ValueError(f"{name}: expected a number in (0, 1], found {value!r}")
    return v
