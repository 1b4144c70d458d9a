"""Network speed on CPU: training images/s (forward + backward + Adam, conditional, batch 8) and denoiser evaluations/s.

Prints one JSON object. Each timed iteration is measured separately; we report the median and the best wall-clock
throughput (the best is the least disturbed by other processes on a shared machine) and the median throughput per
CPU-second of this process (insensitive to time slices lost to other processes; compare at equal thread counts).

A roofline view: the FLOPs of one training step and one evaluation per image (PyTorch's FlopCounterMode: convolutions,
matrix products, attention) and the machine's measured dense matrix-product peak at the same thread count and dtype,
so each variant reports the GFLOP/s it sustains and the share of that peak.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning. On a shared 2-core machine a spinning thread waits a whole
# scheduler slice at every barrier for its descheduled sibling (measured: 14× slower training under contention).
# Must be set before torch (libgomp) loads; override with OMP_WAIT_POLICY=ACTIVE in the environment.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from petdiff.diffusion.loss import EDMLoss
from petdiff.models import build_network, count_parameters

NETWORKS = {
    "pet_reference_64": ("pet_reference_64", {}),
    "pet_cpu_64": ("pet_cpu_64", {}),
    # The reference's 32-channel network (3.6 M parameters): same as pet_reference_64 at model_channels=32.
    "reference_32ch_64": ("pet_reference_64", {"model_channels": 32}),
}
VARIANTS = {
    "fp32": {},
    "fp32_contiguous": {"channels_last": False},
    "bf16_autocast": {"use_amp": True, "amp_dtype": "bfloat16"},
}
REFERENCE = {"pet_reference_64": {"train": 0.7, "eval": 3.0}, "reference_32ch_64": {"train": 8.8, "eval": 32.5}}


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def time_iterations(fn, warmup: int, iters: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process-CPU seconds of each timed call."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(iters):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def summarize(times: tuple[list[float], list[float]], batch: int) -> dict:
    wall, cpu = times
    return {
        "img_per_s_median": round(batch / statistics.median(wall), 3),
        "img_per_s_best": round(batch / min(wall), 3),
        "img_per_cpu_s_median": round(batch / statistics.median(cpu), 3),
        "iterations": len(wall),
    }


def inputs(net, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    gen = torch.Generator().manual_seed(seed)
    h, w = net.img_resolution
    images = torch.randn(batch, net.img_channels, h, w, generator=gen) * 0.5
    condition = torch.randn(batch, net.cond_channels, h, w, generator=gen) * 0.5
    return images, condition, gen


def train_step_fn(net, model, batch: int):
    """One optimisation step of the conditional EDM loss; `model` may be a compiled wrapper of `net`."""
    images, condition, gen = inputs(net, batch, 0)
    loss_fn = EDMLoss()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, images, condition=condition, generator=gen)
        loss.sum().div(batch).backward()
        opt.step()

    return step


def eval_fn(net, model, batch: int):
    """One denoiser evaluation D(x; σ) without autograd."""
    x, condition, _ = inputs(net, batch, 1)
    sigma = torch.full((batch,), 10.0)

    def evaluate():
        with torch.inference_mode():
            model(x * 20, sigma, condition=condition)

    return evaluate


def flops_per_image(net, batch: int) -> dict:
    """FLOPs of one training step (forward + backward) and of one denoiser evaluation, per image."""
    counts = {}
    for mode, make in (("train", train_step_fn), ("eval", eval_fn)):
        net.train(mode == "train")
        fn = make(net, net, batch)
        with FlopCounterMode(display=False) as counter:
            fn()
        counts[mode] = counter.get_total_flops() / batch
    return counts


def matmul_peak_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    """Best-of-`repeats` GFLOP/s of a dense size×size matrix product: the practical compute ceiling."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    # Warm-up: the first products start the thread pool and let the clock settle (measured: 120 vs 190 GFLOP/s).
    best = min(time_iterations(lambda: a @ b, 3, repeats)[0])
    return 2 * size**3 / best / 1e9


def add_roofline(result: dict, flops: dict, peak_gflops: float) -> dict:
    """Sustained GFLOP/s (median wall clock) and its share of the matrix-product peak, for train and eval."""
    for mode in ("train", "eval"):
        gflops = result[mode]["img_per_s_median"] * flops[mode] / 1e9
        result[mode]["gflop_per_s"] = round(gflops, 1)
        result[mode]["share_of_matmul_peak"] = round(gflops / peak_gflops, 2)
    return result


def bench(net, model, batch: int, warmup: int, train_iters: int, eval_iters: int) -> dict:
    net.train()
    train = summarize(time_iterations(train_step_fn(net, model, batch), warmup, train_iters), batch)
    net.eval()
    evaluation = summarize(time_iterations(eval_fn(net, model, batch), warmup, eval_iters), batch)
    return {"train": train, "eval": evaluation}


def bench_compiled(net, batch: int, train_iters: int, eval_iters: int) -> dict:
    """torch.compile (inductor): compile times measured separately from the steady-state throughput."""
    model = torch.compile(net)
    net.eval()
    evaluate = eval_fn(net, model, batch)
    t0 = time.perf_counter()
    evaluate()
    compile_eval_s = time.perf_counter() - t0
    net.train()
    step = train_step_fn(net, model, batch)
    t0 = time.perf_counter()
    step()
    compile_train_s = time.perf_counter() - t0
    out = bench(net, model, batch, 0, train_iters, eval_iters)
    return {"compile_eval_s": round(compile_eval_s, 1), "compile_train_s": round(compile_train_s, 1), **out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--variants", nargs="+", default=["fp32", "bf16_autocast"], choices=list(VARIANTS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--train-iters", type=int, default=3)
    parser.add_argument("--eval-iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the fp32 network")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    result = {
        "benchmark": "model",
        "device": "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "batch": args.batch,
        "resolution": [64, 64],
        "reference_img_per_s": REFERENCE,
        "matmul_peak_gflop_per_s": {"fp32": round(matmul_peak_gflops(torch.float32), 1),
                                    "bf16": round(matmul_peak_gflops(torch.bfloat16), 1)},
        "results": {},
    }
    for name in args.networks:
        preset, overrides = NETWORKS[name]
        # The FLOPs are the same for every variant (layout and precision change the speed, not the work).
        flops = flops_per_image(build_network(preset, seed=0, **overrides), 2)
        entry: dict = {"gflop_per_image": {k: round(v / 1e9, 2) for k, v in flops.items()}}
        for variant in args.variants:
            net = build_network(preset, seed=0, **overrides, **VARIANTS[variant])
            entry["params"] = count_parameters(net)
            peak = result["matmul_peak_gflop_per_s"]["bf16" if "bf16" in variant else "fp32"]
            entry[variant] = add_roofline(bench(net, net, args.batch, args.warmup, args.train_iters, args.eval_iters),
                                          flops, peak)
            log(name, variant, entry["params"], entry[variant])
        if args.compile:
            net = build_network(preset, seed=0, **overrides)
            entry["fp32_compiled"] = bench_compiled(net, args.batch, args.train_iters, args.eval_iters)
            log(name, "compiled", entry["fp32_compiled"])
        if name in REFERENCE:
            best = max(entry[v]["train"]["img_per_s_median"] for v in args.variants)
            best_eval = max(entry[v]["eval"]["img_per_s_median"] for v in args.variants)
            entry["speedup_vs_reference_median"] = {"train": round(best / REFERENCE[name]["train"], 2),
                                                    "eval": round(best_eval / REFERENCE[name]["eval"], 2)}
        result["results"][name] = entry
    print(json.dumps(result))


if __name__ == "__main__":
    main()
