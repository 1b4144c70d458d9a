"""`petdiff evaluate`: compare the model's posterior with classical baselines on simulated scans.

Simulates full-dose scans of the phantoms (seeded) and thins them to each dose fraction, reconstructs them
with MLEM, runs the baselines (early stop and post-filter tuned on procedural training scans) and the model
(unless --no-model or none is available), and writes to --out: metrics.json, metrics.md, example_<slice>.png
(truth, full dose, low dose, best baseline, posterior mean / std, error map) and psnr_vs_dose.png (with
several fractions).
"""

from __future__ import annotations

import argparse
import sys
import time

from petdiff.commands.help import DefaultsFormatter
from petdiff.evaluate.outputs import write_outputs
from petdiff.evaluate.pipeline import evaluate_scans, log_stderr, open_model
from petdiff.evaluate.scans import load_phantoms
from petdiff.inference.model import read_role
from petdiff.utils.io import check_output_folder, staged_outputs

OUTPUTS = ("metrics.json", "metrics.md", "example_*.png", "psnr_vs_dose.png")  # one run's files, replaced together


def _fractions(text: str) -> tuple[float, ...]:
    """'0.1,0.25,0.5' → (0.1, 0.25, 0.5)."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected fractions like 0.1,0.25,0.5, found {text!r}") from None
    if not values or not all(0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected fractions in (0, 1], found {text!r}")
    return values


def _span(text: str) -> tuple[int, int]:
    """'a-b' → (a, b), inclusive."""
    lo, sep, hi = text.partition("-")
    try:
        a, b = (int(lo), int(hi)) if sep else (int(text), int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a slice range a-b, found {text!r}") from None
    if a < 0 or b < a:
        raise argparse.ArgumentTypeError(f"expected a slice range a-b with 0 ≤ a ≤ b, found {text!r}")
    return a, b


def build_parser() -> argparse.ArgumentParser:
    """Options of `petdiff evaluate`."""
    p = argparse.ArgumentParser(
        prog="petdiff evaluate", description=__doc__, formatter_class=DefaultsFormatter
    )
    p.add_argument("--network", default=None, help="network snapshot (.safetensors); default: the shipped weights")
    p.add_argument("--no-model", action="store_true", help="evaluate the baselines only")
    p.add_argument("--phantoms", default="procedural", help="'procedural' or a phantom file (BrainWeb .npz, ...)")
    p.add_argument("--fraction", type=float, default=0.25, help="dose fraction of the main comparison")
    p.add_argument("--fractions", type=_fractions, default=(), help="extra fractions for the PSNR-vs-dose plot")
    p.add_argument("--counts", type=float, default=1e6, help="expected full-dose counts per slice")
    p.add_argument("--samples", type=int, default=8, help="posterior samples per slice")
    p.add_argument("--n-slices", type=int, default=None, help="evenly spaced slices (procedural default 32; file: all)")
    p.add_argument("--slices", type=_span, default=None, help="slice range a-b (inclusive) of the phantom file")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the snapshot's)")
    p.add_argument("--sampler", default=None, help="sampler name (default: the snapshot's)")
    p.add_argument("--warm-start", type=float, default=None,
                   help="residual pair: start the sampler at this noise level σ instead of the cold start σ_max")
    p.add_argument("--seed", type=int, default=0, help="seed of the phantoms, scans and posterior samples")
    p.add_argument("--resolution", type=int, default=64, help="image size without a model (else the network's)")
    p.add_argument("--n-iter", type=int, default=50, help="MLEM iterations of the baselines")
    p.add_argument("--tune-n", type=int, default=32, help="procedural training scans for tuning the baselines")
    p.add_argument("--examples", type=int, default=3, help="example panels to draw")
    p.add_argument("--batch-size", type=int, default=16, help="samples per network call")
    p.add_argument("--device", default=None, help="'cpu', 'cuda', ... (default: CUDA when available)")
    p.add_argument("--out", default="evaluation", help="output folder")
    return p


def main(argv: list[str]) -> int:
    """Run the evaluation and write its files (all of one run, or none: an earlier run's stay intact)."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    log = log_stderr
    try:
        for name in ("samples", "n_iter", "tune_n", "batch_size"):
            if getattr(args, name) < 1:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag}: expected an integer >= 1, found {getattr(args, name)}")
        out = check_output_folder(args.out)  # before any scan is simulated
        device, model, note, resolution = open_model(
            args.network, args.no_model, args.samples, args.device, args.resolution
        )
        phantoms = load_phantoms(args.phantoms, resolution, args.n_slices, args.slices, args.seed, device)
        fractions = (args.fraction, *sorted(set(args.fractions) - {args.fraction}))
        log(f"{note} {len(phantoms.indices)} slices of {phantoms.source} at {resolution}×{resolution}, "
            f"{args.counts:g} counts, fractions {', '.join(f'{f:g}' for f in fractions)}")
        enhance_options = {"sampler": args.sampler, "steps": args.steps, "batch_size": args.batch_size}
        if args.warm_start is not None:
            if args.network is not None and read_role(args.network) == "denoiser":
                raise ValueError("--warm-start: only the residual pair has a warm start (found a single denoiser)")
            enhance_options["warm_start"] = args.warm_start
        evaluation = evaluate_scans(
            phantoms, args.counts, fractions, model, args.samples, args.seed, args.tune_n, args.n_iter,
            enhance_options, log,
        )
    except ValueError as exc:
        print(f"petdiff evaluate: {exc}", file=sys.stderr)
        return 2
    settings = {
        "counts": args.counts, "fractions": list(fractions), "n_iter": args.n_iter, "seed": args.seed,
        "samples": args.samples if model is not None else None, "sampler": args.sampler, "steps": args.steps,
        "warm_start": args.warm_start,
        "resolution": resolution, "tune_n": args.tune_n, "device": str(device),
    }
    try:
        with staged_outputs(out, replaces=OUTPUTS) as stage:
            written = [out / p.name for p in write_outputs(stage, evaluation, settings, note, args.examples)]
    except OSError as exc:
        print(f"petdiff evaluate: --out: could not write the outputs to {out}: {exc}", file=sys.stderr)
        return 2
    print((out / "metrics.md").read_text(encoding="utf-8"))
    log(f"wrote {len(written)} files to {out}/ in {time.perf_counter() - start:.1f} s")
    return 0
