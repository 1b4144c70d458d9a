"""Small helpers shared by every stage: input validation, atomic file writes, seeds."""

from petdiff.utils.io import atomic_save_npz, atomic_write
from petdiff.utils.seeds import parse_int_list
from petdiff.utils.validation import (
    check_finite,
    check_fraction,
    check_image_batch,
    check_non_negative,
    check_positive,
)

__all__ = [
    "atomic_save_npz",
    "atomic_write",
    "check_finite",
    "check_fraction",
    "check_image_batch",
    "check_non_negative",
    "check_positive",
    "parse_int_list",
]
