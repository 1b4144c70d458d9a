"""Helpers for the evaluate / demo tests: a tiny untrained PET snapshot and single-threaded torch."""

from __future__ import annotations

from pathlib import Path

from petdiff.models import build_network, network_config
from petdiff.training.checkpoint import save_network

TINY_RES = 32
TINY_NET = {
    "img_resolution": [TINY_RES, TINY_RES],
    "model_channels": 8,
    "channel_mult": [1, 2],
    "num_blocks": 1,
    "attn_stages": [1],
    "dropout": 0.0,
}


def save_tiny_snapshot(path: Path, resolution: int = TINY_RES) -> Path:
    """An untrained tiny conditional network saved with the sidecar keys of docs/architecture.md."""
    config = network_config("pet_cpu_64", **{**TINY_NET, "img_resolution": [resolution, resolution]})
    net = build_network(config, seed=0)
    meta = {
        "kimg": 0,
        "config_hash": "test",
        "mode": "pet",
        "resolution": resolution,
        "normalization": "quantitative",
        "target": "full_dose",
        "cond_channels": 1,
        "label_dim": 0,
        "data": {"counts": 1e6, "fraction": [0.1, 0.5], "n_iter": 50},
        "sampling": {"sampler": "edm", "steps": 2, "S_churn": 0.0},
    }
    return save_network(path, net, config, meta)

