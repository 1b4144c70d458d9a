"""`petdiff enhance`: posterior mean and uncertainty of a low-dose PET scan (reconstruction or sinogram).

INPUT is a low-dose MLEM reconstruction (.npy / .npz with key `images`, `low_dose` or a single array /
NIfTI; one slice (H, W) or a volume (N, H, W), enhanced slice by slice in batches) or low-dose sinograms
((n_angles, n_bins) or (N, n_angles, n_bins) in .npy / .npz, given with --sinogram or recognised by their
shape), which are reconstructed with MLEM first. Written to --out (all together or none):
  enhanced.npz   mean, std, input (N, 1, H, W; mean/std in full-dose units = input units / fraction),
                 samples (K, N, 1, H, W) with --keep-samples, fraction, seeds, meta (JSON)
  mean.nii.gz, std.nii.gz   with the affine of a NIfTI input (identity otherwise)
  enhanced.png   input / fraction, posterior mean and std for up to three slices
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from petdiff.inference import Enhancement, enhance, load_model, reconstruct
from petdiff.inference.model import LoadedModel
from petdiff.inference.panel import enhancement_panel, panel_slices
from petdiff.inference.settings import sampling_settings
from petdiff.phantoms import Volume, load_volume, resample_images, save_nifti
from petdiff.phantoms.arrays import check_numeric, read_npy_array, read_npz_array, require_file
from petdiff.physics import Geometry
from petdiff.utils.io import atomic_save_npz, atomic_write, check_output_folder, staged_outputs

NPZ_KEYS = ("images", "low_dose", "sinograms")
PANEL_SLICES = 3
OUTPUTS = ("enhanced.npz", "mean.nii.gz", "std.nii.gz", "enhanced.png")


@dataclass
class ScanInput:
    """The loaded INPUT: images (N, H, W) at the network's resolution or sinograms (N, n_angles, n_bins)."""

    data: np.ndarray
    is_sinogram: bool
    volume: Volume | None  # geometry for the NIfTI outputs (NIfTI inputs); None = identity affine


