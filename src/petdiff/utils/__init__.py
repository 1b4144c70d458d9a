"""Small helpers shared by every stage: input validation, atomic and staged file writes, seeds."""

from petdiff.utils.io import (
    atomic_save_npz,
    atomic_write,
    check_output_file,
    check_output_folder,
    staged_outputs,
)
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
    "check_output_file",
    "check_output_folder",
    "check_positive",
    "parse_int_list",
    "staged_outputs",
]
