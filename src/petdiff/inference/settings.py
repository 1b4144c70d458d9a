"""Sampler settings for inference: the snapshot's (or config's) `sampling` section merged with explicit choices."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from petdiff.diffusion import sampler_options

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
