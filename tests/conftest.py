"""Shared fixtures: paths to ../shared data (tests using them skip cleanly when absent)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

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
