"""Physics / reconstruction benchmark: system-matrix build (time, peak RSS, nnz) and batched MLEM speed + accuracy.

Prints one JSON object. Build sizes run in a fresh subprocess each (so peak RSS belongs to that build alone,
with the disk cache disabled); `--full` adds 512×512. MLEM: 64×64, batch 32, 50 iterations, compared with a
dense float64 MLEM written here (exact float64 Siddon lengths, normalised in float64).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from petdiff.physics import Geometry, Projector, poisson_sinogram, system_matrix
from petdiff.physics.siddon import iter_rows
from petdiff.recon import mlem

BRAINWEB = Path(__file__).resolve().parents[2] / "shared" / "data" / "brainweb_subject_infer_64.npz"


def rss_mib() -> float:
    """Current resident set size in MiB (Linux /proc)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def build_one(resolution: int, with_cache: bool) -> dict:
    """Run inside the subprocess: time the uncached build, then (optionally) a cache write + cached Projector."""
    base = rss_mib()
    t = time.perf_counter()
    a = system_matrix(resolution, cache=False)
    build_s = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        "resolution": resolution,
        "build_s": round(build_s, 3),
        "peak_rss_mib": round(peak, 1),
        "rss_before_build_mib": round(base, 1),
        "build_peak_over_baseline_mib": round(peak - base, 1),
        "nnz": int(a.values().shape[0]),
        "density": a.values().shape[0] / (a.shape[0] * a.shape[1]),
        "matrix_mib": round((a.values().nbytes + a.col_indices().nbytes + a.crow_indices().nbytes) / 2**20, 1),
    }
    del a
    if with_cache:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["PETDIFF_CACHE_DIR"] = tmp
            t = time.perf_counter()
            system_matrix(resolution)  # builds and writes
            out["build_and_write_cache_s"] = round(time.perf_counter() - t, 3)
            t = time.perf_counter()
            system_matrix(resolution)
            out["load_from_cache_s"] = round(time.perf_counter() - t, 3)
            t = time.perf_counter()
            Projector(resolution)
            out["projector_first_s"] = round(time.perf_counter() - t, 3)  # load A, transpose, cache Aᵀ, scale
            t = time.perf_counter()
            Projector(resolution)
            out["projector_cached_s"] = round(time.perf_counter() - t, 3)  # load A and Aᵀ, scale
    return out


def build_in_subprocess(resolution: int, with_cache: bool) -> dict:
    """One fresh interpreter per size, so ru_maxrss is this build's peak."""
    cmd = [sys.executable, __file__, "--_build", str(resolution)] + (["--_with-cache"] if with_cache else [])
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return {"resolution": resolution, "error": res.stderr.strip().splitlines()[-1:]}
    return json.loads(res.stdout)


def dense_reference_matrix(geometry: Geometry) -> torch.Tensor:
    """Dense float64 A from the exact float64 Siddon lengths, columns normalised in float64."""
    a = np.zeros((geometry.n_lors, geometry.n_pixels))
    row = 0
    for counts, cols, values in iter_rows(geometry):
        rows = row + np.repeat(np.arange(counts.shape[0]), counts)
        a[rows, cols] = values
        row += counts.shape[0]
    sums = a.sum(axis=0)
    return torch.from_numpy(a / np.where(sums > 0, sums, 1))


def dense_mlem(y: torch.Tensor, a: torch.Tensor, n_iter: int) -> torch.Tensor:
    """Reference λ ← λ/(Aᵀ1)·Aᵀ(Y/(Aλ)) with dense float64 matrices; y (d, B) → λ (p, B)."""
    sens = a.sum(0)[:, None]
    lam = torch.ones(a.shape[1], y.shape[1], dtype=torch.float64)
    for _ in range(n_iter):
        expected = a @ lam
        ratio = torch.where(expected > 0, y / expected, 0.0)
        lam = lam / sens * (a.T @ ratio)
    return lam


def phantoms(batch: int) -> tuple[torch.Tensor, str]:
    """BrainWeb slices (the 32 with most activity) when ../shared is present, else random disks."""
    if BRAINWEB.is_file():
        data = np.load(BRAINWEB, allow_pickle=False)
        arr = data[data.files[0]].reshape(-1, 64, 64).astype(np.float32)
        idx = np.sort(np.argsort(arr.sum(axis=(1, 2)))[-batch:])
        return torch.from_numpy(arr[idx])[:, None], "brainweb"
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    out = torch.zeros(batch, 1, 64, 64)
    for b in range(batch):
        for _ in range(5):
            cx, cy, r, v = torch.rand(4, generator=gen).tolist()
            out[b, 0] += v * (((xx - cx + 0.5) ** 2 + (yy - cy + 0.5) ** 2) < (0.1 + 0.3 * r) ** 2).float()
    return out, "random disks"


