"""`ModelSpec`: what a snapshot (or a pair of them) expects of its input, read once from the sidecar(s).

Everything the inference layer needs to know about a model (the role of each network, the pixel size it
runs at, its 2.5D context, the normalisation, how it is told the dose, the ranges it was trained on, the
reconstruction it expects and the sampler defaults) is resolved here, once, into a frozen object; no other
module reads a sidecar.

Two generations of snapshots are accepted:

* old ("v1"): 64×64 at a fixed pixel size (`data.pixel_size_mm`, a number: resample to it), no context, the
  dose told as (log10 N_low − 5, f) with N_low the count level of the 64×64 tile (`dose_label` "counts");
  the regression network's role is "mean" (an alias of "regression");
* scan models ("v2"): `data.pixel_size_mm` null (native: no resampling inside `pixel_size_range_mm`),
  `data.context` = k neighbour slices each side (2k+1 input channels), the dose told as the peak low-dose
  counts per pixel of the tile (`dose_label` "density", `models.dose.density_labels`); fully convolutional,
  so a slice runs whole at any size divisible by the UNet's down-sampling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from petdiff.diffusion import parse_seeds

ROLES = ("regression", "residual", "denoiser", "count_level")
ROLE_ALIASES = {"mean": "regression"}  # old snapshots name the regression network's role "mean"
DOSE_LABELS = ("counts", "density", "none")
DEFAULT_PIXEL_SIZE_MM = 4.0  # old snapshots without data.pixel_size_mm were trained at 4 mm
DEFAULT_SAMPLES = 8


def snapshot_role(meta: Mapping[str, Any]) -> str:
    """The role a sidecar declares, aliases resolved ('denoiser' when it has none)."""
    role = meta.get("role", "denoiser")
    return ROLE_ALIASES.get(role, role)


def _span(value: Any, where: str) -> tuple[float, float] | None:
    """(lo, hi) of a training range given as a number or a list, None when absent."""
    if value is None:
        return None
    values = [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a number or a list of numbers, found {value!r}") from None
    if not numbers or not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"{where}: expected finite numbers, found {value!r}")
    return min(numbers), max(numbers)


def _pixel_size(value: Any, where: str) -> tuple[float, float] | None:
    """(dy, dx) mm from a number or a pair; None = native (the network runs at the input's pixel size)."""
    if value is None:
        return None
    pair = (value, value) if isinstance(value, (int, float)) and not isinstance(value, bool) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in pair):
        raise ValueError(f"{where}: expected a positive number, (dy, dx) in mm or null, found {value!r}")
    return float(pair[0]), float(pair[1])


def _iterations(data: Mapping[str, Any]) -> int | None:
    """MLEM iterations of the training reconstructions: data.n_iter (or recon.n_iter) when an integer, else None
    (scan models saw many reconstructions: the caller's own choice)."""
    for value in (data.get("n_iter"), (data.get("recon") or {}).get("n_iter")):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


