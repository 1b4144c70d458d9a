"""Shared fixtures and helpers: ../shared data paths (skip cleanly when absent), tiny snapshots, a stub network."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from petdiff.inference import LoadedModel
from petdiff.models import build_network, network_config
from petdiff.training.checkpoint import read_network_metadata, save_network

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """One intra-op thread for the whole session, module-scoped fixtures included.

    The test problems are small, and OpenMP threads that spin while another process (a torchrun
    worker, a benchmark) shares the cores make them up to 10x slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _deterministic_torch():
    """Every test starts from the same global RNG state."""
    torch.manual_seed(0)
    yield


@pytest.fixture
def brainweb_path() -> Path:
    """The held-out BrainWeb subject (281 x 4096 uint8); skip when ../shared is absent."""
    path = SHARED_DATA / "brainweb_subject_infer_64.npz"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture
def reference_matrix_path() -> Path:
    """The reference system's raw COO system matrices at 16 and 32; skip when absent."""
    path = SHARED_DATA / "reference_system_matrix_16_32.npz"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


def load_benchmark(name: str):
    """Import benchmarks/<name>.py (a script folder, not a package) as a module for testing its helpers."""
    script = REPO / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Tiny PET snapshot for the evaluate / demo command tests (32x32, two stages, attention).
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


# Tiny snapshots and a stub network for the inference / enhance / generate tests (16x16).
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


# Tiny regression + residual pair (the Enhancer's networks), saved like the training loop's snapshots.
PAIR_NET = {"model_channels": 8, "channel_mult": [1, 2], "num_blocks": 1, "attn_stages": [], "dropout": 0.0}
PAIR_TINY = {**PAIR_NET, "img_resolution": [RES, RES]}
PAIR_DATA = {"mode": "pet", "resolution": RES, "counts": [1.0e3, 1.0e9], "fraction": [0.01, 1.0], "n_iter": 5,
             "pixel_size_mm": 4.0}


def save_pair(folder: Path, resolution: int = RES, pixel_size_mm: float = 4.0,
              mean_name: str = "mean.safetensors") -> tuple[Path, Path]:
    """An untrained tiny (mean, residual) pair in `folder`; the residual's sidecar names the mean (load_pair input)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {**PAIR_DATA, "resolution": resolution, "pixel_size_mm": pixel_size_mm}
    common = {"kimg": 0, "config_hash": "test", "mode": "pet", "resolution": resolution,
              "normalization": "quantitative", "target": "truth", "label_dim": 2, "data": data}
    size = {"img_resolution": [resolution, resolution]}
    mean_cfg = network_config("pet_mean_64", **PAIR_NET, **size)
    mean_path = save_network(folder / mean_name, build_network(mean_cfg, seed=0), mean_cfg,
                             {"role": "mean", **common, "cond_channels": 1})
    source = {"file": mean_path.name, "sha256": read_network_metadata(mean_path)["sha256"]}
    residual_cfg = network_config("pet_residual_64", **PAIR_NET, **size)
    meta = {"role": "residual", "residual_std": 0.1, "mean_network": source, **common, "cond_channels": 2,
            "sampling": {"sampler": "dpmpp_2m", "steps": 2, "sigma_min": 0.002, "sigma_max": 10, "rho": 7,
                         "seeds": "0-3"}}
    residual_path = save_network(folder / "residual.safetensors", build_network(residual_cfg, seed=1), residual_cfg,
                                 meta)
    return mean_path, residual_path


def free_port() -> int:
    """A free TCP port on the loopback interface (for a local process group)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(target, out_dir: Path, *args, world_size: int = 2, timeout: float = 120) -> list[dict]:
    """Fork `world_size` processes target(rank, port, *args, str(out_dir)); each writes rank<r>.json; returns them.

    fork keeps the tests fast (no second torch import); each child builds its own process group.
    """
    import json
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    port = free_port()
    procs = [ctx.Process(target=target, args=(r, port, *args, str(out_dir))) for r in range(world_size)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=timeout)
    for p in procs:
        if p.is_alive():
            p.kill()
            pytest.fail("a rank hung")
    return [json.loads((Path(out_dir) / f"rank{r}.json").read_text()) for r in range(world_size)]


# Tiny scan-model ("v2") pair: 2.5D (context 1: 3 low-dose channels), fully convolutional, told the tile's peak
# low-dose count density, native pixel size within 1.5–4.5 mm.
SCAN_DATA = {"mode": "pet", "resolution": RES, "context": 1, "fraction": [0.01, 1.0], "n_iter": 5,
             "dose_labels": "density", "pixel_size_mm": None, "pixel_size_range_mm": [1.5, 4.5],
             "density_range": [1e-3, 1e9]}


def save_scan_pair(folder: Path, context: int = 1) -> tuple[Path, Path]:
    """An untrained tiny scan-model pair (roles 'regression' + 'residual') in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {**SCAN_DATA, "context": context}
    common = {"kimg": 0, "config_hash": "test", "mode": "pet", "resolution": RES, "normalization": "quantitative",
              "target": "truth", "label_dim": 1, "data": data}
    channels = 2 * context + 1
    regression_cfg = network_config("pet_regression_scan", **PAIR_TINY, cond_channels=channels, role="regression")
    regression = save_network(folder / "regression.safetensors", build_network(regression_cfg, seed=0),
                              regression_cfg, {"role": "regression", **common, "cond_channels": channels})
    source = {"file": regression.name, "sha256": read_network_metadata(regression)["sha256"]}
    residual_cfg = network_config("pet_residual_scan", **PAIR_TINY, cond_channels=channels + 1)
    meta = {"role": "residual", "residual_std": 0.1, "mean_network": source, **common, "cond_channels": channels + 1,
            "sampling": {"sampler": "dpmpp_2m", "steps": 2, "sigma_min": 0.002, "sigma_max": 10, "rho": 7,
                         "seeds": "0-3"}}
    residual = save_network(folder / "residual.safetensors", build_network(residual_cfg, seed=1), residual_cfg, meta)
    return regression, residual


def save_tiny_scan_pairs(path: Path, n: int = 24) -> Path:
    """A small scan pair file (32² discs, 16² patches, 2.5D) written like `petdiff simulate --phantoms scans`."""
    from petdiff.commands.simulate import scan_meta
    from petdiff.data.pair_file import write_pairs
    from petdiff.data.scan_pairs import ScanPairSimulator, ScanSimulation

    simulator = ScanPairSimulator(ScanSimulation(grid=32, patch=16, patches_per_slab=2))
    g = torch.Generator().manual_seed(0)
    c = (torch.arange(32) + 0.5) / 16 - 1
    disc = ((c[None, :] ** 2 + c[:, None] ** 2) <= 0.4).float()

    def chunks():
        while True:
            activity = disc * (1 + torch.rand(4, 3, 1, 1, generator=g))
            yield simulator(activity, torch.full((4,), 3.0), g)

    return write_pairs(path, chunks(), n, {"phantoms": "test", **scan_meta()})
