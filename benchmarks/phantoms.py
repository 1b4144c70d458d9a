"""Phantom-source benchmark: procedural phantom throughput, Dirichlet perturbation speed, BrainWeb loading, and
how close procedural statistics are to the BrainWeb reference subject.

Prints one JSON object. Throughputs are the median of `--repeats` runs, at the default torch thread count and
with one thread (on a busy shared CPU one thread is often faster: each tensor op is small).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from petdiff.phantoms import load_brainweb, perturb_concentrations, procedural_phantoms

BRAINWEB = Path(__file__).resolve().parents[2] / "shared" / "data" / "brainweb_subject_infer_64.npz"
HEAD_THRESHOLD = 0.5


def median_rate(fn, items: int, repeats: int) -> float:
    """Items per second, median over repeats (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return items / statistics.median(times)


def slice_stats(x: torch.Tensor) -> dict:
    """Mean and slice-to-slice spread of head fraction and mean activity inside the head."""
    head = x > HEAD_THRESHOLD
    frac = head.float().mean((1, 2, 3))
    mean_in = (x * head).sum((1, 2, 3)) / head.sum((1, 2, 3)).clamp_min(1)
    return {
        "head_fraction_mean": round(float(frac.mean()), 4),
        "head_fraction_std": round(float(frac.std()), 4),
        "mean_in_head_mean": round(float(mean_in.mean()), 3),
        "mean_in_head_std": round(float(mean_in.std()), 3),
        "max_median": round(float(x.flatten(1).max(1).values.median()), 3),
    }


def main() -> None:
    """Run the benchmark and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="phantoms per timed call")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    out: dict = {"torch_threads_default": torch.get_num_threads(), "n": args.n}
    default_threads = torch.get_num_threads()
    ph = procedural_phantoms(args.n, 64, 0)
    for threads in sorted({default_threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        key = f"threads_{threads}"
        out[key] = {
            "procedural_64_per_s": round(median_rate(lambda: procedural_phantoms(args.n, 64, 0), args.n, args.repeats)),
            "procedural_128_per_s": round(
                median_rate(lambda: procedural_phantoms(args.n // 4, 128, 0), args.n // 4, args.repeats)
            ),
            "procedural_64_supersample4_per_s": round(
                median_rate(lambda: procedural_phantoms(args.n // 4, 64, 0, supersample=4), args.n // 4, args.repeats)
            ),
        }
        out[key]["perturb_64_per_s"] = round(
            median_rate(lambda: perturb_concentrations(ph.labels, ph.concentrations, 10.0, 1), args.n, args.repeats)
        )
    torch.set_num_threads(default_threads)
    procedural = procedural_phantoms(1000, 64, generator=123, lesions=False)
    out["procedural_stats_no_lesions"] = slice_stats(procedural.activity)
    out["procedural_stats_with_lesions"] = slice_stats(procedural_phantoms(1000, 64, generator=123).activity)
    if BRAINWEB.is_file():
        t = time.perf_counter()
        bw = load_brainweb(BRAINWEB)
        out["load_brainweb_s"] = round(time.perf_counter() - t, 4)
        out["brainweb_stats"] = slice_stats(bw)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