@dataclass(frozen=True)
class ModelSpec:
    """The input contract of a model, resolved once from its sidecar(s); see the module docstring."""

    roles: tuple[str, ...]  # the networks present, e.g. ("regression", "residual")
    resolution: tuple[int, int]  # (H, W) of the training tiles
    pixel_size: tuple[float, float] | None  # (dy, dx) mm to resample to; None = native
    pixel_size_range: tuple[float, float] | None  # native models: the trained pixel sizes (mm)
    context: int  # k neighbour slices each side: 2k+1 input channels
    normalization: str
    dose_label: str  # "counts" (log10 N_low − 5, f), "density" (log10 ρ − 1), "none" (single denoiser)
    size_multiple: int  # H, W of a whole-slice input must be multiples of this
    whole_slices: bool  # the networks run at any size (else: tiles of `resolution`)
    counts_range: tuple[float, float] | None  # full-dose counts per training slice (v1)
    density_range: tuple[float, float] | None  # peak low-dose counts per pixel in training (v2)
    fraction_range: tuple[float, float] | None
    n_iter: int | None  # MLEM iterations of the training reconstructions (None: they varied)
    recon: Mapping[str, Any] = field(default_factory=dict)  # the reconstructions seen in training (v2)
    target: str = "truth"
    residual_std: float | None = None  # σ_r in network units (pairs with a residual network)
    std_scale: float = 1.0  # c of a pair recalibrated by `petdiff finetune`: the posterior std is c× wider
    sampling: Mapping[str, Any] = field(default_factory=dict)  # the sampler defaults of the sampling network
    default_samples: int = DEFAULT_SAMPLES

    @property
    def channels(self) -> int:
        """Input channels of the low-dose condition: the slice and its k neighbours each side."""
        return 2 * self.context + 1

    @property
    def native(self) -> bool:
        """True when the model runs at the input's own pixel size (inside `pixel_size_range`)."""
        return self.pixel_size is None

    def model_pixel_size(self, input_pixel_size: tuple[float, float]) -> tuple[float, float]:
        """The pixel size (dy, dx) mm the input is resampled to: the fixed one, or the input's clipped to the range."""
        if self.pixel_size is not None:
            return self.pixel_size
        if self.pixel_size_range is None:
            return tuple(float(v) for v in input_pixel_size)
        lo, hi = self.pixel_size_range
        return tuple(min(max(float(v), lo), hi) for v in input_pixel_size)

    def dose_level_range(self, fraction: float) -> tuple[float, float] | None:
        """Training range of the level the networks are told, at dose fraction f (N_low = N·f, or ρ as trained)."""
        if self.dose_label == "counts" and self.counts_range is not None:
            return self.counts_range[0] * fraction, self.counts_range[1] * fraction
        if self.dose_label == "density":
            return self.density_range
        return None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary for reports."""
        return {"roles": list(self.roles), "resolution": list(self.resolution),
                "pixel_size_mm": None if self.pixel_size is None else list(self.pixel_size),
                "pixel_size_range_mm": None if self.pixel_size_range is None else list(self.pixel_size_range),
                "context": self.context, "normalization": self.normalization, "dose_label": self.dose_label,
                "whole_slices": self.whole_slices, "n_iter": self.n_iter, "std_scale": self.std_scale}

    @classmethod
    def from_sidecars(cls, first: Mapping[str, Any], sampling_net: Mapping[str, Any] | None = None,
                      where: str = "sidecar") -> ModelSpec:
        """The spec of a regression (+ residual) pair or of a single denoiser, from their sidecar dicts.

        `first` is the regression (or denoiser) sidecar, `sampling_net` the residual's (None: no sampling
        network, or the denoiser samples itself). Training ranges and the input contract come from `first`;
        the sampler defaults, σ_r and the std scale c (`std_scale`, written by `petdiff finetune`) from the network
        that samples.
        """
        data = first.get("data") or {}
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected field 'data' to be a dict, found {type(data).__name__}")
        role = snapshot_role(first)
        roles = (role,) if sampling_net is None else (role, snapshot_role(sampling_net))
        context = data.get("context", 0) or 0
        if isinstance(context, bool) or not isinstance(context, int) or context < 0:
            raise ValueError(f"{where}: expected data.context to be an integer ≥ 0, found {context!r}")
        raw = data.get("dose_label", data.get("dose_labels"))  # "density" | "counts" | true (= counts) | absent
        label = raw if isinstance(raw, str) else ("counts" if raw else "none")
        if label not in DOSE_LABELS:
            raise ValueError(f"{where}: expected data.dose_label in {DOSE_LABELS}, found {label!r}")
        pixel = data.get("pixel_size_mm", DEFAULT_PIXEL_SIZE_MM)
        architecture = first.get("architecture") or {}
        resolution = first.get("resolution", architecture.get("img_resolution", 64))
        resolution = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
        multiple = 2 ** (len(architecture.get("channel_mult", [1, 2, 2, 2])) - 1)
        sampler_meta = sampling_net if sampling_net is not None else (first if role == "denoiser" else {})
        sampling = dict(sampler_meta.get("sampling") or {})
        samples = DEFAULT_SAMPLES
        if sampling.get("seeds") is not None:
            samples = len(parse_seeds(sampling["seeds"]))
        residual_std = sampling_net.get("residual_std") if sampling_net is not None else None
        std_scale = sampling_net.get("std_scale", 1.0) if sampling_net is not None else 1.0
        if isinstance(std_scale, bool) or not isinstance(std_scale, (int, float)) or not (
                math.isfinite(std_scale) and std_scale > 0):
            raise ValueError(f"{where}: expected the residual's std_scale to be a positive number, found {std_scale!r}")
        return cls(
            roles=roles,
            resolution=(int(resolution[0]), int(resolution[1])),
            pixel_size=_pixel_size(pixel, f"{where}: data.pixel_size_mm"),
            pixel_size_range=_span(data.get("pixel_size_range_mm"), f"{where}: data.pixel_size_range_mm"),
            context=context,
            normalization=first.get("normalization", "quantitative"),
            dose_label=label,
            size_multiple=multiple,
            whole_slices=label == "density" and not architecture.get("attn_stages"),
            counts_range=_span(data.get("counts"), f"{where}: data.counts"),
            density_range=_span(data.get("density_range"), f"{where}: data.density_range"),
            fraction_range=_span(data.get("fraction"), f"{where}: data.fraction"),
            n_iter=_iterations(data),
            recon=MappingProxyType(dict(data.get("recon") or data.get("simulation") or {})),
            target=str(first.get("target", data.get("target", "truth"))),
            residual_std=None if residual_std is None else float(residual_std),
            std_scale=float(std_scale),
            sampling=MappingProxyType(sampling),
            default_samples=samples,
        )
