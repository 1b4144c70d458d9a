#!/usr/bin/env bash
# Set up (if needed), then run the end-to-end demo; the picture and numbers land in demo_output/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/petdiff demo --out demo_output "$@"
