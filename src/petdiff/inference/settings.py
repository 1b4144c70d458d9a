"""Sampler settings for inference: the snapshot's (or config's) `sampling` section merged with explicit choices.

`SamplingSettings` is everything that decides an enhancement, resolved once (sidecar ⊕ config ⊕ command line)
by an enhancer's `settings(...)` and reported with the result.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from petdiff.diffusion import parse_seeds, sampler_options

# Without a `sampling` section: EDM Heun, 32 steps, deterministic (no churn).
FALLBACK_SAMPLING: Mapping[str, Any] = {"sampler": "edm", "num_steps": 32, "S_churn": 0.0}
# Fields of a config's / sidecar's `sampling` section that are options of petdiff.diffusion.sample (steps → num_steps).
_SCHEDULE_KEYS = ("sigma_min", "sigma_max", "rho")
_SOLVER_KEYS = ("S_churn", "S_min", "S_max", "S_noise")


def _section_options(section: Mapping[str, Any]) -> dict[str, Any]:
    """sample() keyword options from a `sampling` section (config names: steps, sigma_min, ..., S_noise)."""
    opts = {key: section[key] for key in (*_SCHEDULE_KEYS, *_SOLVER_KEYS) if section.get(key) is not None}
    steps = section.get("num_steps", section.get("steps"))
    if steps is not None:
        opts["num_steps"] = steps
    return opts


def sampling_settings(
    section: Mapping[str, Any] | None,
    net: torch.nn.Module,
    sampler: str | None = None,
    steps: int | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """(sampler, sample() options): defaults from `section` (else FALLBACK_SAMPLING), then `steps`/`overrides`.

    Defaults the chosen sampler does not take (churn for DPM-Solver++) are dropped silently; explicit
    `overrides` are passed through so that sample() rejects those it does not know. The σ range is clipped
    to what the network supports (σ_min ≥ net.sigma_min, σ_max ≤ net.sigma_max), as in NVlabs/edm.
    """
    section = dict(section) if section else dict(FALLBACK_SAMPLING)
    name = sampler or section.get("sampler") or FALLBACK_SAMPLING["sampler"]
    accepted = sampler_options(name) | {"num_steps", *_SCHEDULE_KEYS}
    defaults = {"num_steps": FALLBACK_SAMPLING["num_steps"], **_section_options(section)}
    opts = {key: value for key, value in defaults.items() if key in accepted}
    if steps is not None:
        opts["num_steps"] = steps
    opts.update(overrides or {})
    steps_value = opts["num_steps"]
    if isinstance(steps_value, bool) or not isinstance(steps_value, int) or steps_value < 1:
        raise ValueError(f"steps: expected an integer >= 1, found {steps_value!r}")
    net_min, net_max = float(getattr(net, "sigma_min", 0.0)), float(getattr(net, "sigma_max", float("inf")))
    if net_min > 0:
        opts["sigma_min"] = max(float(opts.get("sigma_min", 0.002)), net_min)
    if net_max < float("inf"):
        opts["sigma_max"] = min(float(opts.get("sigma_max", 80.0)), net_max)
    return name, opts


@dataclass(frozen=True)
class SamplingSettings:
    """Everything that decides an enhancement, resolved once (sidecar ⊕ config ⊕ command line) and reported."""

    method: str = "posterior"  # "mean" (one regression pass), "posterior" (regression + residual samples), "denoiser"
    samples: int = 8
    seeds: tuple[int, ...] = tuple(range(8))
    sampler: str = "dpmpp_2m"
    options: dict[str, Any] = field(default_factory=dict)  # sample() options: num_steps, sigma_max, ...
    warm_start: float | None = None  # start the residual's sampler at this σ (None: the cold start σ_max)
    batch_size: int = 32  # samples per network call
    antithetic: bool = False  # sample 2j+1 starts from −(latent of sample 2j)
    precision: str = "float32"  # "bfloat16": the networks run under bf16 autocast (`resolve_precision`)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for outputs and logs)."""
        opts = {k: v for k, v in self.options.items() if k != "callback"}
        return {"method": self.method, "samples": self.samples, "seeds": list(self.seeds), "sampler": self.sampler,
                "options": opts, "warm_start": self.warm_start, "batch_size": self.batch_size,
                "antithetic": self.antithetic, "precision": self.precision}


def resolve_seeds(samples: int | None, seeds: str | int | Sequence[int] | None, default: int
                  ) -> tuple[int, tuple[int, ...]]:
    """(K, seeds): K = `samples` (else `default`), seeds 0..K−1 unless given; explicit seeds must number K."""
    samples = default if samples is None else samples
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples: expected an integer >= 1, found {samples!r}")
    seed_list = tuple(range(samples)) if seeds is None else tuple(parse_seeds(seeds, distinct=True))
    if len(seed_list) != samples:
        raise ValueError(f"seeds: expected {samples} seeds (samples={samples}), found {len(seed_list)}")
    return samples, seed_list


def apply_warm_start(options: dict[str, Any], warm_start: float | None) -> None:
    """A warm start at σ lowers the sampler's σ_max to σ (validated); None leaves the cold start."""
    if warm_start is None:
        return
    if not (isinstance(warm_start, (int, float)) and math.isfinite(warm_start) and warm_start > 0):
        raise ValueError(f"warm_start: expected a positive noise level σ, found {warm_start!r}")
    options["sigma_max"] = min(float(warm_start), float(options.get("sigma_max", 80.0)))


PRECISIONS = ("float32", "bfloat16", "auto")


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matrix products run natively (CUDA with bf16, CPUs with AVX-512 BF16 / AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """'float32' | 'bfloat16'; 'auto' = bfloat16 where the device has native bf16 (measured on an AVX-512 BF16 CPU:
    2.3× faster posterior, PSNR −0.002 dB and 90 % coverage −0.02 points on held-out slices), else float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, found {precision!r}")
    if precision == "auto":
        return "bfloat16" if native_bf16(torch.device(device)) else "float32"
    return precision


@contextlib.contextmanager
def network_precision(nets: Sequence[torch.nn.Module], precision: str) -> Iterator[None]:
    """Run `nets` under bf16 autocast (their `use_amp`) for the duration when precision is 'bfloat16'."""
    saved = [(net, getattr(net, "use_amp", None), getattr(net, "amp_dtype", None)) for net in nets]
    try:
        for net, use_amp, _ in saved:
            if use_amp is not None and precision == "bfloat16":
                net.use_amp, net.amp_dtype = True, "bfloat16"
        yield
    finally:
        for net, use_amp, amp_dtype in saved:
            if use_amp is not None:
                net.use_amp, net.amp_dtype = use_amp, amp_dtype


def check_batch_size(batch_size: int) -> int:
    """Require an integer ≥ 1 (samples per network call)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, found {batch_size!r}")
    return batch_size
