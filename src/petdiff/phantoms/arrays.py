"""Safe reading of .npy/.npz arrays: now in `petdiff.io.arrays`; these names are kept for existing callers."""

from __future__ import annotations

from petdiff.io.arrays import check_numeric, read_npy_array, read_npz_array
from petdiff.io.paths import require_file

__all__ = ["check_numeric", "read_npy_array", "read_npz_array", "require_file"]
