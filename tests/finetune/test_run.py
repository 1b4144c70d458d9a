"""`petdiff finetune` end to end on tiny data: a loadable recalibrated pair, the report, skipped pairs, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from petdiff.cli import main
from petdiff.finetune import FinetuneOptions, finetune
from petdiff.inference.enhancers import load_enhancer
from petdiff.inference.model import load_pair
from petdiff.inference.volume import enhance_volume
from tests.conftest import save_pair
from tests.finetune.conftest import save_scan_pair, write_cases

NAMES = ["Doe_Jane_0001", "Roe_Rick_0002", "Poe_Edgar_0003", "Moe_Anna_0004"]
FAST = ["--kimg", "0.064", "--batch", "4", "--eval-every", "16", "--samples", "2", "--voxel-size", "3", "2.5", "2.5"]


def test_finetune_end_to_end(tmp_path: Path):
    low_dir, full_dir = write_cases(tmp_path, 4, NAMES)
    np.save(low_dir / "Bad_Bob_0005.npy", np.ones((3, 24, 24), np.float32))
    np.save(full_dir / "Bad_Bob_0005.npy", np.ones((3, 24, 20), np.float32))  # another grid: skipped
    np.save(low_dir / "Lonely_0006.npy", np.ones((3, 24, 24), np.float32))  # no partner: skipped
    residual = save_scan_pair(tmp_path / "start")
    out = tmp_path / "out"
    code = main(["finetune", str(low_dir), str(full_dir), "-o", str(out), "--network", str(residual),
                 "--device", "cpu", "--fraction", "0.25", *FAST])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["network"] == "network/residual.safetensors"
    assert len(report["pairs"]["train"]) + len(report["pairs"]["val"]) == 4
    reasons = " ".join(s["reason"] for s in report["pairs"]["skipped"])
    assert len(report["pairs"]["skipped"]) == 2 and "grid" in reasons
    for key in ("psnr", "ssim", "nrmse", "region_rel_error", "hotspot_max_ratio"):
        assert key in report["before"]["mean"]["posterior_mean"] and key in report["after"]["mean"]["regression"]
    # one validation pair: the after scores' coverage is the one the recalibration reached, with c applied once
    assert len(report["pairs"]["val"]) == 1
    assert abs(report["after"]["mean"]["coverage90"]["vs_remainder_with_its_noise"]
               - report["calibration"]["coverage_after"]) < 1e-6
    assert (out / "report.md").is_file() and (out / "report.png").stat().st_size > 1000
    assert not (out / ".finetune-work").exists()
    assert (out / "network" / "count_level.safetensors").is_file()  # the pair's estimator travels with it

    mean, res = load_pair(out / report["network"], device="cpu")
    assert res.meta["std_scale"] == report["calibration"]["std_scale"] > 0
    enhancer = load_enhancer(out / report["network"], device="cpu")
    assert enhancer.spec.std_scale == res.meta["std_scale"]  # read once into the spec
    assert mean.meta["finetune"]["train"][0]["sha256"] in {p["sha256"] for p in report["pairs"]["train"]}
    # no patient identifiers (the case names) anywhere in the outputs
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            for name in [*NAMES, "Bad_Bob", "Lonely"]:
                for part in name.split("_")[:2]:
                    assert part.encode() not in text, (path, part)
    # the written pair enhances a volume with 2.5D context at the scans' own size (24×24 here)
    low = torch.rand(3, 1, 24, 24) * 10
    result = enhance_volume(enhancer, low, 0.25, enhancer.settings("posterior", samples=2))
    assert result.mean.shape == (3, 1, 24, 24) and bool(torch.isfinite(result.std).all())
    # and `petdiff enhance --network OUTDIR/<report.json network>` takes it, at the case's own pixel size
    code = main(["enhance", str(low_dir / f"{NAMES[0]}.npy"), "--network", str(out / report["network"]),
                 "--samples", "2", "--device", "cpu", "--fraction", "0.25", "--voxel-size", "3", "2.5", "2.5",
                 "-o", str(tmp_path / "enh")])
    assert code == 0 and (tmp_path / "enh" / NAMES[0] / "std.nii.gz").is_file()
    with np.load(tmp_path / "enh" / NAMES[0] / "enhanced.npz", allow_pickle=False) as saved:
        meta = json.loads(str(saved["meta"]))
        assert saved["std"].shape == (3, 1, 24, 24)
    # whole slices with their neighbours at the case's own 2.5 mm, the recalibrated std
    assert meta["model_pixel_size_mm"] == [2.5, 2.5] and meta["network_input"] == [24, 24] and meta["context"] == 1
    assert meta["model"]["std_scale"] == report["calibration"]["std_scale"]


def test_finetune_resume_is_exact(tmp_path: Path):
    low_dir, full_dir = write_cases(tmp_path, 3)
    residual = save_scan_pair(tmp_path / "start")
    common = dict(low=low_dir, full=full_dir, network=residual, fraction=0.25, kimg=0.064, batch=4, eval_every=16,
                  samples=2, voxel_size=(3.0, 2.5, 2.5), device="cpu", patience=10)
    once = finetune(FinetuneOptions(out=tmp_path / "once", **common), say=lambda s: None)
    stopped = finetune(FinetuneOptions(out=tmp_path / "twice", **common), say=lambda s: None, stop_after=2)
    assert stopped == {"interrupted": True} and (tmp_path / "twice" / ".finetune-work").is_dir()
    try:
        finetune(FinetuneOptions(out=tmp_path / "twice", **common), say=lambda s: None)
        raise AssertionError("an unfinished fine-tune must not be overwritten without --resume")
    except ValueError as err:
        assert "--resume" in str(err)
    twice = finetune(FinetuneOptions(out=tmp_path / "twice", resume=True, **common), say=lambda s: None)
    assert once["stages"] == twice["stages"]
    a, _ = load_pair(tmp_path / "once" / once["network"], device="cpu")
    b, _ = load_pair(tmp_path / "twice" / twice["network"], device="cpu")
    for (name, x), (_, y) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        assert torch.equal(x, y), name


def test_finetune_first_pair(tmp_path: Path):
    """The 64×64 (here 16×16) pair at a fixed pixel size, told (counts, fraction): fine-tuned through the same path."""
    low_dir, full_dir = write_cases(tmp_path, 3)
    _, residual = save_pair(tmp_path / "v1")
    report = finetune(FinetuneOptions(low=low_dir, full=full_dir, out=tmp_path / "out", network=residual,
                                      kimg=0.032, batch=4, eval_every=16, samples=2, voxel_size=(4.0, 4.0, 4.0),
                                      device="cpu"), say=lambda s: None)
    assert report["pairs"]["train"][0]["fraction_source"] == "estimated"
    assert abs(report["pairs"]["train"][0]["fraction"] - 0.25) < 0.05
    mean, res = load_pair(tmp_path / "out" / report["network"], device="cpu")
    assert mean.role == "regression" and res.meta["mean_network"]["file"] == "regression.safetensors"
    code = main(["enhance", str(low_dir / "case0.npy"), "--network", str(tmp_path / "out" / report["network"]),
                 "--samples", "2", "--device", "cpu", "-o", str(tmp_path / "enh")])
    assert code == 0 and (tmp_path / "enh" / "case0" / "std.nii.gz").is_file()


def test_finetune_refuses_too_few_pairs(tmp_path: Path, capsys):
    low_dir, full_dir = write_cases(tmp_path, 1)
    residual = save_scan_pair(tmp_path / "start")
    code = main(["finetune", str(low_dir), str(full_dir), "-o", str(tmp_path / "out"), "--network", str(residual),
                 "--device", "cpu"])
    assert code == 2 and "at least 2 usable pairs" in capsys.readouterr().err
    assert not (tmp_path / "out" / "report.json").exists()
    assert main(["finetune", "--help"]) == 0
