"""Soak check of exact resume: random SIGKILL / SIGINT interruptions of a tiny training run; prints one JSON object.

    .venv/bin/python benchmarks/resume_soak.py                       # 20 interruptions, seed 0
    .venv/bin/python benchmarks/resume_soak.py --interruptions 40 --seed 3

One uninterrupted `petdiff train -cn=tiny_test` run (100 steps of batch 4, 2 steps per tick, a training state
every tick) is the reference. Then chains of the same run: each process is killed (SIGKILL) or asked to stop
(SIGINT) at a random moment after training has started, and resumed from the chain's latest training state, up
to --per-chain times; the last process of a chain runs to the end. Every chain's final weights, EMA and
optimiser state must equal the reference bit for bit. Temporaries that a SIGKILL left in the folder a run
resumes from must be gone after the resume. Not part of the test suite: it takes a few minutes on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from petdiff.training.checkpoint import load_training_state
from petdiff.training.rundir import find_latest_state

SETTINGS = ["-cn=tiny_test", "run.kimg=0.4", "run.state_dump_ticks=1", "run.snapshot_ticks=1000"]
TOTAL_NIMG = 400
BANNER = "petdiff train:"  # the first line: printed once the network is built and the state restored


def _env(cache: Path) -> dict[str, str]:
    """Single-threaded, unbuffered children sharing one system-matrix cache."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PETDIFF_CACHE_DIR": str(cache)}


def _start(root: Path, env: dict[str, str], resume: Path | None) -> subprocess.Popen:
    """One `petdiff train` process writing a new run folder under root."""
    cmd = [sys.executable, "-m", "petdiff", "train", *SETTINGS, f"run.run_dir={root}"]
    if resume is not None:
        cmd.append(f"run.resume={resume}")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _wait_for_banner(proc: subprocess.Popen) -> float:
    """Read the child's output until training starts; returns that moment (perf_counter)."""
    for line in proc.stdout:
        if line.startswith(BANNER):
            return time.perf_counter()
    raise RuntimeError(f"train exited with {proc.wait()} before training started")


def _reference(root: Path, env: dict[str, str]) -> tuple[dict, float]:
    """The uninterrupted run's final state and its training time after the banner."""
    proc = _start(root, env, None)
    started = _wait_for_banner(proc)
    proc.stdout.read()
    if proc.wait() != 0:
        raise RuntimeError("the reference run failed")
    seconds = time.perf_counter() - started
    return load_training_state(find_latest_state(next(root.iterdir()))), seconds


def _differences(a: dict, b: dict) -> list[str]:
    """Names of the tensors (weights, EMA, optimiser moments) that are not bitwise equal, and nimg if it differs."""
    diff = [] if a["nimg"] == b["nimg"] else ["nimg"]
    for key in ("net", "ema"):
        diff += [f"{key}.{n}" for n in a[key] if n not in b[key] or not torch.equal(a[key][n], b[key][n])]
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    diff += [f"optimizer.{i}.{k}" for i in sa for k in sa[i] if i not in sb or not torch.equal(sa[i][k], sb[i][k])]
    return diff


def _temporaries(folder: Path) -> list[Path]:
    """Files named like utils.io.atomic_write's temporaries."""
    return [p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]


def _chain(root: Path, env: dict[str, str], rng: random.Random, budget: int, train_seconds: float, counts: dict):
    """Interrupt and resume one run up to `budget` times, then let it finish; returns (final state, interruptions)."""
    folders: list[Path] = []
    delivered = 0
    while True:
        known = set(root.iterdir())
        with_state = [f for f in folders if find_latest_state(f) is not None]
        resume = with_state[-1] if with_state else None
        done = 0
        if resume is not None:
            state = load_training_state(find_latest_state(resume))
            if state["nimg"] == TOTAL_NIMG:  # killed after its final state was written: nothing left to train
                return state, delivered
            done = state["nimg"]
            counts["temporaries_found"] += len(_temporaries(resume))
        proc = _start(root, env, resume)
        started = _wait_for_banner(proc)
        if delivered < budget:
            sig = rng.choice((signal.SIGKILL, signal.SIGINT))
            # A random moment of the training that is left (the steps take equal time).
            moment = rng.uniform(0, train_seconds * (TOTAL_NIMG - done) / TOTAL_NIMG)
            time.sleep(max(0.0, moment - (time.perf_counter() - started)))
            if proc.poll() is None:
                proc.send_signal(sig)
                delivered += 1
                counts["sigkill" if sig == signal.SIGKILL else "sigint"] += 1
        output = proc.stdout.read()
        code = proc.wait()
        new = sorted(set(root.iterdir()) - known)
        folders += new
        if resume is not None:
            counts["temporaries_left"] += len(_temporaries(resume))
        if code == 0:
            latest = find_latest_state(new[0])
            if latest is None:
                raise RuntimeError(f"train exited with 0 but wrote no training state:\n{output[-2000:]}")
            state = load_training_state(latest)
            if state["nimg"] == TOTAL_NIMG:
                return state, delivered
            counts["sigint_stops"] += 1  # stopped cleanly by SIGINT: resume again
        elif code not in (-signal.SIGKILL, -signal.SIGINT, 130):
            raise RuntimeError(f"train exited with {code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interruptions", type=int, default=20)
    parser.add_argument("--per-chain", type=int, default=5, help="interruptions before a chain runs to the end")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="petdiff-soak-") as tmp:
        tmp = Path(tmp)
        env = _env(tmp / "matrix-cache")
        reference, train_seconds = _reference(tmp / "reference", env)
        counts = {"sigkill": 0, "sigint": 0, "sigint_stops": 0, "temporaries_found": 0, "temporaries_left": 0}
        chains, equal, processes, mismatches = 0, 0, 0, []
        while counts["sigkill"] + counts["sigint"] < args.interruptions:
            budget = min(args.per_chain, args.interruptions - counts["sigkill"] - counts["sigint"])
            root = tmp / f"chain-{chains}"
            root.mkdir()
            final, _ = _chain(root, env, rng, budget, train_seconds, counts)
            processes += len(list(root.iterdir()))
            diff = _differences(reference, final)
            equal += not diff
            if diff:
                mismatches.append({"chain": chains, "tensors": len(diff), "first": diff[:3]})
            chains += 1
    print(json.dumps({
        "config": " ".join(SETTINGS),
        "seed": args.seed,
        "interruptions": counts["sigkill"] + counts["sigint"],
        "sigkill": counts["sigkill"],
        "sigint": counts["sigint"],
        "sigint_clean_stops": counts["sigint_stops"],
        "chains": chains,
        "train_processes": processes,
        "chains_bitwise_equal": equal,
        "chains_different": len(mismatches),
        "mismatches": mismatches,
        "stale_temporaries_found_before_resume": counts["temporaries_found"],
        "stale_temporaries_left_after_resume": counts["temporaries_left"],
        "reference_train_seconds": round(train_seconds, 2),
        "seconds": round(time.perf_counter() - start, 1),
    }))


if __name__ == "__main__":
    main()
