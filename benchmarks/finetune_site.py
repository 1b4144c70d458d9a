"""Does `petdiff finetune` help on a scanner the model has not seen? One JSON object (issue 18, item 2).

The "site" is made with the project's own phantoms and physics, but as a scanner and protocol outside the scan
models' training ranges (data/scan_pairs.ScanSimulation: pixels 1.5–4.5 mm, scanner 3–7 mm, OSEM 2–4 iterations ×
8/16/32 subsets or MLEM 15–60, post-filter 0–6 mm, the FDG-like body and brain anatomy):

* a BSREM-like reconstruction: OSEM 8 iterations × 24 subsets (192 sub-iterations, 1.5× training's most, and a
  subset count training never used), then a 6.5 mm post-filter (training: ≤ 6 mm);
* a 7.5 mm scanner resolution (training: ≤ 7 mm) on 2.7 mm pixels;
* a tracer-like contrast training never saw: activity a ↦ a^1.5 (rescaled to the same mean), hot organs and
  lesions hotter against a lower background (a PSMA / somatostatin-receptor-like look); body and brain slabs mixed.

Volumes are slabs of 2k+1 adjacent slices (k = 8: 17 slices) simulated slice by slice with one full-dose acquisition,
the low dose its binomial thinning (list-mode subsampling). `--volumes` pairs go to `finetune` (its own 80/20
training/validation split); `--test` further volumes are held out. On the held-out volumes the start and the
fine-tuned pair are scored against the full dose (PSNR, SSIM, hot-spot max ratio), against the truth (PSNR, lesion
contrast recovery of the phantoms' hot lesions, 3–6 per volume), and for the coverage of their 90 % intervals
(see finetune/calibrate.py).

    .venv/bin/python benchmarks/finetune_site.py [--network RESIDUAL.safetensors] [--volumes 20] [--test 8]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from petdiff.data.scan_pairs import blur_mm, field_of_view
from petdiff.evaluate.scan_settings import lesion_scores
from petdiff.finetune import FinetuneOptions, finetune
from petdiff.finetune.assess import enhance_pair, image_scores, restrict, scored_slices, volume_scores
from petdiff.finetune.pairs import CasePaths, check_pair, network_pair
from petdiff.inference.enhancers import Enhancer, load_enhancer
from petdiff.inference.grid import to_model_grid
from petdiff.inference.spec import ModelSpec
from petdiff.io import Scan
from petdiff.phantoms.body import body_slabs
from petdiff.phantoms.brain_slabs import brain_slabs
from petdiff.phantoms.lesions import LesionConfig
from petdiff.physics import Projector, thin
from petdiff.recon import mlem

SITE = {"pixel_mm": 2.7, "slice_mm": 2.7, "grid": 128, "scanner_fwhm_mm": 7.5, "recon": [8, 24],
        "postfilter_mm": 6.5, "contrast_power": 1.5, "counts_per_suv_cm2": 1500.0, "fraction": 0.1,
        "brain_share": 0.5}
SEED_FINETUNE, SEED_TEST = 31_337, 271_828
# a lesion-rich cohort (3–6 hot lesions of 6–20 mm per volume, 2–6× their background) so contrast can be measured
LESIONS = LesionConfig(count=(3, 6), diameter_mm=(6.0, 20.0), hot_fraction=1.0, hot_ratio=(2.0, 6.0))


def simulate_volumes(n: int, seed: int, context: int = 8, site: dict | None = None) -> list[dict[str, np.ndarray]]:
    """n site volumes (2k+1 slices each): low, full (counts per pixel), truth (full-dose counts), lesion labels."""
    s = {**SITE, **(site or {})}
    g = torch.Generator().manual_seed(seed)
    grid, px = int(s["grid"]), float(s["pixel_mm"])
    projector, fov = Projector(grid), field_of_view(grid)
    per_pixel = s["counts_per_suv_cm2"] * (px / 10.0) ** 2
    volumes = []
    for _ in range(n):
        make = brain_slabs if float(torch.rand(1, generator=g)) < s["brain_share"] else body_slabs
        slab = make(1, grid, px, float(s["slice_mm"]), context, g, lesions=LESIONS)
        a = slab.activity[0].clamp_min(0) * fov  # (S, G, G) SUV
        a = a.pow(s["contrast_power"]) * (a.mean() / a.pow(s["contrast_power"]).mean().clamp_min(1e-12))
        depth = a.shape[0]
        seen = blur_mm(a[:, None], torch.full((depth,), s["scanner_fwhm_mm"]), torch.full((depth,), px)) * fov
        full_sino = torch.poisson(projector.forward(seen * per_pixel), generator=g)
        low_sino = thin(full_sino, s["fraction"], generator=g)
        it, sub = s["recon"]
        recon = mlem(torch.cat([full_sino, low_sino]), projector, n_iter=it, subsets=sub)
        recon = blur_mm(recon, torch.full((2 * depth,), s["postfilter_mm"]), torch.full((2 * depth,), px))
        volumes.append({"full": recon[:depth, 0].numpy(), "low": recon[depth:, 0].numpy(),
                        "truth": (a * per_pixel).numpy(), "lesions": slab.lesions[0].numpy()})
    return volumes


def _pair(volume: dict[str, np.ndarray], index: int, spec: ModelSpec, site: dict):
    """A checked ScanPair of a simulated volume on the networks' grid (+ truth and lesions on that grid)."""
    kw = {"units": "counts", "voxel_size": (site["slice_mm"], site["pixel_mm"], site["pixel_mm"])}
    low, full = (Scan(torch.from_numpy(volume[k])[:, None], **kw) for k in ("low", "full"))
    fraction, source, ratio = check_pair(low, full, site["fraction"])
    pair = network_pair(CasePaths(f"test{index}", Path("-"), Path("-")), index, low, full, fraction, source, ratio,
                        spec.model_pixel_size(low.pixel_size), 1.0)
    truth = to_model_grid(torch.from_numpy(volume["truth"])[:, None], low.pixel_size, pair.pixel_size, "counts")
    lesions = F.interpolate(torch.from_numpy(volume["lesions"])[:, None].float(), size=tuple(truth.shape[-2:]),
                            mode="nearest")[:, 0].long()
    return pair, truth, lesions


