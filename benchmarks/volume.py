"""Whole volumes through `enhance_scan`, against the reference yardstick timed in the same run; one JSON object.

    .venv/bin/python benchmarks/volume.py --threads 2                   # the full set (on a quiet machine)
    .venv/bin/python benchmarks/volume.py --slices 16 --large-slices 4  # a quick look (extrapolated per slice)

Parts:
* yardstick: one posterior sample of the reference recipe per 64×64 slice (32-channel ADM, 60 Heun steps with
  churn, benchmarks/sampling.py), timed here, so every ratio compares the same machine in the same state;
* volume_128: a 128×128×Z body-like volume at 3.5 mm (Z = 299 by default, `--slices`), `--method posterior`
  with the model's default settings (mean + std) and `--method mean`; seconds, seconds per slice, the whole
  volume's seconds (measured, or extrapolated per slice when --slices < 299, said in the output), and the
  per-64² ratio: seconds per slice × 64²/(model-grid pixels) ÷ the yardstick;
* volume_440: a 440×440×Z volume at 1.65 mm (posterior) in a child process, for its peak resident memory
  (ru_maxrss of the child) and time per slice, extrapolated to 600 slices (`--large-slices`, default 16);
* precision: `--precision` as `petdiff enhance` (auto: bf16 where the CPU has it natively); `--compare-precision`
  also times the 128 posterior in float32 and in bfloat16.
The synthetic scans are Poisson counts of an ellipsoidal body with hot spots, about 180 counts per pixel at peak.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from petdiff.inference import enhance_scan, load_enhancer
from petdiff.io import Scan, scaling_affine

TARGETS = {"volume_128_posterior_s": 120.0, "volume_128_mean_s": 15.0, "posterior_ratio_per_64": 0.5,
           "volume_440_peak_gib": 8.0}
FULL = {"volume_128": 299, "volume_440": 600}


def _sampling_benchmark():
    """benchmarks/sampling.py as a module (the yardstick's definition lives there)."""
    spec = importlib.util.spec_from_file_location("bench_sampling", Path(__file__).with_name("sampling.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def yardstick_seconds(repeats: int) -> dict:
    """Median seconds of one reference posterior sample of one 64×64 slice."""
    from petdiff.models import build_network, count_parameters
    from petdiff.models.presets import network_config

    bench = _sampling_benchmark()
    net = build_network(network_config("pet_reference_64", **bench.YARDSTICK_OVERRIDES), seed=0).eval()
    net.requires_grad_(False)
    cond = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    times = []
    with torch.no_grad():
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            bench.draw(net, cond, [0], "edm", 60)
            if i:
                times.append(time.perf_counter() - t0)
    return {"parameters": count_parameters(net), "sampler": "edm", "steps": 60, "evaluations": 119,
            "seconds_per_slice": statistics.median(times)}


def body_volume(n: int, size: int, pixel_mm: float, seed: int = 0) -> Scan:
    """A Poisson-count volume (n, size, size) of an ellipsoidal body (≈ 180 counts per pixel at its hottest: inside
    the training dose range of both the 4 mm pair and the scan models at a 25 % dose)."""
    g = torch.Generator().manual_seed(seed)
    axis = (torch.arange(size, dtype=torch.float32) - size / 2) * pixel_mm
    y, x = axis[:, None], axis[None, :]
    body = ((x / 170) ** 2 + (y / 110) ** 2 < 1).float() * 60
    spots = sum(((x - cx) ** 2 + (y - cy) ** 2 < 15**2).float() * 120 for cx, cy in ((-60, 20), (40, -30), (0, 50)))
    z = torch.linspace(0.6, 1.0, n).view(n, 1, 1, 1)
    images = torch.poisson((body + spots).expand(n, 1, size, size) * z, generator=g)
    voxel = (2.0, pixel_mm, pixel_mm)
    return Scan(images=images, units="counts", voxel_size=voxel, affine=scaling_affine(voxel), space="RAS",
                fraction=0.25, kind="nifti")


def time_scan(enhancer, scan: Scan, method: str, full_slices: int, precision: str = "auto") -> dict:
    """Seconds of one enhance_scan, per slice, and for `full_slices` slices (extrapolated when fewer ran)."""
    settings = enhancer.settings(method, precision=precision)
    t0 = time.perf_counter()
    result = enhance_scan(enhancer, scan, settings)
    seconds = time.perf_counter() - t0
    n = scan.shape[0]
    grid = result.report["model_grid"]
    return {"method": method, "slices": n, "seconds": seconds, "seconds_per_slice": seconds / n,
            "full_volume_slices": full_slices, "full_volume_seconds": seconds / n * full_slices,
            "extrapolated": n != full_slices, "model_grid": grid, "network_input": result.report["network_input"],
            "tiles_per_slice": result.report["tiles_per_slice"], "settings": settings.as_dict(),
            "per_64_slice_seconds": seconds / n * 64 * 64 / (grid[0] * grid[1])}


def _large_child(pair: str | None, slices: int, threads: int, precision: str, conn) -> None:
    """Child process: the 440×440 volume, posterior; sends its timing back."""
    if threads > 0:
        torch.set_num_threads(threads)
    enhancer = load_enhancer(pair, device="cpu")
    scan = body_volume(slices, 440, 1.65, seed=1)
    conn.send(time_scan(enhancer, scan, enhancer.methods[-1], FULL["volume_440"], precision))
    conn.close()


def large_volume(pair: str | None, slices: int, threads: int, precision: str) -> dict:
    """The 440×440 part in a forked child, with the child's peak resident memory."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = ctx.Process(target=_large_child, args=(pair, slices, threads, precision, child))
    proc.start()
    out = parent.recv()
    proc.join()
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux; max over children
    out["peak_rss_gib"] = peak_kib / 2**20
    out["peak_rss_note"] = ("measured on the slices run: the working set is bounded by the slab and the pixels per "
                            "call; the input and the outputs add about 4 × 4 bytes per voxel on top for the full "
                            "volume" if peak_kib > before else "not measurable")
    voxels = FULL["volume_440"] * 440 * 440
    out["peak_gib_full_volume_estimate"] = out["peak_rss_gib"] + 16 * voxels * (1 - slices / FULL["volume_440"]) / 2**30
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the parts and print one JSON object."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pair", default=None, help="residual snapshot (default: the shipped pair)")
    p.add_argument("--slices", type=int, default=FULL["volume_128"], help="z extent of the 128×128 volume")
    p.add_argument("--large-slices", type=int, default=16, help="z extent of the 440×440 volume (0: skip)")
    p.add_argument("--repeats", type=int, default=3, help="timed yardstick samples")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--precision", default="auto", help="float32 | bfloat16 | auto (as petdiff enhance)")
    p.add_argument("--compare-precision", action="store_true",
                   help="also time the 128 posterior in float32 and in bfloat16")
    args = p.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    out = {"device": "cpu", "threads": torch.get_num_threads(), "torch": torch.__version__,
           "yardstick": yardstick_seconds(args.repeats)}
    reference = out["yardstick"]["seconds_per_slice"]
    enhancer = load_enhancer(args.pair, device="cpu")
    out["model"] = enhancer.spec.as_dict()
    scan = body_volume(args.slices, 128, 3.5)
    part = {method: time_scan(enhancer, scan, method, FULL["volume_128"], args.precision)
            for method in enhancer.methods}
    for row in part.values():
        row["ratio_per_64_slice"] = row["per_64_slice_seconds"] / reference
    out["volume_128"] = part
    if args.compare_precision:
        out["variants"] = {}
        for precision in ("float32", "bfloat16"):
            row = time_scan(enhancer, scan, enhancer.methods[-1], FULL["volume_128"], precision)
            row["ratio_per_64_slice"] = row["per_64_slice_seconds"] / reference
            out["variants"][precision] = row
    if args.large_slices > 0:
        out["volume_440"] = large_volume(args.pair, args.large_slices, args.threads, args.precision)
    posterior = part.get("posterior", part["mean"])
    out["targets"] = {
        "volume_128_posterior_s": {"value": posterior["full_volume_seconds"],
                                   "target": TARGETS["volume_128_posterior_s"]},
        "volume_128_mean_s": {"value": part["mean"]["full_volume_seconds"], "target": TARGETS["volume_128_mean_s"]},
        "posterior_ratio_per_64": {"value": posterior["ratio_per_64_slice"],
                                   "target": TARGETS["posterior_ratio_per_64"]},
    }
    if "volume_440" in out:
        out["targets"]["volume_440_peak_gib"] = {"value": out["volume_440"]["peak_rss_gib"],
                                                 "target": TARGETS["volume_440_peak_gib"]}
    for target in out["targets"].values():
        target["met"] = target["value"] <= target["target"]
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
