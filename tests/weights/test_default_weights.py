"""The shipped scan models: they load, reproduce the model card's BrainWeb check, and listen to the count level."""

import json
from importlib import resources

import pytest

from petdiff.evaluate.metrics import psnr
from petdiff.inference import PairEnhancer, default_weights_dir, enhance_slices, load_enhancer
from petdiff.inference.model import COUNT_LEVEL_FILE, DEFAULT_PAIR

CHECK = json.loads(resources.files("petdiff").joinpath("weights/check.json").read_text())


@pytest.fixture(scope="module")
def enhancer() -> PairEnhancer:
    return load_enhancer(device="cpu")


def test_shipped_pair_loads_and_fits_the_size_budget(enhancer):
    assert enhancer.regression_model.role == "regression" and enhancer.residual_model.role == "residual"
    assert enhancer.count_model is not None and enhancer.count_model.role == "count_level"
    assert enhancer.spec.pixel_size is None and enhancer.spec.pixel_size_range == (1.5, 4.5)  # native
    assert enhancer.spec.context == 1 and enhancer.spec.whole_slices
    assert enhancer.spec.target == "truth" and enhancer.spec.dose_label == "density"
    files = [*DEFAULT_PAIR, COUNT_LEVEL_FILE]
    assert sum((default_weights_dir() / name).stat().st_size for name in files) <= 20 * 2**20


def test_shipped_pair_reproduces_the_model_card_on_brainweb(brainweb_path, tmp_path):
    from petdiff.cli import main

    args = [str(a) for a in CHECK["args"]]
    out = tmp_path / "eval"
    assert main(["evaluate", "--phantoms", str(brainweb_path), *args, "--out", str(out)]) == 0
    result = json.loads((out / "metrics.json").read_text())["results"][0]["methods"]
    found = {method: result[method]["vs_truth"]["psnr"]["mean"] for method in CHECK["psnr_vs_truth"]}
    # Same seeds, same slices: only floating-point summation order may differ between machines, which moves a
    # mean PSNR by far less than 0.02 dB, so a claimed gain of more than 1 dB that shrinks by 0.02 dB fails.
    for method, expected in CHECK["psnr_vs_truth"].items():
        assert found[method] == pytest.approx(expected, abs=0.02), method
    # BrainWeb here is an idealised scanner (no resolution blur, unfiltered MLEM-50 at 4 mm), outside the scan models'
    # training (3–7 mm scanners): the card reports it as a miss; the models must still improve on their input.
    for method in ("regression_mean", "posterior_mean"):
        claimed = CHECK["psnr_vs_truth"][method] - CHECK["psnr_vs_truth"]["low_dose_mlem"]
        assert claimed > 0.0 and found[method] - found["low_dose_mlem"] == pytest.approx(claimed, abs=0.02)


def test_the_right_count_level_beats_a_tenfold_wrong_one(enhancer):
    from petdiff.evaluate.scan_settings import SETTINGS, simulate_setting

    scans, _ = simulate_setting(SETTINGS["body-3.5mm"], 0.25, n=4, seed=11)
    settings = enhancer.settings("mean")
    scores = {}
    for name, factor in (("right", 1.0), ("tenfold_low", 0.1), ("tenfold_high", 10.0)):
        # ×factor counts: the same normalised input, told a count density ×factor (the output scales back)
        out = enhance_slices(enhancer, scans.low_dose[:, 1:2] * factor, 0.25, settings).mean / factor
        scores[name] = (out, float(psnr(out, scans.truth).mean()))
    assert float((scores["right"][0] - scores["tenfold_low"][0]).abs().max()) > 0.05 * float(scans.truth.max())
    assert scores["right"][1] > scores["tenfold_low"][1] + 0.5
    assert scores["right"][1] > scores["tenfold_high"][1] + 0.5
