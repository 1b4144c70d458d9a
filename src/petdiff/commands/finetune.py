"""`petdiff finetune LOW FULL -o OUTDIR`: adapt the pair to your own paired low/full-dose scans and recalibrate it.

LOW and FULL: two folders of cases in any form `petdiff enhance` reads (DICOM series folders, NIfTI volumes,
.npy / .npz arrays), matched by case name; or LOW alone: a CSV with columns `low,full` (and optionally `fraction`),
paths relative to the CSV. Each pair is checked (same grid and geometry, units, non-negative values, the low dose
plausibly a fraction of the full dose); a bad pair is reported and skipped. The regression network is fine-tuned
toward the full-dose scans, then the residual diffusion network, on patches at the scans' own pixel size with early
stopping on the validation pairs; the uncertainty is recalibrated on them. Writes OUTDIR/network/ (a pair for
`petdiff enhance --network OUTDIR/network/residual.safetensors`), OUTDIR/report.md, report.json (key "network"),
report.png. Interrupted? Run the same command with --resume. Exit status 0 on success, 2 on an error, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from petdiff.commands.help import DefaultsFormatter
from petdiff.io import UNITS

PROG = "petdiff finetune"


def build_parser() -> argparse.ArgumentParser:
    """Options of `petdiff finetune` (defaults shown by --help)."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=DefaultsFormatter)
    p.add_argument("low", metavar="LOW", help="folder of low-dose cases, or a CSV listing low,full[,fraction]")
    p.add_argument("full", metavar="FULL", nargs="?", default=None, help="folder of full-dose cases (same names)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--network", default=None, help="the residual snapshot of the pair to start from (its regression "
                                                   "beside it); default: the shipped pair")
    p.add_argument("--fraction", type=float, default=None,
                   help="dose fraction low/full (a CSV's 'fraction' column wins); default: Σ low / Σ full for counts")
    p.add_argument("--units", choices=UNITS, default=None, help="units of NIfTI / array values (default counts)")
    p.add_argument("--counts-per-unit", type=float, default=None,
                   help="counts one unit of a Bq/mL or SUV scan holds at low dose (default: estimated)")
    p.add_argument("--voxel-size", type=float, nargs=3, default=None, metavar=("DZ", "DY", "DX"),
                   help=".npy / .npz voxel size in mm")
    p.add_argument("--val", type=int, default=None, help="validation pairs (default: about 20 %%, at least 1)")
    p.add_argument("--kimg", type=float, default=2.0, help="at most this many thousand patches per network")
    p.add_argument("--batch", type=int, default=8, help="patches per step")
    p.add_argument("--lr", type=float, default=1e-4, help="learning rate (Adam)")
    p.add_argument("--eval-every", type=int, default=256, help="patches between validations")
    p.add_argument("--patience", type=int, default=4, help="validations without improvement before stopping")
    p.add_argument("--samples", type=int, default=8, help="posterior samples per slice for scoring and recalibrating")
    p.add_argument("--val-slices", type=int, default=16,
                   help="validation slices scored before/after and recalibrated on (spread over the pairs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the patches and the diffusion noise")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    p.add_argument("--resume", action="store_true", help="continue the unfinished fine-tune in OUTDIR")
    return p


def main(argv: list[str]) -> int:
    """Entry point: 0 on success, 2 on an error (the message says which file / option and why)."""
    args = build_parser().parse_args(argv)
    from petdiff.finetune import FinetuneOptions, finetune

    try:
        for name in ("batch", "eval_every", "patience", "samples", "val_slices"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')}: expected an integer >= 1, found {getattr(args, name)}")
        if args.samples < 2:
            raise ValueError(f"--samples: expected >= 2 (a std needs two samples), found {args.samples}")
        if not args.kimg > 0 or not args.lr > 0:
            raise ValueError(f"--kimg, --lr: expected positive numbers, found {args.kimg}, {args.lr}")
        if args.fraction is not None and not 0 < args.fraction < 1:
            raise ValueError(f"--fraction: expected a dose fraction in (0, 1), found {args.fraction}")
        options = FinetuneOptions(
            low=Path(args.low), full=None if args.full is None else Path(args.full), out=Path(args.out),
            network=None if args.network is None else Path(args.network), fraction=args.fraction, units=args.units,
            counts_per_unit=args.counts_per_unit,
            voxel_size=None if args.voxel_size is None else tuple(args.voxel_size),
            val=args.val, kimg=args.kimg, batch=args.batch, lr=args.lr, eval_every=args.eval_every,
            patience=args.patience, samples=args.samples, max_slices=args.val_slices, seed=args.seed,
            device=args.device, resume=args.resume)
        finetune(options, say=lambda line: print(line, flush=True))
    except ValueError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the last validation's state is kept: run the same command with --resume",
              file=sys.stderr)
        return 130
    return 0
