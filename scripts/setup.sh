#!/usr/bin/env bash
# Create .venv (if needed) and install petdiff with its test tools.
# Torch: a CPU build of torch 2.13.0 is installed when the venv has no torch yet;
# bring your own (e.g. a CUDA build) by installing it into .venv first, or set PETDIFF_TORCH.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    echo "[setup] installing ${PETDIFF_TORCH:-torch==2.13.0}"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "${PETDIFF_TORCH:-torch==2.13.0}"
fi
stamp=.venv/.petdiff-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[setup] installing petdiff and its dependencies into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]" 2>&1 \
        | grep -v "is ignored: it is neither a file nor a directory" || true
    .venv/bin/python -c "import petdiff, torch" # fail loudly if the install did not work
    echo "$want" >"$stamp"
fi
