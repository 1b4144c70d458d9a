"""Tiny paired scans (image-space Poisson counts, thinned) and a tiny scan-model pair for the fine-tune tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from petdiff.models import build_network
from petdiff.models.presets import network_config
from petdiff.phantoms import procedural_phantoms
from petdiff.training.checkpoint import read_network_metadata, save_network

SCAN_NET = {"model_channels": 8, "channel_mult": [1, 2], "num_blocks": 1, "dropout": 0.0,
            "img_resolution": [16, 16]}
SCAN_DATA = {"mode": "pet", "resolution": 16, "context": 1, "dose_labels": "density", "pixel_size_mm": None,
             "pixel_size_range_mm": [1.5, 4.5], "density_range": [0.5, 3.0e4], "normalization": "quantitative",
             "target": "truth", "fraction": [0.02, 0.6]}


def save_scan_pair(folder: Path) -> Path:
    """An untrained tiny scan-model pair (2.5D, density labels, native pixel size); returns the residual's path."""
    folder.mkdir(parents=True, exist_ok=True)
    common = {"kimg": 0, "config_hash": "test", "mode": "pet", "resolution": 16, "normalization": "quantitative",
              "target": "truth", "label_dim": 1, "data": SCAN_DATA}
    mean_cfg = network_config("pet_regression_scan", **SCAN_NET, role="regression")
    mean = save_network(folder / "regression.safetensors", build_network(mean_cfg, seed=0), mean_cfg,
                        {"role": "regression", **common, "cond_channels": 3})
    res_cfg = network_config("pet_residual_scan", **SCAN_NET)
    meta = {"role": "residual", "residual_std": 0.1, **common, "cond_channels": 4,
            "mean_network": {"file": mean.name, "sha256": read_network_metadata(mean)["sha256"]},
            "sampling": {"sampler": "dpmpp_2m", "steps": 2, "sigma_min": 0.002, "sigma_max": 10, "rho": 7}}
    path = save_network(folder / "residual.safetensors", build_network(res_cfg, seed=1), res_cfg, meta)
    level_cfg = network_config("pet_count_level_scan", model_channels=8, img_resolution=[16, 16])
    save_network(folder / "count_level.safetensors", build_network(level_cfg, seed=2), level_cfg,
                 {"role": "count_level", **common, "cond_channels": 3})
    return path


def tiny_pair(seed: int, slices: int = 3, size: int = 24, counts: float = 40.0, fraction: float = 0.25
              ) -> tuple[np.ndarray, np.ndarray]:
    """(low, full) counts volumes (N, H, W): full ~ Poisson(c·activity), low ~ Binomial(full, f) (thinning)."""
    g = torch.Generator().manual_seed(seed)
    activity = procedural_phantoms(slices, size, generator=g).activity[:, 0]
    full = torch.poisson(activity / activity.amax() * counts, generator=g)
    low = torch.binomial(full, torch.full_like(full, fraction), generator=g)
    return low.numpy().astype(np.float32), full.numpy().astype(np.float32)


def write_cases(root: Path, n: int, names: list[str] | None = None) -> tuple[Path, Path]:
    """LOW/ and FULL/ folders of n .npy cases with matching names."""
    low_dir, full_dir = root / "low", root / "full"
    low_dir.mkdir(parents=True)
    full_dir.mkdir(parents=True)
    for i in range(n):
        name = names[i] if names else f"case{i}"
        low, full = tiny_pair(i)
        np.save(low_dir / f"{name}.npy", low)
        np.save(full_dir / f"{name}.npy", full)
    return low_dir, full_dir
