"""`petdiff evaluate` end to end: a tiny untrained network on a few procedural slices, baselines-only runs."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from petdiff.commands import evaluate as evaluate_command
from petdiff.evaluate.pipeline import optional_model
from petdiff.inference import model as inference_model
from tests.conftest import TINY_RES, save_tiny_snapshot


@pytest.fixture
def snapshot(tmp_path):
    return save_tiny_snapshot(tmp_path / "net" / "network-snapshot-000000.safetensors")


def read_json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_evaluate_with_a_tiny_network(tmp_path, snapshot, capsys):
    out = tmp_path / "eval"
    rc = evaluate_command.main([
        "--network", str(snapshot), "--n-slices", "3", "--samples", "3", "--steps", "2", "--fractions", "0.5",
        "--tune-n", "4", "--examples", "2", "--device", "cpu", "--out", str(out),
        "--n-iter", "20",  # baselines at 20 iterations; the network's condition still gets its own 50
    ])
    assert rc == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["example_000.png", "example_002.png", "metrics.json", "metrics.md", "psnr_vs_dose.png"]
    doc = read_json(out / "metrics.json")
    assert doc["model"]["path"] == str(snapshot)
    assert doc["settings"]["resolution"] == TINY_RES and doc["settings"]["slices"] == [0, 1, 2]
    assert doc["settings"]["n_iter"] == 20 and doc["results"][0]["baselines"]["early_stop_iter"] <= 20
    assert [r["fraction"] for r in doc["results"]] == [0.25, 0.5]
    main = doc["results"][0]
    assert set(main["methods"]) == {"low_dose_mlem", "early_stop_mlem", "post_filter", "posterior_mean",
                                    "full_dose_mlem", "noiseless_mlem"}
    psnr = main["methods"]["full_dose_mlem"]["vs_truth"]["psnr"]
    assert psnr["n"] == 3 and psnr["mean"] > 10
    assert "vs_full_dose" not in main["methods"]["full_dose_mlem"]  # not compared with itself
    if main["lesions"] is not None:  # procedural phantoms with hot lesions: SUVmax / MTV errors for every method
        assert set(main["lesions"]) == set(main["methods"]) and "mtv_ml" in main["lesions"]["posterior_mean"]
    assert set(main["methods"]["posterior_mean"]["regions"]) >= {"grey_matter", "white_matter"}
    calib = main["calibration"]["vs_full_dose"]
    assert calib["samples_0.5_expected"] == pytest.approx(0.25)  # c·(K−1)/(K+1) with K = 3
    # Coverages are counts of covered head pixels over the head's pixels (the same mask vs truth and vs full dose),
    # and a wider Gaussian interval covers every pixel a narrower one does.
    pixels = calib["pixels"]
    assert pixels == main["calibration"]["vs_truth"]["pixels"] and 0 < pixels <= 3 * TINY_RES**2
    for key in ("gaussian_0.5", "gaussian_0.9", "samples_0.5", "samples_0.9"):
        assert calib[key] * pixels == pytest.approx(round(calib[key] * pixels), abs=1e-6), key
    assert calib["gaussian_0.5"] <= calib["gaussian_0.9"] and calib["samples_0.5"] <= calib["samples_0.9"]
    assert len(main["per_slice_psnr_vs_truth"]["posterior_mean"]) == 3
    assert main["baselines"]["tuned_on"]["phantoms"] == "procedural"
    text = (out / "metrics.md").read_text(encoding="utf-8")
    assert "posterior mean" in text and "Posterior calibration" in text
    assert "| method | PSNR dB vs truth" in capsys.readouterr().out
    for png in ("example_000.png", "psnr_vs_dose.png"):
        with Image.open(out / png) as img:
            assert img.width > 400 and img.height > 200


def test_evaluate_baselines_only(tmp_path, capsys):
    out = tmp_path / "eval"
    rc = evaluate_command.main(["--no-model", "--resolution", "32", "--n-slices", "2", "--tune-n", "4",
                                "--examples", "1", "--out", str(out)])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["example_001.png", "metrics.json", "metrics.md"]
    doc = read_json(out / "metrics.json")
    assert doc["model"] is None and "--no-model" in doc["note"]
    assert "posterior_mean" not in doc["results"][0]["methods"] and doc["results"][0]["calibration"] is None
    assert "Baselines only" in capsys.readouterr().err


def test_missing_default_weights_fall_back_to_baselines(monkeypatch, tmp_path):
    monkeypatch.setattr(inference_model, "default_weights_dir", lambda: tmp_path / "weights")
    model, note = optional_model(None, no_model=False, device="cpu")
    assert model is None and "no shipped model" in note and str(tmp_path / "weights") in note


def test_failed_write_leaves_the_previous_evaluation_intact(tmp_path, monkeypatch, capsys):
    out = tmp_path / "eval"
    args = ["--no-model", "--resolution", "32", "--n-slices", "2", "--tune-n", "4", "--out", str(out)]
    assert evaluate_command.main([*args, "--examples", "2"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["example_000.png", "example_001.png", "metrics.json", "metrics.md"]
    real = evaluate_command.write_outputs

    def write_then_fail(stage, *a, **k):
        real(stage, *a, **k)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(evaluate_command, "write_outputs", write_then_fail)
    assert evaluate_command.main([*args, "--examples", "1", "--seed", "5"]) == 2
    assert "could not write the outputs" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing new, nothing mixed, no staging left
    monkeypatch.setattr(evaluate_command, "write_outputs", real)
    assert evaluate_command.main([*args, "--examples", "1", "--seed", "5"]) == 0
    # One example now: the earlier run's example_000.png is gone with the rest of that run.
    assert sorted(p.name for p in out.iterdir()) == ["example_001.png", "metrics.json", "metrics.md"]
    assert read_json(out / "metrics.json")["settings"]["seed"] == 5


def test_output_path_is_checked_before_the_work(tmp_path, capsys, monkeypatch):
    (tmp_path / "taken").write_text("a file")
    monkeypatch.setattr(evaluate_command, "evaluate_scans", lambda *a, **k: pytest.fail("work started"))
    assert evaluate_command.main(["--no-model", "--out", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err == f"petdiff evaluate: --out: expected an output folder, found an existing file {tmp_path / 'taken'}\n"
    assert evaluate_command.main(["--no-model", "--n-iter", "0", "--out", str(tmp_path / "e")]) == 2
    assert "--n-iter: expected an integer >= 1, found 0" in capsys.readouterr().err


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert evaluate_command.main(["--network", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path)]) == 2
    assert "petdiff evaluate: network" in capsys.readouterr().err
    assert evaluate_command.main(["--no-model", "--phantoms", str(tmp_path / "none.npz"), "--out", str(tmp_path)]) == 2
    assert "none.npz" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate_command.main(["--fractions", "0.1,2"])


def test_evaluate_brainweb_slices_have_grey_and_white_regions(tmp_path, brainweb_path):
    out = tmp_path / "eval"
    rc = evaluate_command.main(["--no-model", "--phantoms", str(brainweb_path), "--slices", "40-43", "--tune-n", "4",
                                "--examples", "1", "--out", str(out)])
    assert rc == 0
    doc = read_json(out / "metrics.json")
    assert doc["settings"]["slices"] == [40, 41, 42, 43]
    assert doc["regions"]["names"] == ["grey_matter", "white_matter"] and "white matter" in doc["regions"]["definition"]
    grey = doc["results"][0]["methods"]["low_dose_mlem"]["regions"]["grey_matter"]
    assert grey["bias"]["n"] >= 1


def test_evaluate_a_pair_with_a_warm_start(tmp_path):
    from tests.conftest import save_pair

    _, residual = save_pair(tmp_path / "pair")
    runs = {}
    for name, extra in (("cold", []), ("warm", ["--warm-start", "0.5"])):
        out = tmp_path / name
        rc = evaluate_command.main(["--network", str(residual), "--n-slices", "2", "--samples", "2", "--tune-n", "2",
                                    "--examples", "1", "--n-iter", "10", "--device", "cpu", "--out", str(out), *extra])
        assert rc == 0
        runs[name] = read_json(out / "metrics.json")
    methods = runs["warm"]["results"][0]["methods"]
    assert {"regression_mean", "posterior_mean"} <= set(methods)
    assert runs["warm"]["settings"]["warm_start"] == 0.5 and runs["cold"]["settings"]["warm_start"] is None
    assert set(runs["warm"]["model"]) == {"mean", "residual"}
    # the regression mean does not depend on the sampler; the posterior mean does
    cold, warm = (runs[k]["results"][0]["methods"] for k in ("cold", "warm"))
    assert cold["regression_mean"] == warm["regression_mean"]
    assert cold["posterior_mean"]["vs_truth"]["psnr"] != warm["posterior_mean"]["vs_truth"]["psnr"]


def test_warm_start_is_refused_for_a_single_denoiser(tmp_path, snapshot, capsys):
    rc = evaluate_command.main(["--network", str(snapshot), "--warm-start", "1", "--out", str(tmp_path / "e")])
    assert rc == 2 and "--warm-start" in capsys.readouterr().err
