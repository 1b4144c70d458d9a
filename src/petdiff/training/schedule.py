"""Learning rate as a function of training progress: linear warm-up, then cosine annealing."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def _check_number(name: str, value: float, minimum: float, strict: bool = False) -> float:
    """Require a finite real number >= minimum (> minimum when strict)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, found {value!r}") from None
    if not math.isfinite(v) or v < minimum or (strict and v == minimum):
        raise ValueError(f"{name}: expected a finite number {'>' if strict else '>='} {minimum}, found {value!r}")
    return v


@dataclass(frozen=True)
class LRSchedule:
    """Warm-up then cosine: lr = lr_start + (lr_max − lr_start)·k/k_w, then lr_min + ½(lr_max − lr_min)(1 + cos πu).

    k is the number of training images seen in thousands (kimg), K = `total_kimg`, k_w = `warmup`·K and
    u = (k − k_w)/(K − k_w) on the cosine part; beyond K the rate stays at lr_min.
    Reference values: 1e-5 → 2e-4 over the first 10 % of the images, then cosine to 4e-6.
    """

    total_kimg: float
    lr_max: float = 2e-4
    lr_start: float = 1e-5
    lr_min: float = 4e-6
    warmup: float = 0.1

    def __post_init__(self) -> None:
        _check_number("total_kimg", self.total_kimg, 0.0, strict=True)
        _check_number("lr_max", self.lr_max, 0.0, strict=True)
        _check_number("lr_start", self.lr_start, 0.0)
        _check_number("lr_min", self.lr_min, 0.0)
        warmup = _check_number("warmup", self.warmup, 0.0)
        if warmup > 1.0:
            raise ValueError(f"warmup: expected a fraction of the training in [0, 1], found {self.warmup!r}")
        for name in ("lr_start", "lr_min"):
            if getattr(self, name) > self.lr_max:
                raise ValueError(f"{name}: expected a value <= lr_max = {self.lr_max!r}, found {getattr(self, name)!r}")

    @property
    def warmup_kimg(self) -> float:
        """End of the warm-up, k_w = warmup·total_kimg."""
        return self.warmup * self.total_kimg

    def __call__(self, kimg: float) -> float:
        """Learning rate after `kimg` thousand images (lr_min beyond total_kimg)."""
        k = _check_number("kimg", kimg, 0.0)
        k_w, k_total = self.warmup_kimg, self.total_kimg
        if k < k_w:
            return self.lr_start + (self.lr_max - self.lr_start) * k / k_w
        if k >= k_total:
            return self.lr_min
        progress = (k - k_w) / (k_total - k_w)
        return self.lr_min + 0.5 * (self.lr_max - self.lr_min) * (1.0 + math.cos(math.pi * progress))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set `lr` on every parameter group of `optimizer`."""
    lr = _check_number("lr", lr, 0.0)
    for group in optimizer.param_groups:
        group["lr"] = lr
