"""`finetune`: a shipped (or given) pair adapted to a user's paired scans, recalibrated, assessed and written.

1. Cases are matched and each pair checked (`pairs`); a bad pair is reported and skipped. The checked pairs are
   split by their content hashes (reproducible, independent of names) into training and validation pairs.
2. Before: the start pair enhances the validation volumes (`assess`).
3. Stage 1: the regression network is fine-tuned toward the full-dose scans (a noisy but unbiased target, so the
   regression still learns the conditional mean) on patches at the scans' own pixel size, with early stopping on
   validation patches (`stage`). Stage 2: the residual diffusion network on x − μ with the new μ, the same way.
4. Recalibration: the std scale c on the validation volumes (`calibrate`), stored as `std_scale` in the residual's
   sidecar (read into `ModelSpec.std_scale`; `enhance_volume` applies it: same mean, std c× wider, so the after
   scores reuse this pass with the std scaled, `assess.scaled`).
5. After: the new pair's scores on the validation volumes; `report.md`, `report.json`, `report.png` and the pair
   (`network/regression.safetensors`, `network/residual.safetensors` + sidecars) are written together.

Work in progress lives in OUTDIR/.finetune-work (stage states, scores already computed); `resume=True` continues it
exactly, and it is removed when the outputs are written. Files name cases `case-NN` with content hashes only.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from petdiff.diffusion.loss import EDMLoss
from petdiff.diffusion.residual_loss import RegressionLoss, ResidualLoss
from petdiff.finetune.assess import (
    average,
    calibration_data,
    enhance_pair,
    restrict,
    scaled,
    scored_slices,
    volume_scores,
)
from petdiff.finetune.calibrate import MAX_FRACTION, std_scale
from petdiff.finetune.pairs import CasePaths, ScanPair, check_pair, match_cases, network_pair
from petdiff.finetune.patches import PatchSource, PatchSpec
from petdiff.finetune.report import write_report
from petdiff.finetune.stage import StageResult, StageSettings, run_stage
from petdiff.inference.enhancers import PairEnhancer, load_enhancer
from petdiff.inference.grid import EXTENSIVE_UNITS, to_model_grid
from petdiff.inference.model import COUNT_LEVEL_FILE, LoadedModel
from petdiff.inference.scan import resolve_counts_per_unit
from petdiff.inference.volume import MAX_PIXELS, VolumeEnhancement, network_tile
from petdiff.io import read_scan
from petdiff.training.checkpoint import read_network_metadata, save_network, sidecar_path
from petdiff.training.distributed import select_device
from petdiff.utils.io import atomic_write, check_output_folder, staged_outputs

WORK = ".finetune-work"
NETWORK_DIR = "network"
OUTPUTS = ("network", "report.md", "report.json", "report.png")
VAL_PATCHES = 64
Say = Callable[[str], None]


@dataclass(frozen=True)
class FinetuneOptions:
    """Everything that decides a fine-tune, resolved once from the command line (recorded in the report)."""

    low: Path
    full: Path | None  # None: `low` is a CSV listing low,full[,fraction]
    out: Path
    network: Path | None = None  # the residual snapshot of the start pair (None: the shipped pair)
    fraction: float | None = None
    units: str | None = None
    counts_per_unit: float | None = None
    voxel_size: tuple[float, float, float] | None = None
    val: int | None = None  # validation pairs (None: about 20 %)
    kimg: float = 2.0  # per stage, at most
    batch: int = 8
    lr: float = 1e-4
    eval_every: int = 256
    patience: int = 4
    samples: int = 8  # posterior samples per slice for the assessment and the recalibration
    max_slices: int = 16  # validation slices scored (spread over the validation pairs)
    seed: int = 0
    device: str | None = None
    resume: bool = False

    def fingerprint(self) -> dict[str, Any]:
        """The options a resumed run must share with the run it continues."""
        skip = {"out", "device", "resume", "low", "full", "network"}
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items() if k not in skip}


def load_cases(options: FinetuneOptions, enhancer: PairEnhancer, say: Say) -> tuple[list[ScanPair], list[dict]]:
    """(checked pairs, skipped cases as {case, reason}); every problem is printed with the user's case name."""
    cases, problems = match_cases(options.low, options.full)
    skipped = [{"case": f"unpaired-{i + 1}", "reason": "not paired: no partner of the same name, or not a scan "
                                                       "(the console names it)"} for i, _ in enumerate(problems)]
    for problem in problems:
        say(f"petdiff finetune: {problem}")
    pairs = []
    for index, case in enumerate(cases):
        try:
            pairs.append(_read_pair(case, index, options, enhancer))
        except ValueError as err:
            reason = _anonymous(str(err), case)
            say(f"petdiff finetune: {case.name}: skipped: {reason}")
            skipped.append({"case": f"case-{index + 1:02d}", "reason": reason})
    return pairs, skipped