def _is_nifti(path: Path) -> bool:
    """True for .nii and .nii.gz names."""
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def _stem(path: Path) -> str:
    """File name without .npy / .npz / .nii / .nii.gz."""
    name = path.name
    for suffix in (".nii.gz", ".nii", ".npz", ".npy"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _as_stack(path: Path, key: str, arr: np.ndarray) -> np.ndarray:
    """(N, A, B) from a single (A, B) array, a stack, or (N, 1, A, B)."""
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 4 and arr.shape[1] == 1:
        return arr[:, 0]
    if arr.ndim != 3:
        raise ValueError(
            f"{path} [{key}]: expected one slice (H, W), slices (N, H, W) or sinograms (N, n_angles, n_bins), "
            f"found shape {arr.shape}"
        )
    return arr


def _resolution_error(path: Path, found: tuple[int, ...], resolution: int, sino: tuple[int, int]) -> ValueError:
    """The message for an input that fits neither the network's images nor its sinograms."""
    return ValueError(
        f"{path}: expected images {resolution}×{resolution} (the network's resolution) or sinograms "
        f"{sino[0]}×{sino[1]} (n_angles × n_bins), found slices of {found[0]}×{found[1]}; "
        "pass --resample to resample images to the network's resolution"
    )


def read_input(path: str | Path, resolution: int, sinogram: bool = False, resample: bool = False) -> ScanInput:
    """Load INPUT, decide image vs sinogram (flag or shape) and bring images to resolution² (with --resample)."""
    p = require_file(path)
    sino = Geometry(resolution).sinogram_shape
    image_shape = (resolution, resolution)
    if _is_nifti(p):
        if sinogram:
            raise ValueError(f"{p}: --sinogram expects a .npy or .npz file of sinograms, found a NIfTI image")
        volume = load_volume(p)
        if volume.data.shape[1:] != image_shape:
            if not resample:
                raise _resolution_error(p, volume.data.shape[1:], resolution, sino)
            volume = load_volume(p, resolution)  # the affine follows the resampling
        return ScanInput(volume.data, False, volume)
    if p.suffix.lower() == ".npz":
        key, arr = read_npz_array(p, NPZ_KEYS, only_array=True)
    elif p.suffix.lower() == ".npy":
        key, arr = "array", read_npy_array(p)
    else:
        raise ValueError(f"{p}: expected a .npy, .npz, .nii or .nii.gz file, found suffix {p.suffix!r}")
    data = _as_stack(p, key, check_numeric(p, key, arr))
    shape = tuple(data.shape[1:])
    if sinogram or (shape == sino and shape != image_shape):
        if shape != sino:
            raise ValueError(
                f"{p} [{key}]: expected sinograms (n_angles, n_bins) = {sino} for the network's "
                f"{resolution}×{resolution} geometry, found {shape}"
            )
        return ScanInput(np.ascontiguousarray(data), True, None)
    if shape != image_shape:
        if not resample:
            raise _resolution_error(p, shape, resolution, sino)
        data = resample_images(torch.from_numpy(np.ascontiguousarray(data))[:, None], resolution)[:, 0].numpy()
    return ScanInput(np.ascontiguousarray(data, dtype=np.float32), False, None)


def build_parser() -> argparse.ArgumentParser:
    """Options of `petdiff enhance`."""
    p = argparse.ArgumentParser(
        prog="petdiff enhance", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("input", metavar="INPUT", help="low-dose reconstruction (.npy/.npz/.nii/.nii.gz) or sinograms")
    p.add_argument("--network", default=None, help="network snapshot (.safetensors or its .json); default: shipped")
    p.add_argument("--samples", type=int, default=8, help="posterior samples per slice (K)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the snapshot's, else 32)")
    p.add_argument("--sampler", default=None, help="edm | euler | dpmpp_2m (default: the snapshot's, else edm)")
    p.add_argument("--fraction", type=float, default=0.25, help="dose fraction of the input scan (low / full)")
    p.add_argument("--seed", type=int, default=0, help="sample k uses seed SEED + k")
    p.add_argument("--out", default=None, help="output folder (default: ./<INPUT name>_enhanced)")
    p.add_argument("--keep-samples", action="store_true", help="also store the K samples in enhanced.npz")
    p.add_argument("--batch-size", type=int, default=16, help="samples per network batch")
    p.add_argument("--resample", action="store_true", help="resample images to the network's resolution")
    p.add_argument("--sinogram", action="store_true", help="INPUT holds low-dose sinograms (MLEM first)")
    p.add_argument("--n-iter", type=int, default=None, help="MLEM iterations for sinograms (default: training's)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    return p


def _write_outputs(out: Path, scan: ScanInput, low: np.ndarray, result: Enhancement, fraction: float,
                   model: LoadedModel, args: argparse.Namespace) -> None:
    """enhanced.npz, mean/std NIfTI and the PNG panel, each written atomically."""
    mean = result.mean.cpu().numpy()
    std = None if result.std is None else result.std.cpu().numpy()
    meta = {
        "input": str(Path(args.input)),
        "network": str(model.path),
        "kind": "sinogram" if scan.is_sinogram else "image",
        "fraction": fraction,
        "units": "mean/std/samples in full-dose reconstruction units = input units / fraction",
        "skipped_slices": list(result.skipped),
    }
    sampler, opts = sampling_settings(model.meta.get("sampling"), model.net, args.sampler, args.steps)
    meta["sampling"] = {"sampler": sampler, **opts}
    arrays = {"mean": mean, "input": low[:, None], "fraction": np.float32(fraction),
              "seeds": np.asarray(result.seeds, dtype=np.uint64), "meta": np.asarray(json.dumps(meta))}
    if std is not None:
        arrays["std"] = std
    if result.samples is not None:
        arrays["samples"] = result.samples.cpu().numpy()
    atomic_save_npz(out / "enhanced.npz", **arrays)
    like = scan.volume or Volume(data=low, affine=None, kind="npy", path=Path(args.input))
    save_nifti(out / "mean.nii.gz", mean, like)
    if std is not None:
        save_nifti(out / "std.nii.gz", std, like)
    slices = panel_slices(len(low), low.reshape(len(low), -1).max(axis=1) > 0, PANEL_SLICES)
    png = enhancement_panel(low / fraction, mean[:, 0], None if std is None else std[:, 0], slices)
    with atomic_write(out / "enhanced.png", "wb") as f:
        f.write(png)


def _run(args: argparse.Namespace) -> dict:
    """Load, enhance, write; returns the summary printed on stdout."""
    for name in ("samples", "batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected an integer >= 1, found {getattr(args, name)}")
    if not 0 <= args.seed < 2**64 - args.samples:
        raise ValueError(f"--seed: expected an integer in [0, 2^64 - samples), found {args.seed}")
    if args.n_iter is not None and args.n_iter < 1:
        raise ValueError(f"--n-iter: expected at least 1 MLEM iteration (0 is MLEM's flat start), found {args.n_iter}")
    start = time.perf_counter()
    require_file(args.input)  # a missing INPUT is reported before any network question
    out = check_output_folder(Path(args.out) if args.out else Path.cwd() / f"{_stem(Path(args.input))}_enhanced")
    model = load_model(args.network, args.device)
    if model.mode != "pet":
        raise ValueError(f"--network: {model.path} is an unconditional network (mode {model.mode!r}); "
                         "enhance needs a PET model (mode 'pet')")
    scan = read_input(args.input, model.resolution[0], args.sinogram, args.resample)
    data = torch.from_numpy(scan.data).to(model.device)
    low = reconstruct(model, data, args.n_iter) if scan.is_sinogram else data[:, None]
    seeds = list(range(args.seed, args.seed + args.samples))
    result = enhance(
        model, low, fraction=args.fraction, samples=args.samples, seeds=seeds,
        sampler=args.sampler, steps=args.steps, batch_size=args.batch_size, keep_samples=args.keep_samples,
        progress=sys.stderr.isatty(),
    )
    low_np = low[:, 0].cpu().numpy()
    if scan.is_sinogram:
        scan.volume = None  # the reconstruction has no file geometry: identity affine
    with staged_outputs(out, replaces=OUTPUTS) as stage:  # all of this run's files, or the earlier run's intact
        _write_outputs(stage, scan, low_np, result, args.fraction, model, args)
    return {"out": str(out), "slices": int(low.shape[0]), "samples": args.samples,
            "skipped_slices": list(result.skipped), "seconds": round(time.perf_counter() - start, 2)}


def main(argv: list[str]) -> int:
    """Run `petdiff enhance`; errors print one line on stderr and return 2."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, message already printed)
        return int(exc.code or 0)
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            summary = _run(args)
        except (ValueError, OSError) as exc:
            error = exc
    for w in caught:
        print(f"petdiff enhance: warning: {w.message}", file=sys.stderr)
    if error is not None:
        print(f"petdiff enhance: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0
