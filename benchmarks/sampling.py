"""Sampling speed (and, with a trained network, quality vs. number of steps); prints one JSON object.

    .venv/bin/python benchmarks/sampling.py                       # timings, untrained pet_cpu_64 network
    .venv/bin/python benchmarks/sampling.py --network PATH --pairs PAIRS.npz   # + fewest steps within 0.2 dB
    .venv/bin/python benchmarks/sampling.py --methods-only        # the enhance methods vs the reference yardstick

Timings: seconds per denoiser evaluation of one 64×64 slice (batch 1 and per slice at batch 8), and
seconds per slice for the reference schedule (EDM Heun, 60 steps = 119 evaluations, with churn) and
for fewer steps with each solver. An untrained network says nothing about quality, so the
"fewest steps within 0.2 dB PSNR of the 60-step result" part only runs with a trained snapshot
(--network, a safetensors file + JSON sidecar) and held-out pairs (--pairs, a pair file with
`full_dose` / `low_dose` arrays): for each solver it reports the PSNR against the full-dose image
per step count and the fewest steps whose PSNR is within 0.2 dB of the reference 60-step sampler's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch

from petdiff.diffusion import EDM_REFERENCE_SAMPLING, SAMPLERS, StackedRandomGenerator, sample
from petdiff.diffusion.samplers import ODE_SOLVERS

REFERENCE_SECONDS_PER_SLICE = {"57.1M_params_edm_60_steps": 40.0, "3.6M_params_edm_60_steps": 3.7}
# The yardstick of the speed targets: one posterior sample of the reference recipe with a 32-channel ADM network
# (3.6 M parameters), 60 Heun steps with churn (119 evaluations), timed with petdiff's own code in the same run.
YARDSTICK_OVERRIDES = {"model_channels": 32}
TARGET_RATIOS = {"posterior": 0.5, "mean": 0.02}


def evaluations(sampler: str, num_steps: int) -> int:
    """Denoiser evaluations per sample: Heun 2N − 1, Euler and DPM++(2M) N."""
    return 2 * num_steps - 1 if sampler == "edm" else num_steps


def make_denoise(net: torch.nn.Module, condition: torch.Tensor):
    """denoise(x, σ) = D(x; σ, condition) with the network's sampler-facing call (no augmentation labels)."""
    if not net.cond_channels:  # unconditional network: the condition only fixes batch size and resolution
        return lambda x, sigma: net(x, sigma)
    return lambda x, sigma: net(x, sigma, condition=condition)


def sampler_opts(sampler: str, num_steps: int) -> dict:
    """The reference churn settings (S_churn = 40, so γ = min(40/N, √2 − 1)) for EDM/Euler; DPM++(2M) has none."""
    if sampler == "dpmpp_2m":
        return {"num_steps": num_steps}
    return {**EDM_REFERENCE_SAMPLING, "num_steps": num_steps}


def draw(net, condition, seeds, sampler, num_steps):
    """One sample per condition row, noise from the seeds."""
    rnd = StackedRandomGenerator(condition.device, seeds)
    latents = rnd.randn((condition.shape[0], net.img_channels, *condition.shape[2:]))
    opts = sampler_opts(sampler, num_steps)
    if "S_churn" in opts:
        opts["noise"] = rnd
    return sample(make_denoise(net, condition), latents, sampler, **opts)


def time_evaluation(net, condition, repeats: int) -> dict:
    """Seconds per denoiser evaluation (median and min over `repeats` after two warm-up calls)."""
    x = torch.randn(condition.shape[0], net.img_channels, *condition.shape[2:])
    sigma = torch.full((condition.shape[0],), 1.0)
    times = []
    with torch.no_grad():
        for i in range(repeats + 2):
            t0 = time.perf_counter()
            make_denoise(net, condition)(x, sigma)
            if i >= 2:
                times.append(time.perf_counter() - t0)
    return {"median": statistics.median(times), "min": min(times)}


def time_schedule(net, condition, sampler, num_steps) -> float:
    """Wall-clock seconds of one full sampling run."""
    t0 = time.perf_counter()
    draw(net, condition, list(range(condition.shape[0])), sampler, num_steps)
    return time.perf_counter() - t0


