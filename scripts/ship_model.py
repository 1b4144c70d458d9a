"""Copy a trained snapshot to src/petdiff/weights/default.* and record its 8-slice BrainWeb check.

usage: python scripts/ship_model.py RUN_DIR/network-snapshot-NNNNNN.safetensors BRAINWEB.npz
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
CHECK_ARGS = ["--n-slices", "8", "--samples", "4", "--sampler", "dpmpp_2m", "--steps", "12", "--seed", "0",
              "--examples", "0", "--tune-n", "8"]
SHIPPED_SAMPLING = {"sampler": "dpmpp_2m", "steps": 24}  # the best quality per second we measured


def write_text(path: Path, text: str) -> None:
    """Replace `path` atomically: a failed run never leaves half a file in the package."""
    with atomic_write(path, "w") as f:
        f.write(text)


def main(argv: list[str]) -> int:
    """Ship the snapshot given on the command line and write its check."""
    if len(argv) != 2 or not Path(argv[0]).is_file() or not Path(argv[1]).is_file():
        print(__doc__.strip().splitlines()[2] + f"\nfound arguments {argv}", file=sys.stderr)
        return 2
    snapshot, brainweb = Path(argv[0]), Path(argv[1])
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    with atomic_write(WEIGHTS / "default.safetensors", "wb") as f:
        f.write(snapshot.read_bytes())
    sidecar = json.loads(snapshot.with_suffix(".json").read_text())
    sidecar["sampling"] = {**sidecar.get("sampling", {}), **SHIPPED_SAMPLING}
    sidecar["source_snapshot"] = snapshot.name
    write_text(WEIGHTS / "default.json", json.dumps(sidecar, indent=2) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        if petdiff(["evaluate", "--phantoms", str(brainweb), *CHECK_ARGS, "--out", tmp]) != 0:
            print("ship_model: the check evaluation failed; check.json left unchanged", file=sys.stderr)
            return 1
        methods = json.loads((Path(tmp) / "metrics.json").read_text())["results"][0]["methods"]
    check = {
        "args": CHECK_ARGS,
        "psnr_vs_truth": {m: methods[m]["vs_truth"]["psnr"]["mean"] for m in ("low_dose_mlem", "posterior_mean")},
    }
    write_text(WEIGHTS / "check.json", json.dumps(check, indent=2) + "\n")
    print(json.dumps(check))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
