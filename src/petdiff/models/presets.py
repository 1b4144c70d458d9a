"""Named network configurations and ``build_network``: config dict (JSON) → EDMPrecond."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import torch

from petdiff.models.count_level import ROLE_COUNT_LEVEL, CountLevelNet
from petdiff.models.dose import DENSITY_LABEL_DIM, DOSE_LABEL_DIM
from petdiff.models.precond import UNET_DEFAULTS, EDMPrecond
from petdiff.models.regression import REGRESSION_ROLES, ROLE_MEAN, RegressionUNet

# The reference PET network (acec2127/dose_reduction_et, configs/config_phantoms_0.yaml): 57.09 M parameters.
# Attention at stages 2 and 3 = 16×16 and 8×8 (plus the 8×8 bottleneck).
PET_REFERENCE_64: dict[str, Any] = {
    "img_resolution": [64, 64],
    "img_channels": 1,
    "cond_channels": 1,
    "label_dim": 0,
    "sigma_data": 0.5,
    "augment_dim": 9,
    "model_channels": 128,
    "channel_mult": [1, 2, 2, 2],
    "channel_mult_emb": 4,
    "num_blocks": 3,
    "attn_stages": [2, 3],
    "dropout": 0.13,
}

# The CPU default: same topology at a quarter of the width and two blocks per stage (2.78 M parameters);
# attention only at the two lowest resolutions (16×16 and 8×8) where it is cheap.
PET_CPU_64: dict[str, Any] = {**PET_REFERENCE_64, "model_channels": 32, "num_blocks": 2}

# The residual-corrective pair (CorrDiff). The regression network μθ(y, d): pet_cpu_64's UNet told the dose,
# without augmentation labels (its dihedral augmentation is an exact symmetry of the data, see models/dihedral.py)
# and without dropout (every batch is new data). The residual diffusion model on r = x − μθ(y), conditioned on
# (y, μθ, d): a lighter UNet (one block per stage, attention only at 8×8), since it is evaluated many times.
PET_MEAN_64: dict[str, Any] = {**PET_CPU_64, "role": ROLE_MEAN, "label_dim": DOSE_LABEL_DIM, "augment_dim": 0,
                               "dropout": 0.0}
PET_RESIDUAL_64: dict[str, Any] = {**PET_CPU_64, "cond_channels": 2, "label_dim": DOSE_LABEL_DIM, "augment_dim": 0,
                                   "num_blocks": 1, "attn_stages": [3], "dropout": 0.0}

# The scan models (issue 16): fully convolutional (no attention), so they run at the input's own pixel size on any
# H×W divisible by 8; 2.5D input (the slice and one neighbour each side: 3 low-dose channels); told the tile's peak
# low-dose count density (models/dose.density_labels). Trained on 64×64 patches of scans at 1.5–4.5 mm.
SCAN_CONTEXT = 1
PET_REGRESSION_SCAN: dict[str, Any] = {**PET_MEAN_64, "cond_channels": 2 * SCAN_CONTEXT + 1,
                                       "label_dim": DENSITY_LABEL_DIM, "attn_stages": []}
PET_RESIDUAL_SCAN: dict[str, Any] = {**PET_RESIDUAL_64, "cond_channels": 2 * SCAN_CONTEXT + 2,
                                     "label_dim": DENSITY_LABEL_DIM, "attn_stages": []}

PET_COUNT_LEVEL_SCAN: dict[str, Any] = {"role": ROLE_COUNT_LEVEL, "cond_channels": 2 * SCAN_CONTEXT + 1,
                                        "model_channels": 32, "sigma_data": 0.5, "img_resolution": [64, 64],
                                        "img_channels": 1}

NETWORK_PRESETS: dict[str, dict[str, Any]] = {
    "pet_reference_64": PET_REFERENCE_64,
    "pet_cpu_64": PET_CPU_64,
    "pet_mean_64": PET_MEAN_64,
    "pet_residual_64": PET_RESIDUAL_64,
    "pet_regression_scan": PET_REGRESSION_SCAN,
    "pet_residual_scan": PET_RESIDUAL_SCAN,
    "pet_count_level_scan": PET_COUNT_LEVEL_SCAN,
}
DEFAULT_PRESET = "pet_cpu_64"

_PRECOND_KEYS = {"img_resolution", "img_channels", "cond_channels", "label_dim", "sigma_data", "sigma_min",
                 "sigma_max", "use_amp", "amp_dtype", "channels_last", "role"}


def network_config(preset_or_config: str | Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """A fresh config dict from a preset name or a mapping, with keyword overrides applied (keys validated)."""
    if isinstance(preset_or_config, str):
        if preset_or_config not in NETWORK_PRESETS:
            raise ValueError(f"preset: expected one of {sorted(NETWORK_PRESETS)}, found {preset_or_config!r}")
        config = copy.deepcopy(NETWORK_PRESETS[preset_or_config])
    elif isinstance(preset_or_config, Mapping):
        config = copy.deepcopy(dict(preset_or_config))
    else:
        raise ValueError(f"config: expected a preset name or a mapping, found {type(preset_or_config).__name__}")
    config.update(overrides)
    unknown = sorted(set(config) - _PRECOND_KEYS - set(UNET_DEFAULTS))
    if unknown:
        raise ValueError(f"config: unknown field(s) {unknown}; expected fields among "
                         f"{sorted(_PRECOND_KEYS | set(UNET_DEFAULTS))}")
    for required in ("img_resolution", "img_channels"):
        if required not in config:
            raise ValueError(f"config: missing required field {required!r}")
    return config


def build_network(
    config: str | Mapping[str, Any], seed: int | None = None, **overrides: Any
) -> EDMPrecond | RegressionUNet:
    """Build an EDMPrecond (or, for ``role: mean``, a RegressionUNet) from a config dict or a preset name.

    ``seed`` makes the random initialisation reproducible without touching the global RNG stream.
    """
    config = network_config(config, **overrides)
    json.dumps(config, allow_nan=False)  # a config that cannot be written to the JSON sidecar is rejected here
    role = config.get("role")
    if role == ROLE_COUNT_LEVEL:
        return _seeded(CountLevelNet, seed, config)
    if role not in (None, *REGRESSION_ROLES):
        raise ValueError(f"config: field 'role': expected one of {REGRESSION_ROLES} or absent (a diffusion denoiser), "
                         f"found {role!r}")
    network_class = RegressionUNet if role in REGRESSION_ROLES else EDMPrecond
    return _seeded(network_class, seed, config)


def _seeded(network_class: type, seed: int | None, config: dict[str, Any]) -> torch.nn.Module:
    """network_class(**config), initialised from `seed` without touching the global RNG stream (None: as it is)."""
    if seed is None:
        return network_class(**config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return network_class(**config)


def count_parameters(module: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