def score(enhancer: Enhancer, volumes: list[dict[str, np.ndarray]], samples: int, site: dict, per_volume: int
          ) -> dict:
    """Held-out scores of one pair of networks: per method, means over volumes (lesion contrast over all lesions)."""
    settings = enhancer.settings("posterior", samples=samples)
    rows: dict[str, list[dict]] = {"low_dose": [], "regression": [], "posterior_mean": [], "full_dose": []}
    contrast: dict[str, list[float]] = {name: [] for name in rows}
    coverage = []
    for i, volume in enumerate(volumes):
        pair, truth, lesions = _pair(volume, i, enhancer.spec, site)
        slices = sorted(set(scored_slices(pair, per_volume)) | {pair.low.shape[0] // 2})  # the lesions' centre slice
        result = enhance_pair(enhancer, pair, settings, slices)
        pair, truth, lesions = restrict(pair, slices), truth[slices], lesions[slices]
        scores = volume_scores(pair, result, enhancer.spec.std_scale)
        coverage.append(scores["coverage90"]["vs_remainder_with_its_noise"])
        images = {"low_dose": pair.low / pair.fraction, "regression": result.regression,
                  "posterior_mean": result.mean, "full_dose": pair.full}
        for name, x in images.items():
            rows[name].append({**image_scores(x, pair.full), "psnr_vs_truth": image_scores(x, truth)["psnr"]})
            contrast[name] += lesion_scores(x, truth, pair.full, lesions)["cr_hot"]
    out = {name: {key: float(np.mean([r[key] for r in values])) for key in values[0]} for name, values in rows.items()}
    for name in out:
        out[name]["lesion_contrast_recovery"] = float(np.mean(contrast[name])) if contrast[name] else None
    out["hot_lesions"] = len(contrast["full_dose"])
    out["coverage90"] = float(np.mean(coverage))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", default=None, help="residual snapshot of the start pair (default: the shipped one)")
    p.add_argument("--volumes", type=int, default=20, help="paired volumes given to finetune")
    p.add_argument("--test", type=int, default=8, help="held-out volumes")
    p.add_argument("--context", type=int, default=8, help="k: volumes of 2k+1 slices")
    p.add_argument("--kimg", type=float, default=2.0)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--test-slices", type=int, default=5, help="slices scored per held-out volume")
    p.add_argument("--device", default=None)
    p.add_argument("--work", default=None, help="folder for the site's files and the fine-tune (default: a temp one)")
    args = p.parse_args()
    t0 = time.perf_counter()
    train_volumes = simulate_volumes(args.volumes, SEED_FINETUNE, args.context)
    test_volumes = simulate_volumes(args.test, SEED_TEST, args.context)
    simulate_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.work or tmp)
        for kind in ("low", "full"):
            (root / kind).mkdir(parents=True, exist_ok=True)
            for i, v in enumerate(train_volumes):
                np.save(root / kind / f"vol{i:02d}.npy", v[kind])
        options = FinetuneOptions(low=root / "low", full=root / "full", out=root / "out", network=args.network,
                                  fraction=SITE["fraction"], voxel_size=(SITE["slice_mm"], SITE["pixel_mm"],
                                                                         SITE["pixel_mm"]),
                                  kimg=args.kimg, samples=args.samples, device=args.device)
        t1 = time.perf_counter()
        report = finetune(options, say=lambda line: None)
        finetune_s = time.perf_counter() - t1
        start = load_enhancer(args.network, "posterior", args.device)
        tuned = load_enhancer(root / "out" / report["network"], "posterior", args.device)
        before = score(start, test_volumes, args.samples, SITE, args.test_slices)
        after = score(tuned, test_volumes, args.samples, SITE, args.test_slices)
    gain = after["posterior_mean"]["psnr"] - before["posterior_mean"]["psnr"]
    cr_before = before["posterior_mean"]["lesion_contrast_recovery"]
    cr_after = after["posterior_mean"]["lesion_contrast_recovery"]
    cr_ok = cr_before is not None and cr_after is not None and cr_after >= cr_before
    print(json.dumps({
        "site": SITE, "unseen": "OSEM 8×24 + 6.5 mm filter, 7.5 mm scanner, activity^1.5 contrast",
        "network": str(args.network or "shipped"), "volumes": args.volumes, "test_volumes": args.test,
        "slices_per_volume": 2 * args.context + 1, "kimg": args.kimg, "samples": args.samples,
        "threads": torch.get_num_threads(), "simulate_s": round(simulate_s, 1), "finetune_s": round(finetune_s, 1),
        "finetune_timings_s": report.get("timings_s"),
        "stages": {k: {kk: v[kk] for kk in ("initial_val_loss", "best_val_loss", "best_kimg", "kimg", "stopped")}
                   for k, v in report["stages"].items()},
        "std_scale": report["calibration"]["std_scale"], "before": before, "after": after,
        "psnr_gain_vs_full_db": gain, "report_validation": {"before": report["before"]["mean"],
                                                            "after": report["after"]["mean"]},
        "targets": {"psnr_gain_ge_1db": gain >= 1.0, "lesion_contrast_not_lower": bool(cr_ok),
                    "coverage_85_95": 0.85 <= after["coverage90"] <= 0.95, "finetune_le_30min": finetune_s <= 1800},
    }, indent=1))


if __name__ == "__main__":
    main()
