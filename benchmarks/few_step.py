"""Few-step residual samplers against the default 8-step one: posterior-mean PSNR and 90 % coverage; one JSON object.

    .venv/bin/python benchmarks/few_step.py                      # the shipped pair, 8 procedural slices
    .venv/bin/python benchmarks/few_step.py --pair PATH --slices 16 --samples 16

Held-out procedural phantoms (seeded, not the training stream) are simulated at 1e6 full-dose counts and a
25 % dose, reconstructed with the MLEM the pair expects, and enhanced with each deterministic solver
setting (sampler, steps, warm start); every setting draws the same seeds (antithetic pairs, as the default).
Reported per setting: network passes per sample, seconds, the posterior mean's PSNR against the truth and the
fraction of head pixels whose truth lies in the Gaussian 90 % interval, and their differences from the
reference setting (issue 17's bar: within 0.1 dB and 2 points with ≤ 2 passes per sample).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from petdiff.evaluate.calibration import coverage, gaussian_intervals
from petdiff.evaluate.masks import head_mask
from petdiff.evaluate.metrics import psnr
from petdiff.evaluate.scans import simulate_scans
from petdiff.inference import enhance_slices, load_enhancer
from petdiff.phantoms import procedural_phantoms
from petdiff.physics import Projector
from petdiff.recon import mlem

REFERENCE = ("dpmpp_2m", 8, None)
# (sampler, steps, warm start σ): passes per sample = steps (Euler, DPM++(2M)), 2·steps − 1 (Heun)
SETTINGS = (REFERENCE, ("euler", 1, None), ("euler", 2, None), ("dpmpp_2m", 2, None), ("edm", 1, None),
            ("euler", 1, 1.0), ("euler", 2, 1.0), ("dpmpp_2m", 2, 1.0), ("edm", 1, 1.0))


def passes(sampler: str, steps: int) -> int:
    """Network evaluations per sample."""
    return 2 * steps - 1 if sampler == "edm" else steps


def held_out(n: int, seed: int, resolution: int, fraction: float, n_iter: int
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(low-dose MLEM in counts, truth in full-dose counts, head mask) of n procedural slices."""
    g = torch.Generator().manual_seed(seed)
    activity = procedural_phantoms(n, resolution, generator=g).activity
    projector = Projector(resolution)
    scans = simulate_scans(activity, projector, 1e6, (fraction,), g)
    low = mlem(scans.low[fraction], projector, n_iter=n_iter)
    return low, scans.truth, head_mask(scans.truth)


def run(pair: str | None, slices: int, samples: int, seed: int, fraction: float) -> dict:
    """Every setting on the same slices and seeds; differences from the reference setting."""
    enhancer = load_enhancer(pair, "posterior", device="cpu")
    low, truth, mask = held_out(slices, seed, enhancer.spec.resolution[0], fraction, enhancer.spec.n_iter)
    rows = []
    for sampler, steps, warm in SETTINGS:
        settings = enhancer.settings("posterior", samples=samples, sampler=sampler, steps=steps, warm_start=warm)
        t0 = time.perf_counter()
        out = enhance_slices(enhancer, low, fraction, settings)
        seconds = time.perf_counter() - t0
        lower, upper = gaussian_intervals(out.mean, out.std, 0.9, samples)
        rows.append({"sampler": sampler, "steps": steps, "warm_start": warm,
                     "passes_per_sample": passes(sampler, steps), "seconds": seconds,
                     "psnr_db": float(psnr(out.mean, truth, mask).mean()),
                     "coverage_90": float(coverage(lower, upper, truth, mask).mean())})
    ref = rows[0]
    for row in rows:
        row["delta_psnr_db"] = row["psnr_db"] - ref["psnr_db"]
        row["delta_coverage_points"] = 100 * (row["coverage_90"] - ref["coverage_90"])
        row["meets_bar"] = (row["passes_per_sample"] <= 2 and abs(row["delta_psnr_db"]) <= 0.1
                            and abs(row["delta_coverage_points"]) <= 2)
    return {"pair": [str(m.path) for m in enhancer.models], "slices": slices, "samples": samples,
            "fraction": fraction, "reference": {"sampler": REFERENCE[0], "steps": REFERENCE[1]}, "settings": rows,
            "best_within_bar": [r for r in rows[1:] if r["meets_bar"]]}


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print one JSON object."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pair", default=None, help="residual snapshot (default: the shipped pair)")
    p.add_argument("--slices", type=int, default=8)
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--seed", type=int, default=1234, help="phantom / scan seed (not a training seed)")
    p.add_argument("--fraction", type=float, default=0.25)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(json.dumps(run(args.pair, args.slices, args.samples, args.seed, args.fraction), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
