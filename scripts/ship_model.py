"""Copy a trained regression + residual pair (+ count-level estimator) to src/petdiff/weights/ with its BrainWeb check.

usage: python scripts/ship_model.py REGRESSION.safetensors RESIDUAL.safetensors BRAINWEB.npz [COUNT_LEVEL.safetensors]
The residual snapshot must have been trained on that regression snapshot (its sidecar's mean_network sha256).
The check (tests/weights/test_default_weights.py) reruns `petdiff evaluate` with the same arguments.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from petdiff.cli import main as petdiff
from petdiff.utils.io import atomic_write

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "petdiff" / "weights"
MEAN, RESIDUAL, COUNT_LEVEL = "regression", "residual", "count_level"
REPLACED = ("default", "mean")  # earlier shipped snapshots: the single network, the first pair's regression
CHECK_ARGS = ["--n-slices", "8", "--samples", "4", "--steps", "8", "--seed", "0", "--examples", "0",
              "--tune-n", "8"]
CHECK_METHODS = ("low_dose_mlem", "full_dose_mlem", "regression_mean", "posterior_mean")
# 16 posterior samples by default: the Monte-Carlo error of their mean costs ~1/16 of the residual variance, and
# the posterior still takes well under half a reference sample per slice (benchmarks/sampling.py --methods-only).
SHIPPED_SAMPLING = {"seeds": "0-15"}


def write_text(path: Path, text: str) -> None:
    """Replace `path` atomically: a failed run never leaves half a file in the package."""
    with atomic_write(path, "w") as f:
        f.write(text)


def ship(snapshot: Path, name: str, edit=None) -> dict:
    """Copy snapshot + sidecar to weights/<name>.*, recording where it came from; returns the sidecar."""
    sidecar = json.loads(snapshot.with_suffix(".json").read_text())
    sidecar["source_snapshot"] = f"{snapshot.parent.name}/{snapshot.name}"
    if edit is not None:
        edit(sidecar)
    with atomic_write(WEIGHTS / f"{name}.safetensors", "wb") as f:
        f.write(snapshot.read_bytes())
    write_text(WEIGHTS / f"{name}.json", json.dumps(sidecar, indent=2) + "\n")
    return sidecar


def main(argv: list[str]) -> int:
    """Ship the pair given on the command line and write its check."""
    if len(argv) not in (3, 4) or not all(Path(a).is_file() for a in argv):
        print(__doc__.strip().splitlines()[2] + f"\nfound arguments {argv}", file=sys.stderr)
        return 2
    mean, residual, brainweb = (Path(a) for a in argv[:3])
    mean_meta = json.loads(mean.with_suffix(".json").read_text())
    residual_meta = json.loads(residual.with_suffix(".json").read_text())
    if residual_meta.get("mean_network", {}).get("sha256") != mean_meta.get("sha256"):
        print(f"ship_model: {residual} was not trained on {mean} (mean_network sha256 differs)", file=sys.stderr)
        return 2
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    ship(mean, MEAN)

    def point_at_shipped_mean(sidecar: dict) -> None:
        """The residual finds its regression network next to it under the shipped name."""
        source = dict(sidecar["mean_network"])
        source.pop("path", None)
        sidecar["mean_network"] = {**source, "file": f"{MEAN}.safetensors",
                                   "source_snapshot": f"{mean.parent.name}/{mean.name}"}
        sidecar["sampling"] = {**sidecar.get("sampling", {}), **SHIPPED_SAMPLING}

    ship(residual, RESIDUAL, point_at_shipped_mean)
    if len(argv) == 4:
        ship(Path(argv[3]), COUNT_LEVEL)
    for old in REPLACED:  # the 20 MB budget holds one pair
        for suffix in (".safetensors", ".json"):
            (WEIGHTS / f"{old}{suffix}").unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if petdiff(["evaluate", "--phantoms", str(brainweb), *CHECK_ARGS, "--out", tmp]) != 0:
            print("ship_model: the check evaluation failed; check.json left unchanged", file=sys.stderr)
            return 1
        methods = json.loads((Path(tmp) / "metrics.json").read_text())["results"][0]["methods"]
    check = {"args": CHECK_ARGS, "psnr_vs_truth": {m: methods[m]["vs_truth"]["psnr"]["mean"] for m in CHECK_METHODS}}
    write_text(WEIGHTS / "check.json", json.dumps(check, indent=2) + "\n")
    print(json.dumps(check))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