def mlem_speed(threads: int, batch: int = 32, n_iter: int = 50, repeats: int = 9) -> dict:
    """Run inside a subprocess: wall-clock and CPU-time throughput of batched MLEM with `threads` intra-op threads."""
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PETDIFF_CACHE_DIR"] = tmp
        proj = Projector(64)
    act, _ = phantoms(batch)
    y = poisson_sinogram(act, proj, counts=1e6, generator=torch.Generator().manual_seed(0))
    mlem(y, proj, n_iter=2)
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        mlem(y, proj, n_iter=n_iter)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    osem = []
    for _ in range(repeats):
        t = time.perf_counter()
        mlem(y, proj, n_iter=n_iter // 4, subsets=4)
        osem.append(time.perf_counter() - t)
    return {
        "threads": threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "median_s": round(float(np.median(wall)), 4),
        "slices_per_s_median": round(batch / float(np.median(wall)), 1),
        "slices_per_s_best": round(batch / min(wall), 1),
        # CPU seconds of all threads: immune to waiting for a core (not to sharing caches with other jobs)
        "slices_per_cpu_s_median": round(batch / float(np.median(cpu)), 1),
        "osem_4x12_slices_per_s_median": round(batch / float(np.median(osem)), 1),
    }


def speed_in_subprocess(threads: int, wait_policy: str | None = None) -> dict:
    """Fresh interpreter per setting (OpenMP reads its wait policy once, at start-up)."""
    env = dict(os.environ)
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy
    cmd = [sys.executable, __file__, "--_mlem", str(threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if res.returncode != 0:
        return {"threads": threads, "error": res.stderr.strip().splitlines()[-1:]}
    return json.loads(res.stdout)


def mlem_accuracy(batch: int = 32, n_iter: int = 50) -> dict:
    """Deviation of the float32 sparse MLEM from a dense float64 MLEM on the same data."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PETDIFF_CACHE_DIR"] = tmp
        proj = Projector(64)
    act, source = phantoms(batch)
    y = poisson_sinogram(act, proj, counts=1e6, generator=torch.Generator().manual_seed(0))
    ours = mlem(y, proj, n_iter=n_iter).double().reshape(batch, -1).t()
    a = dense_reference_matrix(proj.geometry)
    t = time.perf_counter()
    ref = dense_mlem(y.double().reshape(batch, -1).t(), a, n_iter)
    dense_s = time.perf_counter() - t
    scale = ref.abs().amax(dim=0)
    mask = ref > 0.01 * scale
    return {
        "phantoms": source,
        "batch": batch,
        "n_iter": n_iter,
        "counts": 1e6,
        "dense_float64_reference_slices_per_s": round(batch / dense_s, 2),
        # per slice: max |λ − λ_ref| / max λ_ref, then the worst slice
        "max_rel_diff_vs_dense_float64": float(((ours - ref).abs().amax(dim=0) / scale).max()),
        # elementwise |λ − λ_ref| / λ_ref on pixels above 1 % of their slice's maximum
        "max_elementwise_rel_diff_above_1pct": float(((ours - ref).abs() / ref.clamp_min(1e-30))[mask].max()),
    }


def main() -> None:
    """Parse flags and print the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="also build the 512×512 matrix")
    parser.add_argument("--skip-mlem", action="store_true")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--_build", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_with-cache", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_mlem", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._build:
        print(json.dumps(build_one(args._build, args._with_cache)))
        return
    if args._mlem:
        print(json.dumps(mlem_speed(args._mlem)))
        return
    sizes = [64, 128, 256] + ([512] if args.full else [])
    result = {
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": list(os.getloadavg()),
        "build": [] if args.skip_build else [build_in_subprocess(n, with_cache=n <= 256) for n in sizes],
    }
    if not args.skip_mlem:
        result["mlem_64_batch32_50iter_speed"] = [
            speed_in_subprocess(1),
            speed_in_subprocess(2),
            speed_in_subprocess(2, wait_policy="PASSIVE"),
        ]
        result["mlem_64_accuracy"] = mlem_accuracy()
    result["load_average_at_end"] = list(os.getloadavg())
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