def _anonymous(message: str, case: CasePaths) -> str:
    """A reason with the case's paths and name taken out (names can identify a patient)."""
    for text, token in ((str(case.low), "LOW"), (str(case.full), "FULL"), (case.name, "CASE")):
        message = message.replace(text, token)
    return message


def _read_pair(case: CasePaths, index: int, options: FinetuneOptions, enhancer: PairEnhancer) -> ScanPair:
    """Read, check and convert one pair (ValueError on any problem); K of a Bq/mL or SUV pair as `enhance_scan`
    finds it (given, else estimated: `inference.scan.resolve_counts_per_unit`)."""
    extra = {"voxel_size": options.voxel_size} if options.voxel_size is not None else {}
    low = read_scan(case.low, units=options.units, **(extra if case.low.suffix in (".npy", ".npz") else {}))
    full = read_scan(case.full, units=options.units, **(extra if case.full.suffix in (".npy", ".npz") else {}))
    given = case.fraction if case.fraction is not None else options.fraction
    fraction, source, ratio = check_pair(low, full, given)
    if case.fraction is not None:
        source = "csv"
    spec = enhancer.spec
    px = spec.model_pixel_size(low.pixel_size)
    k = 1.0 if options.counts_per_unit is None else float(options.counts_per_unit)
    if low.units not in EXTENSIVE_UNITS:
        grid = to_model_grid(low.images.float(), low.pixel_size, px, low.units)
        tile, _ = network_tile(spec.resolution, spec.whole_slices, spec.size_multiple, tuple(grid.shape[-2:]),
                               MAX_PIXELS)
        k, _ = resolve_counts_per_unit(enhancer, low.units, options.counts_per_unit, grid, tile, fraction)
    return network_pair(case, index, low, full, fraction, source, ratio, px, k)


def split_pairs(pairs: list[ScanPair], val: int | None) -> tuple[list[ScanPair], list[ScanPair]]:
    """(training, validation): ordered by content hash, the last `val` (default about 20 %, at least 1) validate."""
    if len(pairs) < 2:
        raise ValueError(f"pairs: expected at least 2 usable pairs (one to train on, one to validate on), found "
                         f"{len(pairs)}")
    n_val = max(1, round(0.2 * len(pairs))) if val is None else val
    if not 1 <= n_val < len(pairs):
        raise ValueError(f"--val: expected between 1 and {len(pairs) - 1} validation pairs, found {n_val}")
    ordered = sorted(pairs, key=lambda p: p.digest)
    return ordered[:-n_val], ordered[-n_val:]


