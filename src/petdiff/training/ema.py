"""Exponential moving average of network weights with a half-life in images (as in NVlabs/edm)."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import torch


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    if isinstance(module, torch.nn.parallel.DistributedDataParallel):
        return module.module
    return module


def ema_beta(cur_nimg: float, batch_size: int, halflife_kimg: float, rampup_ratio: float | None = None) -> float:
    """β = 0.5^(batch_size / max(ema_nimg, 1e-8)) with ema_nimg = min(1000·halflife_kimg, cur_nimg·rampup_ratio)."""
    if not (isinstance(batch_size, int) and not isinstance(batch_size, bool)) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, found {batch_size!r}")
    if not math.isfinite(float(cur_nimg)) or cur_nimg < 0:
        raise ValueError(f"cur_nimg: expected a finite number >= 0, found {cur_nimg!r}")
    ema_nimg = halflife_kimg * 1000
    if rampup_ratio is not None:
        ema_nimg = min(ema_nimg, cur_nimg * rampup_ratio)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


class EMA:
    """EMA copy of a module: ema ← β·ema + (1−β)·w for every parameter after each step; buffers are copied as-is.

    The half-life is `halflife_kimg` thousand images; with `rampup_ratio` it is shortened to
    `rampup_ratio`·(images seen) early in training, so the average forgets the random initialisation quickly.
    """

    def __init__(self, module: torch.nn.Module, halflife_kimg: float, rampup_ratio: float | None = 0.05):
        if not isinstance(module, torch.nn.Module):
            raise ValueError(f"module: expected a torch.nn.Module, found {type(module).__name__}")
        if not math.isfinite(float(halflife_kimg)) or halflife_kimg <= 0:
            raise ValueError(f"halflife_kimg: expected a positive number, found {halflife_kimg!r}")
        if rampup_ratio is not None and (not math.isfinite(float(rampup_ratio)) or rampup_ratio <= 0):
            raise ValueError(f"rampup_ratio: expected a positive number or None, found {rampup_ratio!r}")
        self.halflife_kimg = float(halflife_kimg)
        self.rampup_ratio = None if rampup_ratio is None else float(rampup_ratio)
        self.module = copy.deepcopy(unwrap(module)).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: torch.nn.Module, cur_nimg: float, batch_size: int) -> float:
        """Blend the current weights of `module` in after a step at `cur_nimg` images; returns the β used."""
        beta = ema_beta(cur_nimg, batch_size, self.halflife_kimg, self.rampup_ratio)
        source = unwrap(module)
        pairs = _matched(self.module.named_parameters(), source.named_parameters(), "parameters")
        if pairs:
            # ema ← ema + (1 − β)(w − ema) = β·ema + (1 − β)·w; the foreach form is one fused kernel per device.
            ema_params, net_params = zip(*pairs)
            torch._foreach_lerp_(list(ema_params), [p.detach() for p in net_params], 1.0 - beta)
        for b_ema, b_net in _matched(self.module.named_buffers(), source.named_buffers(), "buffers"):
            b_ema.copy_(b_net)
        return beta

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged module's state_dict."""
        return self.module.state_dict()

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore the averaged weights (strict: every name must match)."""
        self.module.load_state_dict(state, strict=True)


def _matched(ema_items, net_items, what: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Pair tensors by name; a different set of names means the module is not the one the EMA was made from."""
    ema, net = dict(ema_items), dict(net_items)
    if ema.keys() != net.keys():
        missing, extra = sorted(ema.keys() - net.keys()), sorted(net.keys() - ema.keys())
        raise ValueError(
            f"module: expected the {what} of the module the EMA was created from; "
            f"missing {missing[:5]}, unexpected {extra[:5]}"
        )
    return [(ema[name], net[name]) for name in ema]