def psnr(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-slice PSNR = 10·log10(range(ref)² / MSE), range = max − min of the reference slice."""
    mse = ((x - ref) ** 2).flatten(1).mean(1)
    rng = ref.flatten(1).amax(1) - ref.flatten(1).amin(1)
    return 10 * torch.log10(rng**2 / mse)


def quality(net, pairs_path: str, n_slices: int, steps: list[int], solvers: list[str], tol_db: float) -> dict:
    """PSNR vs the full-dose image per solver/step count; fewest N with |PSNR(n) − PSNR(EDM-60)| ≤ tol for all n ≥ N."""
    with np.load(pairs_path) as f:
        for key in ("full_dose", "low_dose"):
            if key not in f:
                raise ValueError(f"{pairs_path}: expected array {key!r}, found keys {sorted(f.files)}")
        full = torch.from_numpy(np.asarray(f["full_dose"][:n_slices], dtype=np.float32))
        low = torch.from_numpy(np.asarray(f["low_dose"][:n_slices], dtype=np.float32))
    seeds = list(range(len(low)))
    reference = float(psnr(draw(net, low, seeds, "edm", 60), full).mean())
    out = {"slices": len(low), "reference_edm_60_psnr_db": reference, "tolerance_db": tol_db, "solvers": {}}
    for sampler in solvers:
        curve = {n: float(psnr(draw(net, low, seeds, sampler, n), full).mean()) for n in steps}
        # two-sided, and for every larger step count too: too few steps can collapse the samples towards the
        # posterior mean, which *raises* PSNR against the truth while the spread is wrong
        fewest = None
        for n in sorted(steps, reverse=True):
            if abs(curve[n] - reference) > tol_db:
                break
            fewest = n
        out["solvers"][sampler] = {
            "psnr_db_by_steps": {str(n): v for n, v in curve.items()},
            "fewest_steps_within_tolerance": fewest,
            "evaluations": evaluations(sampler, fewest) if fewest else None,
        }
    return out


def _median_seconds(fn, repeats: int) -> float:
    """Median wall-clock seconds of fn() over `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def methods(pair: str | None, repeats: int) -> dict:
    """Seconds per slice of `enhance --method mean|posterior` (default settings, mean and std included) as ratios
    of one reference sample (the yardstick) timed in the same run."""
    from petdiff.inference import enhance_slices, load_enhancer
    from petdiff.models import build_network, count_parameters
    from petdiff.models.presets import network_config

    yardstick = build_network(network_config("pet_reference_64", **YARDSTICK_OVERRIDES), seed=0).eval()
    parameters = count_parameters(yardstick)
    yardstick.requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    cond = torch.rand(1, 1, 64, 64, generator=gen) * 2 - 1
    with torch.no_grad():
        reference = _median_seconds(lambda: draw(yardstick, cond, [0], "edm", 60), max(1, repeats // 3))
    enhancer = load_enhancer(pair)
    settings = enhancer.settings("posterior") if "posterior" in enhancer.methods else None
    low = torch.poisson(torch.full((8, 1, *enhancer.spec.resolution), 3.0), generator=gen)
    out = {
        "yardstick": {"parameters": parameters, "sampler": "edm", "steps": 60, "evaluations": 119,
                      "seconds_per_slice": reference},
        "pair": {m.role: str(m.path) for m in enhancer.models},
    }
    mean_settings = enhancer.settings("mean")
    for batch in (1, 8):
        seconds = _median_seconds(lambda b=batch: enhance_slices(enhancer, low[:b], 0.25, mean_settings),
                                  repeats) / batch
        out[f"mean_batch_{batch}"] = {"seconds_per_slice": seconds, "ratio_to_yardstick": seconds / reference}
    if settings is not None:
        out["posterior_settings"] = settings.as_dict()
        for batch in (1, 4):
            seconds = _median_seconds(lambda b=batch: enhance_slices(enhancer, low[:b], 0.25, settings),
                                      max(1, repeats // 3)) / batch
            out[f"posterior_batch_{batch}"] = {"seconds_per_slice": seconds, "ratio_to_yardstick": seconds / reference}
        warm = enhancer.settings("posterior", warm_start=1.0)
        seconds = _median_seconds(lambda: enhance_slices(enhancer, low[:1], 0.25, warm), max(1, repeats // 3))
        out["posterior_warm_start_1.0_batch_1"] = {"seconds_per_slice": seconds,
                                                    "ratio_to_yardstick": seconds / reference}
    out["targets"] = {
        "mean": {"ratio": out["mean_batch_1"]["ratio_to_yardstick"], "target": TARGET_RATIOS["mean"],
                 "met": out["mean_batch_1"]["ratio_to_yardstick"] <= TARGET_RATIOS["mean"]},
    }
    if settings is not None:
        ratio = out["posterior_batch_1"]["ratio_to_yardstick"]
        out["targets"]["posterior"] = {"ratio": ratio, "target": TARGET_RATIOS["posterior"],
                                       "met": ratio <= TARGET_RATIOS["posterior"]}
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON object."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="pet_cpu_64", help="network preset for the timings (untrained)")
    p.add_argument("--network", default=None, help="trained snapshot (safetensors + JSON sidecar) for quality")
    p.add_argument("--pairs", default=None, help="pair file with full_dose / low_dose arrays (quality part)")
    p.add_argument("--slices", type=int, default=8, help="slices for the quality part")
    p.add_argument("--steps", default="5,8,10,14,20,30,40", help="fewer-step counts to time / evaluate")
    p.add_argument("--solvers", default=",".join(ODE_SOLVERS), help="solvers to time / evaluate")
    p.add_argument("--repeats", type=int, default=10, help="timed denoiser evaluations per batch size")
    p.add_argument("--tolerance-db", type=float, default=0.2)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--pair", default=None, help="residual (or regression) snapshot for the methods part "
                   "(default: the shipped pair)")
    p.add_argument("--methods-only", action="store_true", help="only time the enhance methods vs the yardstick")
    args = p.parse_args(argv)
    if args.threads > 0:
        # on a shared CPU one thread is far steadier: oversubscribed intra-op threads wait on each other
        torch.set_num_threads(args.threads)
    if args.methods_only:
        print(json.dumps({"benchmark": "sampling-methods", "device": "cpu", "torch_threads": torch.get_num_threads(),
                          **methods(args.pair, args.repeats)}))
        return 0
    steps = [int(s) for s in args.steps.split(",") if s]
    solvers = [s for s in args.solvers.split(",") if s]
    unknown = sorted(set(solvers) - set(SAMPLERS))
    if unknown:
        raise SystemExit(f"--solvers: expected names among {sorted(SAMPLERS)}, found {unknown}")

    result: dict = {
        "benchmark": "sampling",
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "note": "CPU timings measured while other jobs shared the 2 cores: noisy, compare within one run only; "
        "'min' per evaluation is the least disturbed figure",
        "reference_seconds_per_slice": REFERENCE_SECONDS_PER_SLICE,
    }
    try:
        from petdiff.models import NETWORK_PRESETS, build_network, count_parameters
    except ImportError as e:  # the models stage is written in parallel; the timings need its network
        result["status"] = f"awaiting petdiff.models.build_network / NETWORK_PRESETS ({e})"
        print(json.dumps(result))
        return 0

    if args.network:
        from petdiff.training.checkpoint import load_network

        net, _ = load_network(args.network, build_network)
        result["network"] = {"path": args.network, "trained": True}
    else:
        net = build_network(NETWORK_PRESETS[args.preset], seed=0).eval()
        result["network"] = {"preset": args.preset, "trained": False}
    result["network"]["parameters"] = count_parameters(net)
    net.requires_grad_(False)
    res = net.img_resolution
    res = tuple(res) if isinstance(res, (list, tuple)) else (res, res)
    result["resolution"] = list(res)

    gen = torch.Generator().manual_seed(0)
    cond1 = torch.randn(1, max(net.cond_channels, 1), *res, generator=gen)
    cond8 = torch.randn(8, max(net.cond_channels, 1), *res, generator=gen)
    per_eval_1 = time_evaluation(net, cond1, args.repeats)
    per_eval_8 = time_evaluation(net, cond8, max(2, args.repeats // 4))
    result["seconds_per_evaluation"] = {
        "batch_1": per_eval_1,
        "batch_8_per_slice": {k: v / 8 for k, v in per_eval_8.items()},
    }

    schedules = [("edm", 60)] + [(s, n) for s in solvers for n in steps if (s, n) != ("edm", 60)]
    rows = []
    for sampler, n in schedules:
        seconds = time_schedule(net, cond1, sampler, n)
        rows.append({
            "sampler": sampler,
            "num_steps": n,
            "evaluations": evaluations(sampler, n),
            "seconds_per_slice": seconds,
            "evaluations_times_min_evaluation": evaluations(sampler, n) * per_eval_1["min"],
        })
    result["schedules"] = rows
    result["reference_schedule_seconds_per_slice"] = rows[0]["seconds_per_slice"]
    result["reference_schedule_seconds_per_slice_at_batch_8"] = 119 * per_eval_8["median"] / 8

    if args.network and args.pairs:
        result["quality"] = quality(net, args.pairs, args.slices, sorted({*steps, 60}), solvers, args.tolerance_db)
    else:
        result["quality"] = "skipped: needs --network (trained) and --pairs; an untrained network says nothing"
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
