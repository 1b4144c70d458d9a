"""Capture and restore random-number-generator states as plain tensors (for training-state files)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch


def _check_generators(generators: Mapping[str, torch.Generator] | None) -> dict[str, torch.Generator]:
    """Require a mapping of names to torch.Generator."""
    generators = dict(generators or {})
    for name, g in generators.items():
        if not isinstance(name, str) or not isinstance(g, torch.Generator):
            raise ValueError(f"generators: expected a dict of str -> torch.Generator, found {name!r}: {g!r}")
    return generators


def capture_rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """States of the global torch CPU RNG, the current CUDA device's RNG (when CUDA is in use) and of `generators`."""
    generators = _check_generators(generators)
    state: dict[str, Any] = {"torch_cpu": torch.get_rng_state()}
    # Only the current device: under DDP each process owns one GPU, and touching the others would create a CUDA
    # context on every GPU from every process.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = torch.cuda.get_rng_state()
    state["generators"] = {name: g.get_state() for name, g in generators.items()}
    return state


def restore_rng_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Restore what `capture_rng_state` saved; every generator passed must have a saved state under its name."""
    generators = _check_generators(generators)
    if not isinstance(state, Mapping) or not isinstance(state.get("torch_cpu"), torch.Tensor):
        raise ValueError(f"rng state: expected a dict with a 'torch_cpu' tensor, found {type(state).__name__}")
    saved = state.get("generators") or {}
    missing = sorted(set(generators) - set(saved))
    if missing:
        raise ValueError(f"rng state: no saved state for generator(s) {missing}; saved: {sorted(saved)}")
    torch.set_rng_state(state["torch_cpu"])
    cuda_state = state.get("torch_cuda")
    if cuda_state is not None:
        if torch.cuda.is_available():
            torch.cuda.set_rng_state(cuda_state)  # the current device, as captured
        else:
            warnings.warn("rng state: a CUDA RNG state was saved but CUDA is not available; not restored", stacklevel=2)
    for name, g in generators.items():
        g.set_state(saved[name])
