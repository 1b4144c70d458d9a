"""`petdiff enhance IN [IN ...] [-o OUTDIR]`: full-dose estimate and uncertainty of low-dose PET scans.

IN: NIfTI volumes, .npy / .npz arrays, DICOM PET series (a folder or a file), or folders of several cases
(each NIfTI / array file and each DICOM sub-folder is one case). Every case is enhanced on its own grid
(resampled to the model's pixel size, tiled when larger than the network) and written in its own units
to OUTDIR/<case>/: mean.nii.gz, std.nii.gz (posterior), regression.nii.gz, enhanced.npz, enhanced.png and,
for DICOM input, the derived series mean_dicom/ and std_dicom/. A case that fails is reported and skipped;
OUTDIR/summary.csv lists every case. Exit status 0 when all cases succeeded, 2 otherwise.

Units: counts stay counts (expressed at full dose: low-dose counts / f); Bq/mL and SUV stay Bq/mL and SUV
(a concentration does not change with the dose). --counts-per-unit tells the networks how many counts one
unit of a concentration holds (the noise level); without it an estimate is used and a warning says so.
--sinogram: the inputs are low-dose sinograms (.npy / .npz), reconstructed with MLEM on the model's grid first.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from petdiff.commands.cases import Case, expand_inputs
from petdiff.commands.enhance_outputs import format_table, write_case, write_summary
from petdiff.commands.help import DefaultsFormatter
from petdiff.commands.lesion_report import case_lesions, lesion_rows, lesions_csv
from petdiff.commands.progress import Progress
from petdiff.inference.enhancers import Enhancer, load_enhancer
from petdiff.inference.scan import enhance_scan
from petdiff.inference.settings import PRECISIONS, SamplingSettings
from petdiff.inference.spec import DEFAULT_PIXEL_SIZE_MM
from petdiff.io import UNITS, Scan, read_array_scan, read_scan, scaling_affine
from petdiff.physics import Geometry
from petdiff.recon import MLEM_ITERATIONS, reconstruct
from petdiff.utils.io import check_output_folder

PROG = "petdiff enhance"
METHODS = ("posterior", "mean", "denoiser")
DICOM_OPTIONS = ("series_uid", "patient_weight", "injected_dose", "half_life", "injection_time", "decay_correction")
SINOGRAM_KEYS = ("sinograms", "images", "low_dose")


def build_parser() -> argparse.ArgumentParser:
    """Options of `petdiff enhance` (defaults shown by --help)."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=DefaultsFormatter)
    p.add_argument("inputs", metavar="IN", nargs="+", help="scan files, DICOM folders or folders of cases")
    p.add_argument("-o", "--out", default="enhanced", help="output folder (one sub-folder per case)")
    p.add_argument("--method", choices=METHODS, default="posterior",
                   help="posterior: regression + residual diffusion samples; mean: regression only (one pass); "
                        "denoiser: an older single conditional network")
    p.add_argument("--network", default=None,
                   help="snapshot (.safetensors or .json): the residual (its regression is found beside it) or "
                        "a regression alone for --method mean; default: the shipped weights")
    p.add_argument("--fraction", type=float, default=0.25, help="dose fraction of the inputs (low / full)")
    p.add_argument("--units", choices=UNITS, default=None,
                   help="units of the values: NIfTI / arrays default to counts; DICOM keeps its Units tag, "
                        "SUV converts Bq/mL with the SUV tags / options")
    p.add_argument("--counts-per-unit", type=float, default=None,
                   help="counts per unit of the input (for Bq/mL or SUV: the noise level); default: 1 for counts, "
                        "else estimated with a warning")
    p.add_argument("--samples", type=int, default=None, help="posterior samples per slice (default: the "
                                                             "snapshot's, else 8)")
    p.add_argument("--seeds", default=None, help="seeds of the samples, e.g. 0-7 or 1,5,9 (default: 0..K-1)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the snapshot's)")
    p.add_argument("--sampler", default=None, help="edm | euler | dpmpp_2m (default: the snapshot's)")
    p.add_argument("--warm-start", type=float, default=None, metavar="SIGMA",
                   help="start the diffusion at noise level SIGMA instead of sigma_max")
    p.add_argument("--batch-size", type=int, default=32, help="samples per network batch")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="network arithmetic: auto = bfloat16 where the device has native bf16 (about 2x faster on "
                        "such CPUs, same PSNR and coverage), else float32")
    p.add_argument("--voxel-size", type=float, nargs=3, default=None, metavar=("DZ", "DY", "DX"),
                   help=".npy / .npz voxel size in mm (default: the model's pixel size)")
    dicom = p.add_argument_group("DICOM / SUV (override the tags)")
    dicom.add_argument("--series-uid", default=None, help="SeriesInstanceUID to read from a folder of series")
    dicom.add_argument("--patient-weight", type=float, default=None, help="patient weight in kg")
    dicom.add_argument("--injected-dose", type=float, default=None, help="injected dose in MBq")
    dicom.add_argument("--half-life", type=float, default=None, help="radionuclide half-life in s")
    dicom.add_argument("--injection-time", default=None, help="injection time HHMMSS[.ffffff]")
    dicom.add_argument("--decay-correction", default=None, choices=("START", "ADMIN", "NONE"),
                       help="decay correction of the pixel values")
    p.add_argument("--sinogram", action="store_true", help="the inputs are low-dose sinograms (MLEM first)")
    p.add_argument("--n-iter", type=int, default=None, help="MLEM iterations for sinograms (default: training's)")
    p.add_argument("--keep-samples", action="store_true", help="also store the K samples in enhanced.npz")
    lesions = p.add_argument_group("lesion report (OUTDIR/<case>/lesions.csv)")
    lesions.add_argument("--lesions", default=None, metavar="MASK",
                         help="a NIfTI label map, DICOM SEG or RT-STRUCT on the scan's frame of reference (one case), "
                              "or a folder of masks named <case>.nii.gz / <case>.dcm / <case>/")
    lesions.add_argument("--hotspots", type=int, default=None, metavar="N",
                         help="instead of a mask: the N hottest connected regions of the enhanced mean")
    lesions.add_argument("--hotspot-threshold", type=float, default=None, metavar="T",
                         help="with --hotspots: the value (in the output units) a region's voxels reach")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    return p


