"""Copy a trained snapshot to src/petdiff/weights/default.* and record its 8-slice BrainWeb check.

usage: python scripts/ship_model.py RUN_DIR/network-snapshot-NNNNNN.safetensors BRAINWEB.npz
The check (tests/test_default_weights.py) reruns `petdiff evaluate` with the same arguments.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from petdiff.cli import main as petdiff

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "petdiff" / "weights"
CHECK_ARGS = ["--n-slices", "8", "--samples", "4", "--sampler", "dpmpp_2m", "--steps", "12", "--seed", "0",
              "--examples", "0", "--tune-n", "8"]
SHIPPED_SAMPLING = {"sampler": "dpmpp_2m", "steps": 24}  # the best quality per second we measured


def main() -> int:
    """Ship the snapshot given on the command line and write its check."""
    snapshot, brainweb = Path(sys.argv[1]), Path(sys.argv[2])
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(snapshot, WEIGHTS / "default.safetensors")
    sidecar = json.loads(snapshot.with_suffix(".json").read_text())
    sidecar["sampling"] = {**sidecar.get("sampling", {}), **SHIPPED_SAMPLING}
    sidecar["source_snapshot"] = snapshot.name
    (WEIGHTS / "default.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        assert petdiff(["evaluate", "--phantoms", str(brainweb), *CHECK_ARGS, "--out", tmp]) == 0
        methods = json.loads((Path(tmp) / "metrics.json").read_text())["results"][0]["methods"]
    check = {
        "args": CHECK_ARGS,
        "psnr_vs_truth": {m: methods[m]["vs_truth"]["psnr"]["mean"] for m in ("low_dose_mlem", "posterior_mean")},
    }
    (WEIGHTS / "check.json").write_text(json.dumps(check, indent=2) + "\n")
    print(json.dumps(check))
    return 0


if __name__ == "__main__":
    sys.exit(main())
