"""`petdiff demo`: one procedural phantom → full-dose and 25 %-dose scans → MLEM → enhance → metrics + demo.png.

Runs on a fresh machine (no data files needed): the phantom is procedural and seeded. With the shipped model
(or --network) the low-dose scan is enhanced with K posterior samples; without one the baselines are shown.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from petdiff.commands.help import DefaultsFormatter
from petdiff.evaluate.outputs import json_safe, method_labels, result_json
from petdiff.evaluate.pipeline import DoseResult, Evaluation, evaluate_scans, log_stderr, open_model
from petdiff.evaluate.report import panel_figure
from petdiff.evaluate.scans import load_phantoms
from petdiff.recon import MLEM_ITERATIONS
from petdiff.utils.io import atomic_write, check_output_folder, staged_outputs

COUNTS, FRACTION, N_ITER, TUNE_N = 1e6, 0.25, MLEM_ITERATIONS, 16
TABLE_METHODS = ("low_dose_mlem", "post_filter", "early_stop_mlem", "full_dose_mlem", "regression_mean",
                 "posterior_mean")


def build_parser() -> argparse.ArgumentParser:
    """Options of `petdiff demo`."""
    p = argparse.ArgumentParser(prog="petdiff demo", description=__doc__, formatter_class=DefaultsFormatter)
    p.add_argument("--out", default="demo_output", help="output folder (demo.png, metrics.json)")
    p.add_argument("--network", default=None, help="network snapshot (.safetensors); default: the shipped weights")
    p.add_argument("--no-model", action="store_true", help="show the classical baselines only")
    p.add_argument("--samples", type=int, default=8, help="posterior samples")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the snapshot's)")
    p.add_argument("--seed", type=int, default=7, help="phantom, scan and sampling seed")
    p.add_argument("--device", default=None, help="'cpu', 'cuda', ... (default: CUDA when available)")
    return p


def table(result: DoseResult) -> str:
    """Plain-text table: PSNR / SSIM / NRMSE against the truth for the demo's methods."""
    labels = method_labels(result)
    rows = [f"{'method':<38} {'PSNR dB':>8} {'SSIM':>7} {'NRMSE':>7}"]
    for name in TABLE_METHODS:
        if name in result.summary:
            m = result.summary[name]["vs_truth"]
            psnr, ssim, nrmse = (m[key]["mean"] for key in ("psnr", "ssim", "nrmse"))
            rows.append(f"{labels[name]:<38} {psnr:8.2f} {ssim:7.3f} {nrmse:7.3f}")
    return "\n".join(rows)


def coverage_lines(result: DoseResult) -> str:
    """How often the posterior's 50 % / 90 % intervals contain the full-dose image and the truth."""
    lines = []
    for ref, c in (result.calibration or {}).items():
        name = "full-dose MLEM" if ref == "vs_full_dose" else "truth"
        lines.append(
            f"coverage of the {name:<14}: 50 % interval {100 * c['gaussian_0.5']:5.1f} %, "
            f"90 % interval {100 * c['gaussian_0.9']:5.1f} %  (a calibrated posterior: 50 %, 90 %; z std "
            f"{c['z_std']:.2f} vs {c['z_std_expected']:.2f})"
        )
    return "\n".join(lines)


def panel(evaluation: Evaluation, result: DoseResult, samples: int) -> bytes:
    """demo.png: truth, full dose, low dose, filtered, then posterior mean and std (or the early-stopped MLEM)."""
    labels = method_labels(result)

    def column(name: str, label: str) -> tuple[str, object, str]:
        psnr = result.summary[name]["vs_truth"]["psnr"]["mean"]
        return f"{label}\nPSNR {psnr:.2f} dB", result.images[name][0, 0].detach().cpu().float().numpy(), "activity"

    cols = [
        ("truth (activity)", evaluation.scans.truth[0, 0].cpu().numpy(), "activity"),
        column("full_dose_mlem", labels["full_dose_mlem"]),
        column("low_dose_mlem", f"25 % dose: {labels['low_dose_mlem']}"),
        column("post_filter", f"25 % + Gaussian, FWHM {result.settings.fwhm:g} px"),
    ]
    has_model = "posterior_mean" in result.images or "regression_mean" in result.images
    if "regression_mean" in result.images:
        cols.append(column("regression_mean", "regression mean (one pass)"))
    if "posterior_mean" in result.images:
        cols.append(column("posterior_mean", f"posterior mean ({samples} samples)"))
        if result.std is not None:
            cols.append(("posterior std (uncertainty)", result.std[0, 0].cpu().numpy(), "std"))
    else:
        cols.append(column("early_stop_mlem", f"25 % early-stopped ({result.settings.early_stop_iter} it.)"))
    title = f"petdiff demo: procedural phantom, {COUNTS:g} full-dose counts"
    return panel_figure(cols, title + ("" if has_model else " (no model: baselines only)"), ncols=4 if len(cols) > 6
                        else 3)


def main(argv: list[str]) -> int:
    """Run the demo; print the metrics; write demo.png and metrics.json."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    log = log_stderr
    try:
        out = check_output_folder(args.out)  # before any scan is simulated
        device, model, note, resolution = open_model(args.network, args.no_model, args.samples, args.device, 64)
        phantoms = load_phantoms("procedural", resolution, n_slices=1, seed=args.seed, device=device)
        options = {"steps": args.steps}
        evaluation = evaluate_scans(phantoms, COUNTS, (FRACTION,), model, args.samples, args.seed, TUNE_N, N_ITER,
                                    options, log)
    except ValueError as exc:
        print(f"petdiff demo: {exc}", file=sys.stderr)
        return 2
    result = evaluation.results[0]
    png = panel(evaluation, result, args.samples)
    doc = json_safe({
        "note": note,
        "model": evaluation.model_info,
        "settings": {"counts": COUNTS, "fraction": FRACTION, "n_iter": N_ITER, "seed": args.seed,
                     "resolution": resolution, "samples": args.samples if model is not None else None},
        **result_json(result),
    })
    try:
        with staged_outputs(out, replaces=("demo.png", "metrics.json")) as stage:  # both files, or the old pair
            with atomic_write(stage / "demo.png", "wb") as f:
                f.write(png)
            with atomic_write(stage / "metrics.json", "w") as f:
                f.write(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    except OSError as exc:
        print(f"petdiff demo: --out: could not write the outputs to {out}: {exc}", file=sys.stderr)
        return 2
    print(note)
    print(table(result))
    if result.calibration:
        print(coverage_lines(result))
    print(f"wrote {out / 'demo.png'} and {out / 'metrics.json'} in {time.perf_counter() - start:.1f} s")
    return 0
