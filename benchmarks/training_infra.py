"""Overheads of the training infrastructure per step and per checkpoint; prints one JSON object.

    .venv/bin/python benchmarks/training_infra.py            # 57 M and 2.8 M parameter stand-ins
    .venv/bin/python benchmarks/training_infra.py --quick    # 2.8 M only

The networks are stacks of Linear layers with the parameter counts of the pet_reference_64 (57.1 M) and
pet_cpu_64 (2.8 M) presets, so the numbers do not depend on the models package. Reported: EMA update time per
step, network snapshot save/load time and size (safetensors + sidecar, sha256 checked), training-state save/load
(torch.save / weights_only load, with Adam state), InfiniteSampler indices per second, TickStats cost per report,
and Hydra config loading time. Median and best of repeats: wall-clock on a shared machine, expect noise.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from petdiff.data.sampler import InfiniteSampler
from petdiff.training.checkpoint import load_network, load_training_state, save_network, save_training_state
from petdiff.training.config import load_config
from petdiff.training.ema import EMA
from petdiff.training.stats import TickStats


def stand_in(n_params: int, width: int = 512) -> torch.nn.Module:
    """Linear(width, width) layers up to about n_params parameters."""
    layers = max(1, round(n_params / (width * width + width)))
    return torch.nn.Sequential(*(torch.nn.Linear(width, width) for _ in range(layers)))


def timed(fn, repeats: int, scale: float = 1.0) -> dict[str, float]:
    """Median and best of `repeats` calls, in seconds times `scale` (the best is the least disturbed by others)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * scale)
    return {"median": statistics.median(times), "best": min(times)}


def bench_network(n_params: int, repeats: int, folder: Path) -> dict:
    """EMA and checkpoint timings for one network size."""
    torch.manual_seed(0)
    net = stand_in(n_params)
    count = sum(p.numel() for p in net.parameters())
    ema = EMA(net, halflife_kimg=15, rampup_ratio=0.05)
    ema_ms = timed(lambda: ema.update(net, cur_nimg=10_000, batch_size=32), repeats * 5, scale=1e3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()

    snap = folder / "network-snapshot-000000.safetensors"
    arch = {"layers": len(net)}
    save_s = timed(lambda: save_network(snap, ema.module, arch, {"kimg": 0}), repeats)
    load_s = timed(lambda: load_network(snap, lambda a: stand_in(n_params)), repeats)
    state = folder / "training-state-000000.pt"
    state_save_s = timed(
        lambda: save_training_state(state, net=net, ema=ema, optimizer=opt, nimg=0, config={"run": {}}), repeats
    )
    state_load_s = timed(lambda: load_training_state(state), repeats)
    return {
        "params": count,
        "ema_update_ms": ema_ms,
        "snapshot_save_s": save_s,
        "snapshot_load_s": load_s,
        "snapshot_mib": snap.stat().st_size / 2**20,
        "state_save_s": state_save_s,
        "state_load_s": state_load_s,
        "state_mib": state.stat().st_size / 2**20,
    }


def main() -> None:
    """Run the benchmarks and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the 2.8 M parameter network")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = {"pet_cpu_64_2.8M": 2_780_000}
    if not args.quick:
        sizes["pet_reference_64_57.1M"] = 57_090_000
    out: dict = {"threads": torch.get_num_threads(), "note": "wall-clock on a shared CPU, measured under contention"}
    with tempfile.TemporaryDirectory() as tmp:
        for name, n in sizes.items():
            out[name] = bench_network(n, args.repeats, Path(tmp))

    sampler = InfiniteSampler(100_000, rank=0, world_size=2, seed=0)
    n_indices = 200_000
    sampler_s = timed(lambda: list(itertools.islice(iter(sampler), n_indices)), args.repeats)
    out["sampler_indices_per_s"] = {k: n_indices / v for k, v in sampler_s.items()}

    stats = TickStats()
    loss = torch.rand(32, 1, 64, 64)
    out["stats_report_us"] = timed(lambda: [stats.report("Loss/loss", loss) for _ in range(100)], args.repeats, 1e4)
    out["stats_reduce_ms"] = timed(stats.reduce, args.repeats, 1e3)
    out["config_load_s"] = timed(lambda: load_config("pet_cpu_64", ["run.kimg=5"]), args.repeats)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
