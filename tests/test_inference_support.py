"""Tiny snapshots and stub networks shared by the inference / enhance / generate tests (no tests here)."""

from __future__ import annotations

from pathlib import Path

import torch

from petdiff.inference import LoadedModel
from petdiff.models import build_network, network_config
from petdiff.training.checkpoint import save_network

RES = 16
TINY = {"img_resolution": [RES, RES], "model_channels": 8, "channel_mult": [1, 1], "num_blocks": 1,
        "attn_stages": [], "dropout": 0.0}
PET_META = {
    "kimg": 0,
    "config_hash": "test",
    "mode": "pet",
    "resolution": RES,
    "normalization": "quantitative",
    "target": "full_dose",
    "cond_channels": 1,
    "label_dim": 0,
    "data": {"mode": "pet", "resolution": RES, "counts": 1.0e5, "fraction": 0.25, "n_iter": 5},
    "sampling": {"sampler": "edm", "steps": 3, "S_churn": 0},
}


def save_tiny(path: Path, kind: str = "pet", **meta_overrides) -> Path:
    """An untrained tiny network saved as a snapshot with the sidecar keys of docs/architecture.md."""
    overrides = dict(TINY)
    meta = {**PET_META, **meta_overrides}
    if kind == "images":
        overrides["cond_channels"] = 0
        meta.update(mode="images", cond_channels=0)
        meta.pop("normalization", None)
    net = build_network(network_config("pet_cpu_64", **overrides), seed=0)
    return save_network(path, net, net.config, meta)


class StubNet(torch.nn.Module):
    """D(x; σ, y) = (τ²·x + σ²·μ)/(τ² + σ²) with μ = y: the exact denoiser of x₀ ~ N(y, τ²); τ = 0 gives D = y."""

    def __init__(self, tau: float = 0.0, resolution: int = RES):
        super().__init__()
        self.tau = tau
        self.img_resolution = (resolution, resolution)
        self.img_channels, self.cond_channels, self.label_dim = 1, 1, 0
        self.sigma_min, self.sigma_max = 0.0, float("inf")
        self.calls = 0
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the stub a device

    def forward(self, x, sigma, condition=None, class_labels=None, augment_labels=None):
        self.calls += 1
        s2 = sigma.reshape(-1, 1, 1, 1).to(x.dtype) ** 2
        return (self.tau**2 * x + s2 * condition) / (self.tau**2 + s2)


def stub_model(tau: float = 0.0, normalization: str = "quantitative", **meta) -> LoadedModel:
    """A LoadedModel around StubNet with a PET sidecar."""
    return LoadedModel(net=StubNet(tau).eval(), meta={**PET_META, "normalization": normalization, **meta},
                       path=Path("stub.safetensors"))

