"""Quality on held-out scan-like settings (issue 16, item 3); prints one JSON object, writes a figure per setting.

    .venv/bin/python benchmarks/scan_quality.py --network src/petdiff/weights/residual.safetensors \
        --settings brain-2mm,brain-2mm-filtered,body-3.5mm --fractions 0.25,0.1,0.02 --n 16 --figures docs/images

Per (setting, dose): PSNR / SSIM vs the truth and vs the full dose, lesion contrast recovery and SUVmax ratios, for
the low dose, a tuned Gaussian filter, the full dose, the regression mean and the posterior mean; the coverage of the
90 % intervals mean ± 1.645·std; with --count-level the estimator's factor ρ̂/ρ (see evaluate/scan_settings.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from petdiff.evaluate.report import panel_figure
from petdiff.evaluate.scan_settings import SETTINGS, evaluate_settings
from petdiff.inference.enhancers import load_enhancer
from petdiff.inference.model import load_model
from petdiff.utils.io import atomic_write


def figure(name: str, images: dict[str, torch.Tensor], path: Path, index: int = 0) -> None:
    """Truth, full dose, low dose, filter, regression, posterior mean and std of one held-out slice."""
    columns = [(label, img[index, 0].numpy(), "std" if label == "posterior std" else "activity")
               for label, img in images.items()]
    with atomic_write(path) as f:
        f.write(panel_figure(columns, title=f"{name}: held-out procedural scan, 25 % dose", units="SUV", ncols=4))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", default=None, help="a residual (or regression) snapshot; default: the shipped pair")
    p.add_argument("--no-model", action="store_true", help="baselines only")
    p.add_argument("--count-level", default=None, help="a count-level estimator snapshot")
    p.add_argument("--settings", default=",".join(SETTINGS))
    p.add_argument("--fractions", default="0.25")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--precision", default="float32", choices=("float32", "bfloat16", "auto"))
    p.add_argument("--figures", default=None, help="folder for scan_<setting>.png")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    enhancer = None if args.no_model else load_enhancer(args.network)
    estimator = load_model(args.count_level).net.eval() if args.count_level else None
    start = time.perf_counter()
    results, examples = evaluate_settings(enhancer, args.settings.split(","),
                                          [float(f) for f in args.fractions.split(",")], args.n, args.samples,
                                          estimator, args.precision)
    if args.figures:
        for name, images in examples.items():
            figure(name, images, Path(args.figures) / f"scan_{name}.png")
    print(json.dumps({"results": results, "seconds": round(time.perf_counter() - start, 1)}, indent=1))


if __name__ == "__main__":
    main()
