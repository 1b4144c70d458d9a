"""Reference figures of the classical methods on the BrainWeb subject, with our code, as one JSON object.

All slices (default), 1e6 full-dose counts, 25 % dose, 50 MLEM iterations, PSNR vs truth after scaling to the
true total (data range = the true slice's max), averaged over slices. Besides the train-tuned baselines of
`petdiff evaluate` (early stop / FWHM chosen on procedural phantoms) it reports the *oracle* settings chosen
on the test slices themselves: an upper bound for those baselines, not a fair comparison.

    .venv/bin/python benchmarks/quality.py [--brainweb PATH] [--n-slices N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from petdiff.evaluate.baselines import FWHM_GRID, mlem_path, tune_baselines
from petdiff.evaluate.metrics import psnr, scale_to_total, ssim
from petdiff.evaluate.scans import load_phantoms, simulate_scans
from petdiff.physics import Projector
from petdiff.recon import gaussian_filter, mlem

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "brainweb_subject_infer_64.npz"
REFERENCE = {"low_dose_mlem": 20.5, "post_filter_best": 21.1, "early_stop_best": 21.05, "full_dose_mlem": 23.75,
             "noiseless_mlem": 26.0, "low_dose_ssim": 0.865, "full_dose_ssim": 0.917}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--brainweb", default=str(DEFAULT))
    p.add_argument("--n-slices", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--counts", type=float, default=1e6)
    p.add_argument("--fraction", type=float, default=0.25)
    args = p.parse_args()
    start = time.perf_counter()
    ph = load_phantoms(args.brainweb, 64, n_slices=args.n_slices)
    projector = Projector(64)
    scans = simulate_scans(ph.activity, projector, args.counts, (args.fraction,),
                           torch.Generator().manual_seed(args.seed))
    truth, f, n = scans.truth, args.fraction, len(ph.indices)

    t0 = time.perf_counter()
    both = mlem(torch.cat([scans.full, scans.expected]), projector, n_iter=50)
    path = mlem_path(scans.low[f], projector, 50)
    recon_seconds = time.perf_counter() - t0

    def mean_psnr(x: torch.Tensor) -> float:
        return float(psnr(scale_to_total(x, truth), truth).mean())

    def mean_ssim(x: torch.Tensor) -> float:
        return float(ssim(scale_to_total(x, truth), truth).mean())

    by_iter = [mean_psnr(path[k]) for k in range(1, 51)]
    by_fwhm = [mean_psnr(gaussian_filter(path[50], w)) for w in FWHM_GRID]
    tuned = tune_baselines(args.counts, f, 64, n=32, seed=args.seed)
    measured = {
        "low_dose_mlem": by_iter[-1],
        "low_dose_ssim": mean_ssim(path[50]),
        "full_dose_mlem": mean_psnr(both[:n]),
        "full_dose_ssim": mean_ssim(both[:n]),
        "noiseless_mlem": mean_psnr(both[n:]),
        "early_stop_best": max(by_iter),
        "post_filter_best": max(by_fwhm),
    }
    print(json.dumps({
        "slices": n, "counts": args.counts, "fraction": f, "seed": args.seed,
        "measured": {k: round(v, 3) for k, v in measured.items()},
        "reference": REFERENCE,
        "oracle_early_stop_iter": by_iter.index(max(by_iter)) + 1,
        "oracle_fwhm_px": FWHM_GRID[by_fwhm.index(max(by_fwhm))],
        "train_tuned": {"early_stop_iter": tuned.early_stop_iter, "fwhm_px": tuned.fwhm,
                        "early_stop_psnr": round(by_iter[tuned.early_stop_iter - 1], 3),
                        "post_filter_psnr": round(mean_psnr(gaussian_filter(path[50], tuned.fwhm)), 3)},
        "psnr_by_iter": [round(v, 3) for v in by_iter],
        "mlem_50_iter_slices_per_second": round(3 * n / recon_seconds, 2),  # full, noiseless, low-dose path
        "seconds": round(time.perf_counter() - start, 1),
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