def _check_args(args: argparse.Namespace) -> None:
    """Integer options in range (before any file or network is touched)."""
    for name in ("samples", "batch_size", "steps", "n_iter"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected an integer >= 1, found {value}")
    if not 0 < args.fraction <= 1:
        raise ValueError(f"--fraction: expected a dose fraction in (0, 1], found {args.fraction}")
    if args.lesions is not None and args.hotspots is not None:
        raise ValueError("--lesions and --hotspots: expected one way to find the lesions, found both")
    if args.hotspots is not None and (args.hotspots < 1 or args.hotspot_threshold is None):
        raise ValueError(f"--hotspots: expected N >= 1 with --hotspot-threshold T, found N={args.hotspots}, "
                         f"T={args.hotspot_threshold}")
    if args.hotspot_threshold is not None and args.hotspots is None:
        raise ValueError("--hotspot-threshold: expected --hotspots N with it, found none")
    if args.lesions is not None and not Path(args.lesions).exists():
        raise ValueError(f"--lesions {args.lesions}: expected a mask file or a folder of masks, found nothing")
    if args.method == "mean" and (args.samples or args.seeds or args.warm_start or args.keep_samples):
        raise ValueError("--method mean: one regression pass draws no samples; drop --samples / --seeds / "
                         "--warm-start / --keep-samples")


def resolve_settings(enhancer: Enhancer, args: argparse.Namespace) -> SamplingSettings:
    """The sampling settings of the whole run, resolved once."""
    if args.method == "mean":
        return enhancer.settings("mean", batch_size=args.batch_size, precision=args.precision)
    return enhancer.settings(args.method, samples=args.samples, seeds=args.seeds, sampler=args.sampler,
                             steps=args.steps, warm_start=args.warm_start, batch_size=args.batch_size,
                             precision=args.precision)


def read_case(case: Case, args: argparse.Namespace, enhancer: Enhancer) -> Scan:
    """The case as a Scan: read_scan with the DICOM / SUV options, or MLEM of its sinograms (--sinogram)."""
    if args.sinogram:
        spec = enhancer.spec
        sinos = read_array_scan(case.path, "counts", keys=SINOGRAM_KEYS)
        res = spec.resolution[0]
        expected = Geometry(res).sinogram_shape
        if tuple(sinos.images.shape[-2:]) != tuple(expected):
            raise ValueError(f"{case.path}: expected sinograms (n_angles, n_bins) = {tuple(expected)} for the "
                             f"network's {res}×{res} geometry, found {tuple(sinos.images.shape[-2:])}")
        recon = reconstruct(sinos.images[:, 0], res, args.n_iter or spec.n_iter or MLEM_ITERATIONS)
        model_px = spec.pixel_size or spec.model_pixel_size((DEFAULT_PIXEL_SIZE_MM, DEFAULT_PIXEL_SIZE_MM))
        size = (1.0, *model_px)
        return Scan(images=recon, units="counts", voxel_size=size, affine=scaling_affine(size),
                    fraction=args.fraction, source=case.path, kind="array",
                    notes=(f"sinograms reconstructed with MLEM on the model's {res}×{res} grid",))
    options: dict[str, Any] = {k: getattr(args, k) for k in DICOM_OPTIONS if getattr(args, k) is not None}
    if args.voxel_size is not None:
        options["voxel_size"] = tuple(args.voxel_size)
    return read_scan(case.path, units=args.units, fraction=args.fraction, **options)


def run_case(case: Case, index: int, total: int, enhancer: Enhancer, settings: SamplingSettings,
             args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Read, enhance and write one case; returns its summary row (raises on failure)."""
    label = f"case {index}/{total} {case.name}"
    scan = read_case(case, args, enhancer)
    for note in scan.notes:
        print(f"{PROG}: {case.name}: {note}", file=sys.stderr, flush=True)
    pixel_size = None
    if args.voxel_size is not None or args.sinogram:
        pixel_size = scan.pixel_size
    progress = Progress(label)
    report = args.lesions is not None or args.hotspots is not None
    try:
        result = enhance_scan(enhancer, scan, settings, counts_per_unit=args.counts_per_unit, pixel_size=pixel_size,
                              keep_samples=args.keep_samples or report, progress=progress.update)
    finally:
        progress.close()
    lesions = None
    if report:
        lesions_mask = case_lesions(scan, result, None if args.lesions is None else Path(args.lesions), total,
                                    case.name, args.hotspots, args.hotspot_threshold)
        lesions = lesions_csv(lesion_rows(case.name, scan, result, lesions_mask))
        count = len(set(np.unique(lesions_mask.labels).tolist()) - {0})
        print(f"{PROG}: {case.name}: {count} lesion(s) from the {lesions_mask.kind} → lesions.csv", file=sys.stderr,
              flush=True)
        if not args.keep_samples:
            result = dataclasses.replace(result, samples=None)
    for note in result.report["notes"]:
        print(f"{PROG}: {case.name}: {note}", file=sys.stderr, flush=True)
    meta = {"input": str(case.path), "case": case.name, "kind": "sinogram" if args.sinogram else scan.kind,
            "networks": [str(m.path) for m in enhancer.models], "model": enhancer.spec.as_dict(),
            "reader_notes": list(scan.notes),
            "suv": scan.suv.describe() if scan.suv is not None else None, **result.report}
    written = write_case(out / case.name, scan, result, meta, lesions)
    n, h, w = scan.shape
    return {"case": case.name, "status": "ok", "method": settings.method, "units": scan.units,
            "shape": f"{n}x{h}x{w}", "message": f"{len(written)} outputs", "output": str(out / case.name)}


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    """Print a warning on stderr when it happens, in the command's one-line style."""
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


def _run(args: argparse.Namespace) -> int:
    """All cases: setup errors raise (exit 2 before any work); case errors are reported and skipped."""
    _check_args(args)
    out = check_output_folder(Path(args.out), "--out")  # before any file is read or network loaded
    cases, notes = expand_inputs(args.inputs)
    for note in notes:
        print(f"{PROG}: {note}", file=sys.stderr, flush=True)
    enhancer = load_enhancer(args.network, args.method, args.device)
    settings = resolve_settings(enhancer, args)
    rows = []
    for index, case in enumerate(cases, start=1):
        start = time.perf_counter()
        try:
            row = run_case(case, index, len(cases), enhancer, settings, args, out)
        except (ValueError, OSError, RuntimeError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"{PROG}: {case.name}: failed: {message}", file=sys.stderr, flush=True)
            row = {"case": case.name, "status": "failed", "method": settings.method, "units": "", "shape": "",
                   "message": message, "output": ""}
        row.update(seconds=round(time.perf_counter() - start, 2), input=str(case.path))
        rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    summary = write_summary(out, rows)
    print(format_table(rows), file=sys.stderr, flush=True)
    failed = [row["case"] for row in rows if row["status"] != "ok"]
    if failed:
        print(f"{PROG}: {len(failed)} of {len(rows)} case(s) failed ({', '.join(failed)}); see {summary}",
              file=sys.stderr, flush=True)
    print(json.dumps({"out": str(out), "summary": str(summary), "settings": settings.as_dict(),
                      "cases": rows, "failed": len(failed)}))
    return 2 if failed else 0


def main(argv: list[str]) -> int:
    """Run `petdiff enhance`; setup errors print one line on stderr and return 2."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, message already printed)
        return int(exc.code or 0)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _show_warning
        try:
            return _run(args)
        except (ValueError, OSError) as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 2
