"""The evaluation run with a residual-corrective pair: regression mean and posterior mean scored beside baselines."""

import torch

from petdiff.evaluate.pipeline import evaluate_scans, model_info
from petdiff.evaluate.scans import load_phantoms
from petdiff.inference.enhancers import load_enhancer
from tests.conftest import save_pair


def test_pair_methods_are_scored_with_calibration(tmp_path):
    _, residual = save_pair(tmp_path)
    enhancer = load_enhancer(residual)
    phantoms = load_phantoms("procedural", 16, n_slices=2, seed=1)
    evaluation = evaluate_scans(phantoms, counts=2e5, fractions=(0.25,), model=enhancer, samples=3, seed=0, tune_n=2,
                                n_iter=10, log=lambda *_: None)
    result = evaluation.results[0]
    for name in ("regression_mean", "posterior_mean", "low_dose_mlem", "full_dose_mlem"):
        assert name in result.summary
        assert result.images[name].shape == (2, 1, 16, 16)
    assert float(result.images["regression_mean"].min()) >= 0
    assert result.std is not None and result.calibration is not None
    assert not torch.equal(result.images["regression_mean"], result.images["posterior_mean"])
    info = model_info(enhancer)
    assert info["mean"]["role"] == "mean" and info["residual"]["residual_std"] == 0.1


def test_regression_only_gives_the_mean_method(tmp_path):
    mean, _ = save_pair(tmp_path)
    enhancer = load_enhancer(mean)
    phantoms = load_phantoms("procedural", 16, n_slices=1, seed=2)
    result = evaluate_scans(phantoms, counts=2e5, fractions=(0.5,), model=enhancer, samples=2, tune_n=2, n_iter=10,
                            log=lambda *_: None).results[0]
    assert "regression_mean" in result.summary and "posterior_mean" not in result.summary
    assert result.std is None
