"""`petdiff demo` end to end: with a tiny scan-model pair, with --no-model and without shipped weights."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from petdiff.commands import demo
from petdiff.inference import model as inference_model
from tests.conftest import save_scan_pair


def test_demo_with_a_tiny_network(tmp_path, capsys):
    _, residual = save_scan_pair(tmp_path / "net")
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--network", str(residual), "--samples", "2"]) == 0
    printed = capsys.readouterr().out
    assert "posterior mean" in printed and "regression" in printed and "coverage of the truth" in printed
    doc = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert doc["samples"] == 2 and doc["setting"] == "body-3.5mm" and doc["n"] == 1
    assert set(doc["methods"]) >= {"full dose", "low dose", "regression", "posterior mean"}
    assert 0.0 <= doc["coverage90"] <= 1.0
    with Image.open(out / "demo.png") as img:
        assert img.width > 900 and img.height > 500  # eight labelled panels in two rows of four


def test_demo_without_a_model(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--no-model", "--setting", "brain-2mm"]) == 0
    printed = capsys.readouterr().out
    assert "Baselines only (--no-model)" in printed
    assert "low dose" in printed and "filter" in printed and "coverage" not in printed
    assert not any(line.startswith("posterior mean") for line in printed.splitlines())
    doc = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert doc["model"] is None and doc["setting"] == "brain-2mm" and "coverage90" not in doc
    assert doc["methods"]["full dose"]["psnr"] > doc["methods"]["low dose"]["psnr"]  # four times the counts
    assert (out / "demo.png").stat().st_size > 10_000


def test_demo_says_when_the_shipped_model_is_missing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(inference_model, "default_weights_dir", lambda: tmp_path / "weights")
    assert demo.main(["--out", str(tmp_path / "demo")]) == 0
    assert "no shipped model" in capsys.readouterr().out


def test_demo_checks_out_before_the_work(tmp_path, capsys, monkeypatch):
    (tmp_path / "taken").write_text("a file")
    monkeypatch.setattr(demo, "evaluate_setting", lambda *a, **k: pytest.fail("work started"))
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
