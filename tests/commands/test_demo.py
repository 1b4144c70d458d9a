"""`petdiff demo` end to end: with a tiny snapshot, with --no-model and without shipped weights."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from petdiff.commands import demo
from petdiff.inference import model as inference_model
from tests.conftest import save_tiny_snapshot


def test_demo_with_a_tiny_network(tmp_path, capsys):
    snapshot = save_tiny_snapshot(tmp_path / "net" / "network-snapshot-000000.safetensors")
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--network", str(snapshot), "--samples", "3", "--steps", "2"]) == 0
    printed = capsys.readouterr().out
    assert "posterior mean" in printed and "coverage of the truth" in printed and "full-dose MLEM" in printed
    doc = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert doc["settings"]["samples"] == 3 and doc["model"]["path"] == str(snapshot)
    assert set(doc["calibration"]) == {"vs_full_dose", "vs_truth"}
    assert doc["methods"]["posterior_mean"]["vs_truth"]["psnr"]["n"] == 1
    with Image.open(out / "demo.png") as img:
        assert img.width > 800 and img.height > 500  # six labelled panels in two rows of three


def test_demo_without_a_model(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--no-model"]) == 0
    printed = capsys.readouterr().out
    assert "Baselines only (--no-model)" in printed
    assert "low-dose MLEM" in printed and "MLEM + Gaussian filter" in printed
    assert not any(line.startswith("posterior mean") for line in printed.splitlines()) and "coverage" not in printed
    doc = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert doc["model"] is None and doc["calibration"] is None and doc["settings"]["resolution"] == 64
    full = doc["methods"]["full_dose_mlem"]["vs_truth"]["psnr"]["mean"]
    low = doc["methods"]["low_dose_mlem"]["vs_truth"]["psnr"]["mean"]
    assert full > low  # four times the counts
    assert (out / "demo.png").stat().st_size > 10_000


def test_demo_says_when_the_shipped_model_is_missing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(inference_model, "default_weights_dir", lambda: tmp_path / "weights")
    assert demo.main(["--out", str(tmp_path / "demo")]) == 0
    assert "no shipped model" in capsys.readouterr().out


def test_demo_checks_out_before_the_work(tmp_path, capsys, monkeypatch):
    (tmp_path / "taken").write_text("a file")
    monkeypatch.setattr(demo, "evaluate_scans", lambda *a, **k: pytest.fail("work started"))
    assert demo.main(["--out", str(tmp_path / "taken"), "--no-model"]) == 2
    assert capsys.readouterr().err == (
        f"petdiff demo: --out: expected an output folder, found an existing file {tmp_path / 'taken'}\n"
    )


def test_demo_failed_write_keeps_the_previous_pair(tmp_path, capsys, monkeypatch):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo.png").write_bytes(b"old png")
    (out / "metrics.json").write_text("{}")
    monkeypatch.setattr(demo, "json_safe", lambda doc: {"not json": object()})  # metrics.json cannot be written
    with pytest.raises(TypeError):
        demo.main(["--out", str(out), "--no-model"])
    assert (out / "demo.png").read_bytes() == b"old png" and sorted(p.name for p in out.iterdir()) == [
        "demo.png", "metrics.json"]
