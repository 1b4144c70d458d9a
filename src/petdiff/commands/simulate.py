"""`petdiff simulate`: write pre-simulated (full-dose, low-dose) pairs to an .npz file."""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from tqdm import tqdm

from petdiff.commands.help import DefaultsFormatter
from petdiff.data.pair_file import write_pairs
from petdiff.data.pairs import PairSimulator
from petdiff.data.sources import phantom_source
from petdiff.physics import Projector
from petdiff.utils.io import check_output_file, staged_outputs

PAIR_SUFFIX = ".npz"


def _range(text: str) -> float | tuple[float, float]:
    """'1e6' → 1e6; '3e5:3e6' → (3e5, 3e6)."""
    lo, sep, hi = text.partition(":")
    try:
        return (float(lo), float(hi)) if sep else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or LOW:HIGH, found {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """Options of `petdiff simulate`."""
    p = argparse.ArgumentParser(prog="petdiff simulate", description=__doc__, formatter_class=DefaultsFormatter)
    p.add_argument("--phantoms", default="procedural",
                   help="'procedural' (anatomy), 'fields' (random label fields), 'mixed' (half each), "
                        "or a BrainWeb .npz / .npy / NIfTI file")
    p.add_argument("--n", type=int, required=True, help="number of pairs")
    p.add_argument("--resolution", type=int, default=64, help="image size (pixels per side)")
    p.add_argument("--counts", type=_range, default=1e6, help="full-dose expected counts, or LOW:HIGH (log-uniform)")
    p.add_argument("--fraction", type=_range, default=0.25, help="low-dose fraction, or LOW:HIGH (uniform)")
    p.add_argument("--n-iter", type=int, default=50, help="MLEM iterations")
    p.add_argument("--alpha", type=float, default=None, help="Dirichlet tissue perturbation (large = small)")
    p.add_argument("--random-contrast", type=float, default=0.0,
                   help="share of phantoms whose tissue contrasts are drawn uniformly on the simplex (needs --alpha)")
    p.add_argument("--normalization", default="quantitative", choices=("quantitative", "reference"),
                   help="how the pairs are scaled into the network range")
    p.add_argument("--batch", type=int, default=64, help="pairs simulated at once")
    p.add_argument("--seed", type=int, default=0, help="seed of the phantoms and the Poisson noise")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--out", required=True, help="output pair file (.npz, memory-mapped by training)")
    return p


def main(argv: list[str]) -> int:
    """Simulate pairs and write them atomically (the output path is checked before the work)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, message already printed)
        return int(exc.code or 0)
    if args.n < 1:
        print("petdiff simulate: --n: expected a positive number of pairs", file=sys.stderr)
        return 2
    if args.n_iter < 1:
        print(f"petdiff simulate: --n-iter: expected at least 1 MLEM iteration, found {args.n_iter}", file=sys.stderr)
        return 2
    try:
        out = check_output_file(args.out)  # before any pair is simulated
        if not out.name.lower().endswith(PAIR_SUFFIX):
            raise ValueError(f"--out: expected a pair file name ending in {PAIR_SUFFIX} (the only format simulate "
                             f"writes), found {out.name!r}")
        source = phantom_source(args.phantoms, args.resolution)
        projector = Projector(args.resolution, device=args.device)
        simulator = PairSimulator(projector, args.counts, args.fraction, args.n_iter, args.alpha, args.normalization,
                                  random_contrast=args.random_contrast)
    except ValueError as exc:
        print(f"petdiff simulate: {exc}", file=sys.stderr)
        return 2
    generator = torch.Generator(args.device).manual_seed(args.seed)
    start = time.perf_counter()

    def chunks():
        with tqdm(total=args.n, unit="pair", disable=not sys.stderr.isatty()) as bar:
            done = 0
            while done < args.n:
                b = min(args.batch, args.n - done)
                activity, labels = source.draw(b, generator, args.device)
                yield simulator(activity, labels, generator)
                done += b
                bar.update(b)

    meta = {
        "resolution": args.resolution,
        "phantoms": args.phantoms,
        "counts": args.counts,
        "fraction": args.fraction,
        "n_iter": args.n_iter,
        "alpha": args.alpha,
        "random_contrast": args.random_contrast,
        "normalization": args.normalization,
        "seed": args.seed,
    }
    try:
        with staged_outputs(out.parent) as stage:
            write_pairs(stage / out.name, chunks(), args.n, meta)
    except OSError as exc:
        print(f"petdiff simulate: --out: could not write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    path = out
    elapsed = time.perf_counter() - start
    print(
        json.dumps(
            {
                "out": str(path),
                "pairs": args.n,
                "seconds": round(elapsed, 2),
                "pairs_per_second": round(args.n / elapsed, 1),
            }
        )
    )
    return 0
