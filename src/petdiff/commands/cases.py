"""The cases of `petdiff enhance IN [IN ...]`: files, DICOM folders, or folders of several cases, each with a name.

A file (NIfTI, .npy, .npz, one DICOM file) is one case. A folder holding DICOM files is one case (the series).
Any other folder is a folder of cases: each NIfTI / array file and each sub-folder in it is one case (files
of other kinds are listed as ignored). Names are the file or folder name without format suffixes; a
repeated name gets `_2`, `_3` … so that no two cases share an output folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from petdiff.io import is_nifti, stem
from petdiff.io.files import is_dicom_file

ARRAY_SUFFIXES = (".npy", ".npz")


@dataclass(frozen=True)
class Case:
    """One scan to enhance: where it is and the name of its output folder."""

    name: str
    path: Path


def _is_scan_file(path: Path) -> bool:
    """NIfTI or array file names (the files a folder of cases may hold besides DICOM folders)."""
    return is_nifti(path) or path.suffix.lower() in ARRAY_SUFFIXES


def expand_inputs(inputs: list[str | Path]) -> tuple[list[Case], list[str]]:
    """(cases in order, notes on ignored entries); a path that does not exist is kept as a case (it fails later)."""
    found: list[Path] = []
    notes: list[str] = []
    for item in inputs:
        path = Path(item)
        if not path.is_dir():
            found.append(path)
            continue
        children = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        files = [p for p in children if p.is_file()]
        if any(is_dicom_file(p) for p in files):
            found.append(path)
            continue
        for child in children:
            if child.is_dir() or _is_scan_file(child):
                found.append(child)
            else:
                notes.append(f"{child}: ignored (not a NIfTI, .npy, .npz file or a DICOM folder)")
        if not any(child.is_dir() or _is_scan_file(child) for child in children):
            found.append(path)  # an empty folder or one with nothing readable: reported as a failed case
    cases, used = [], set()
    for path in found:
        base = stem(path) or "scan"
        name, k = base, 1
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        cases.append(Case(name=name, path=path))
    return cases, notes
