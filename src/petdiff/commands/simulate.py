"""`petdiff simulate`: write pre-simulated (full-dose, low-dose) pairs to an .npz file.

`--phantoms scans` simulates what the scan models train on (data/scan_pairs.py): 3D brain and whole-body slabs at
1.5–4.5 mm pixels, a scanner's resolution, MLEM/OSEM with and without a post-filter, doses 2–60 %, as 64×64 patches
with their 2.5D context; `--n` then counts patches. The other phantom kinds make the 64×64, 4 mm MLEM-50 pairs of the
first model pair.
"""

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
from petdiff.data.scan_pairs import ScanPairSimulator, ScanSimulation
from petdiff.data.sources import phantom_source
from petdiff.phantoms.scan_slabs import scan_slabs
from petdiff.physics import Projector
from petdiff.utils.io import check_output_file, staged_outputs

PAIR_SUFFIX = ".npz"
SCANS = "scans"


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
                   help="'scans' (scan-like 2.5D patches: brain and whole body, see above), 'procedural' (anatomy), "
                        "'fields' (random label fields), 'mixed' (half each), or a BrainWeb .npz / .npy / NIfTI file")
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
        if args.phantoms != SCANS:
            source = phantom_source(args.phantoms, args.resolution)
            projector = Projector(args.resolution, device=args.device)
            simulator = PairSimulator(projector, args.counts, args.fraction, args.n_iter, args.alpha,
                                      args.normalization, random_contrast=args.random_contrast)
    except ValueError as exc:
        print(f"petdiff simulate: {exc}", file=sys.stderr)
        return 2
    generator = torch.Generator(args.device).manual_seed(args.seed)
    start = time.perf_counter()
    if args.phantoms == SCANS:
        return _write(out, _scan_chunks(args, generator), args.n, {"phantoms": SCANS, "seed": args.seed,
                                                                 **scan_meta()}, start)

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
    return _write(out, chunks(), args.n, meta, start)


def scan_meta() -> dict:
    """What a scan pair file records about its simulation (also the scan models' sidecar `data.simulation`)."""
    settings = ScanSimulation()
    return {"resolution": settings.patch, "context": settings.context, "normalization": "quantitative",
            "simulation": settings.as_dict()}


def _scan_chunks(args: argparse.Namespace, generator: torch.Generator):
    """Scan-like patches (ScanPairs), `args.batch` slabs of brain / whole-body / label-field anatomy at a time."""
    simulator = ScanPairSimulator(ScanSimulation(), device=args.device)
    settings = simulator.settings
    slabs_per_chunk = max(1, args.batch // settings.patches_per_slab)
    with tqdm(total=args.n, unit="pair", disable=not sys.stderr.isatty()) as bar:
        done, chunk = 0, 0
        while done < args.n:
            pixel_mm, slice_mm = simulator.draw_geometry(slabs_per_chunk, generator)
            # Every other chunk: the pixel size at which the grid's field of view holds the anatomy (a whole body or
            # head); the others: any pixel size, the grid then showing part of a body (a fine-grid whole-body scan).
            slabs = scan_slabs(slabs_per_chunk, settings.grid, None if chunk % 2 == 0 else pixel_mm, slice_mm,
                               settings.context, generator, device=args.device)
            pairs = simulator(slabs.activity, slabs.pixel_size_mm.cpu(), generator)
            chunk += 1
            done += pairs.full_dose.shape[0]
            bar.update(pairs.full_dose.shape[0])
            yield pairs


def _write(out, chunks, n: int, meta: dict, start: float) -> int:
    """Write the pairs atomically and print a JSON summary; 2 when the file cannot be written."""
    try:
        with staged_outputs(out.parent) as stage:
            write_pairs(stage / out.name, chunks, n, meta)
    except OSError as exc:
        print(f"petdiff simulate: --out: could not write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    print(json.dumps({"out": str(out), "pairs": n, "seconds": round(elapsed, 2),
                      "pairs_per_second": round(n / elapsed, 1)}))
    return 0