def _slices(pair: ScanPair, pairs: int, max_slices: int) -> list[int]:
    """The slices of one of `pairs` validation pairs that are scored (about `max_slices` in all, at least one each)."""
    return scored_slices(pair, max(1, -(-max_slices // pairs)))


def scored(pairs: list[ScanPair], max_slices: int) -> list[ScanPair]:
    """The validation pairs restricted to the slices scored."""
    return [restrict(p, _slices(p, len(pairs), max_slices)) for p in pairs]


def enhance_all(enhancer: PairEnhancer, pairs: list[ScanPair], samples: int, max_slices: int
                ) -> list[VolumeEnhancement]:
    """The scored slices of every validation pair, enhanced with their neighbours."""
    settings = enhancer.settings("posterior", samples=samples)
    return [enhance_pair(enhancer, p, settings, _slices(p, len(pairs), max_slices)) for p in pairs]


def scores(pairs: list[ScanPair], results: list[VolumeEnhancement], std_scale_value: float) -> dict[str, Any]:
    """{mean over cases, per case} of the scores of enhanced validation slices (`pairs` already restricted)."""
    per_case = [{"case": p.id, **volume_scores(p, r, std_scale_value)} for p, r in zip(pairs, results)]
    return {"mean": average([{k: v for k, v in c.items() if k != "case"} for c in per_case]), "cases": per_case}


def _stage_settings(options: FinetuneOptions, seed: int) -> StageSettings:
    """The optimisation of a stage from the options."""
    return StageSettings(kimg=options.kimg, batch=options.batch, lr=options.lr, eval_every=options.eval_every,
                         patience=options.patience, seed=seed)


def _clone(model: LoadedModel) -> LoadedModel:
    """A trainable copy of a loaded network."""
    return LoadedModel(net=copy.deepcopy(model.net), meta=copy.deepcopy(model.meta), path=model.path)


def _json(path: Path) -> Any:
    """A JSON file written by an earlier invocation (None when absent)."""
    return json.loads(path.read_text()) if path.is_file() else None


def _write_json(path: Path, value: Any) -> None:
    """Write JSON atomically."""
    with atomic_write(path, "w") as f:
        f.write(json.dumps(value, indent=1, allow_nan=False))


def finetune(options: FinetuneOptions, say: Say = print, stop_after: int | None = None) -> dict[str, Any]:
    """Run the whole fine-tune (see the module docstring); returns the report dict.

    `stop_after` interrupts the regression stage after that many validations (tests of --resume).
    """
    started = time.perf_counter()
    out = check_output_folder(options.out, "-o")
    work = out / WORK
    if work.exists() and not options.resume:
        raise ValueError(f"-o {out}: holds an unfinished fine-tune ({WORK}); pass --resume to continue it, or "
                         "choose another folder")
    device = select_device(0, options.device)
    start = load_enhancer(options.network, device=device)
    if not isinstance(start, PairEnhancer) or start.residual_model is None:
        raise ValueError(f"--network {options.network}: expected a pair (a residual snapshot with its regression), "
                         "found a regression network alone")
    mean_model, residual_model = start.regression_model, start.residual_model
    pairs, skipped = load_cases(options, start, say)
    train, val = split_pairs(pairs, options.val)
    say(f"petdiff finetune: {len(train)} training and {len(val)} validation pairs ({len(skipped)} skipped), "
        f"device {device}")
    fingerprint = json.loads(json.dumps({"options": options.fingerprint(), "train": [p.digest for p in train],
                                         "val": [p.digest for p in val], "start": residual_model.meta.get("sha256")}))
    work.mkdir(parents=True, exist_ok=True)
    previous = _json(work / "fingerprint.json")
    if previous is not None and previous != fingerprint:
        raise ValueError(f"--resume: {work} was started with other data or options; remove it or choose another -o")
    _write_json(work / "fingerprint.json", fingerprint)

    val_scored = scored(val, options.max_slices)
    timings: dict[str, float] = {}  # seconds of this invocation per step
    tick = time.perf_counter()

    def lap(name: str) -> None:
        """Record the seconds since the previous lap under `name`."""
        nonlocal tick
        now = time.perf_counter()
        timings[name] = round(now - tick, 1)
        tick = now

    before, before_results = _json(work / "before.json"), None
    if before is None:
        say("petdiff finetune: scoring the start pair on the validation pairs")
        before_results = enhance_all(start, val, options.samples, options.max_slices)
        before = scores(val_scored, before_results, start.spec.std_scale)
        _write_json(work / "before.json", before)
    lap("score_start")

    labels = "density" if start.spec.dose_label == "density" else "counts"
    spec = PatchSpec(size=int(start.spec.resolution[0]), context=start.spec.context, labels=labels)
    source, val_source = PatchSource(train, spec), PatchSource(val, spec)
    val_patches = val_source.fixed(VAL_PATCHES, options.seed + 1)

    say("petdiff finetune: stage 1, the regression network toward the full-dose scans")
    mean_new = _clone(mean_model)
    reg = run_stage(mean_new.net, RegressionLoss(), source, val_patches, _stage_settings(options, options.seed),
                    work / "regression-state.pt", device, options.resume, say, stop_after)
    if reg.stopped == "interrupted":
        return {"interrupted": True}
    lap("regression")

    say("petdiff finetune: stage 2, the residual diffusion network")
    residual_new = _clone(residual_model)
    edm = EDMLoss(sigma_data=float(residual_new.net.sigma_data))
    loss = ResidualLoss(mean_new.net, float(residual_model.meta["residual_std"]), edm)
    res = run_stage(residual_new.net, loss, source, val_patches, _stage_settings(options, options.seed + 2),
                    work / "residual-state.pt", device, options.resume, say)
    lap("residual")

    say("petdiff finetune: recalibrating the uncertainty on the validation pairs")
    tuned = PairEnhancer(mean_new, replace(residual_new, meta={**residual_new.meta, "std_scale": 1.0}),
                         start.count_model)
    results = enhance_all(tuned, val, options.samples, options.max_slices)
    calibration = _calibrate(val_scored, results)
    nan = float("nan")
    say(f"petdiff finetune: std scale {calibration['std_scale']:.3f} (coverage of the 90 % intervals "
        f"{calibration.get('coverage_before', nan):.3f} → {calibration.get('coverage_after', nan):.3f})")
    residual_new.meta["std_scale"] = float(calibration["std_scale"])
    after_results = [scaled(r, calibration["std_scale"]) for r in results]
    after = scores(val_scored, after_results, calibration["std_scale"])
    lap("recalibrate_and_score")

    report = {
        "network": f"{NETWORK_DIR}/residual.safetensors",
        "start_network": {"file": residual_model.path.name, "sha256": residual_model.meta.get("sha256"),
                          "regression_sha256": mean_model.meta.get("sha256")},
        "device": str(device),
        "options": options.fingerprint(),
        "pairs": {"train": [p.provenance() for p in train], "val": [p.provenance() for p in val],
                  "skipped": skipped},
        "stages": {"regression": reg.summary(), "residual": res.summary()},
        "calibration": calibration,
        "before": before,
        "after": after,
        "figure": "report.png",
    }
    provenance = {"start": report["start_network"], "train": report["pairs"]["train"],
                  "val": report["pairs"]["val"], "options": report["options"]}
    with staged_outputs(out, replaces=OUTPUTS, what="-o") as stage:
        _write_pair(stage / NETWORK_DIR, mean_new, residual_new, reg, res, calibration, provenance)
        report["time_s"] = round(time.perf_counter() - started, 1)
        report["timings_s"] = timings
        first_before = before_results[0] if before_results is not None else enhance_pair(
            start, val[0], start.settings("posterior", samples=options.samples),
            _slices(val[0], len(val), options.max_slices))
        write_report(stage, report, val_scored[0], first_before, after_results[0])
    shutil.rmtree(work, ignore_errors=True)
    say(f"petdiff finetune: wrote {out / NETWORK_DIR} and {out / 'report.md'}")
    return report


def _calibrate(val: list[ScanPair], results: list[Any]) -> dict[str, Any]:
    """The std scale from the validation pairs whose fraction leaves a remainder to check against."""
    usable = [(p, r) for p, r in zip(val, results) if p.fraction <= MAX_FRACTION and r.std is not None]
    if not usable:
        return {"std_scale": 1.0, "note": f"no validation pair with a dose fraction ≤ {MAX_FRACTION}: not recalibrated"}
    parts = [calibration_data(p, r) for p, r in usable]
    result = std_scale(*(torch.cat([part[i] for part in parts]) for i in range(3)))
    return {**result.as_dict(), "pairs": len(usable),
            "covers": "the noise-free full-dose image (the full-dose reconstruction's expectation over repeated "
                      "scans), checked against the full dose's counts the low dose lacks, with their noise"}


def _write_pair(folder: Path, mean: LoadedModel, residual: LoadedModel, reg: StageResult, res: StageResult,
                calibration: dict[str, Any], provenance: dict[str, Any]) -> None:
    """network/regression.safetensors and network/residual.safetensors (+ sidecars naming data by content hashes)."""
    folder.mkdir(parents=True)
    reserved = ("format", "version", "architecture", "sha256")
    meta = {k: v for k, v in mean.meta.items() if k not in reserved}
    meta["finetune"] = {**provenance, "stage": reg.summary()}
    path = save_network(folder / "regression.safetensors", mean.net, mean.meta["architecture"], meta)
    sha = read_network_metadata(path)["sha256"]
    meta = {k: v for k, v in residual.meta.items() if k not in reserved}
    meta["mean_network"] = {"file": path.name, "sha256": sha, "path": None, "kimg": mean.meta.get("kimg")}
    meta["std_scale"] = float(calibration["std_scale"])
    meta["finetune"] = {**provenance, "stage": res.summary(), "calibration": calibration}
    save_network(folder / "residual.safetensors", residual.net, residual.meta["architecture"], meta)
    estimator = residual.path.parent / COUNT_LEVEL_FILE
    if estimator.is_file() and sidecar_path(estimator).is_file():  # the scan models' count-level estimator, as it is
        for source in (estimator, sidecar_path(estimator)):
            shutil.copyfile(source, folder / source.name)

