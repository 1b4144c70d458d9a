"""`petdiff demo`: a held-out whole-body (or brain) scan → full-dose and 25 %-dose scans → enhance → numbers + demo.png.

Runs on a fresh machine (no data files needed): the phantom is a seeded 3D procedural slab of the project's own
anatomy, scanned as a site scans it (evaluate/scan_settings.py: pixel size, scanner resolution, OSEM, post-filter,
counts). With the shipped model (or --network) the low-dose slice, with its neighbours, is enhanced with K posterior
samples; without one the baselines are shown.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from petdiff.commands.help import DefaultsFormatter
from petdiff.evaluate.outputs import json_safe
from petdiff.evaluate.pipeline import log_stderr, model_info, open_model
from petdiff.evaluate.report import panel_figure
from petdiff.evaluate.scan_settings import HELD_OUT_SEED, SETTINGS, evaluate_setting
from petdiff.utils.io import atomic_write, check_output_folder, staged_outputs

DEFAULT_SETTING, FRACTION = "body-3.5mm", 0.25


def build_parser() -> argparse.ArgumentParser:
    """Options of `petdiff demo`."""
    p = argparse.ArgumentParser(prog="petdiff demo", description=__doc__, formatter_class=DefaultsFormatter)
    p.add_argument("--out", default="demo_output", help="output folder (demo.png, metrics.json)")
    p.add_argument("--setting", default=DEFAULT_SETTING, choices=sorted(SETTINGS), help="the kind of scan")
    p.add_argument("--fraction", type=float, default=FRACTION, help="low-dose fraction")
    p.add_argument("--network", default=None, help="network snapshot (.safetensors); default: the shipped weights")
    p.add_argument("--no-model", action="store_true", help="show the classical baselines only")
    p.add_argument("--samples", type=int, default=8, help="posterior samples")
    p.add_argument("--seed", type=int, default=15, help="phantom, scan and sampling seed (15: a slice with lesions)")
    p.add_argument("--device", default=None, help="'cpu', 'cuda', ... (default: CUDA when available)")
    return p


def _cell(value: float | None, digits: int) -> str:
    """A number, or '–' when the scan had nothing to measure it on."""
    return "–" if value is None else f"{value:.{digits}f}"


def table(result: dict) -> str:
    """Plain-text table: PSNR / SSIM against the truth, lesion contrast kept and SUVmax against the full dose."""
    rows = [f"{'method':<20} {'PSNR dB':>8} {'SSIM':>6} {'lesion contrast':>16} {'SUVmax / full':>14}"]
    for name, m in result["methods"].items():
        rows.append(f"{name:<20} {m['psnr']:8.2f} {m['ssim']:6.3f} {_cell(m['contrast_recovery_hot'], 2):>16} "
                    f"{_cell(m['suvmax_ratio_vs_full'], 2):>14}")
    return "\n".join(rows)


def panel(result: dict, images: dict, title: str) -> bytes:
    """demo.png: truth, full dose, low dose, filter, then the regression, posterior mean and std."""
    cols = []
    for name, img in images.items():
        kind = "std" if name == "posterior std" else "activity"
        label = name if name in ("truth", "posterior std") else f"{name}\nPSNR {result['methods'][name]['psnr']:.2f} dB"
        cols.append((label, img[0, 0].detach().cpu().float().numpy(), kind))
    truth = images["truth"][0, 0]
    window = float(truth[truth > 0].quantile(0.99)) if bool((truth > 0).any()) else None  # a viewer's SUV window
    return panel_figure(cols, title, units="SUV", ncols=4, vmax=window)


def main(argv: list[str]) -> int:
    """Run the demo; print the numbers; write demo.png and metrics.json."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        out = check_output_folder(args.out)  # before any scan is simulated
        if not 0 < args.fraction <= 1:
            raise ValueError(f"--fraction: expected a dose fraction in (0, 1], found {args.fraction}")
        _, model, note, _ = open_model(args.network, args.no_model, args.samples, args.device, 64)
        setting = SETTINGS[args.setting]
        log_stderr(f"simulating a held-out {setting.anatomy} scan ({setting.name}) at {args.fraction:g} dose")
        result, images = evaluate_setting(model, setting, args.fraction, n=1,
                                          samples=args.samples if model is not None else 0,
                                          seed=HELD_OUT_SEED + args.seed)
    except ValueError as exc:
        print(f"petdiff demo: {exc}", file=sys.stderr)
        return 2
    title = (f"petdiff demo: held-out procedural {setting.anatomy} scan, {setting.pixel_mm:g} mm pixels, "
             f"{setting.scanner_fwhm_mm:g} mm resolution, {args.fraction:.0%} dose"
             + ("" if model is not None else " (no model: baselines only)"))
    png = panel(result, images, title)
    doc = json_safe({"note": note, "model": model_info(model), "seed": args.seed,
                     "samples": args.samples if model is not None else None, **result})
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
    if "coverage90" in result:
        print(f"coverage of the truth by the 90 % intervals (mean ± 1.645·std): {100 * result['coverage90']:.1f} %")
    print(f"wrote {out / 'demo.png'} and {out / 'metrics.json'} in {time.perf_counter() - start:.1f} s")
    return 0
