"""A fine-tuning stage stops early when the validation loss stops improving and keeps the best weights."""

from __future__ import annotations

from pathlib import Path

import torch

from petdiff.diffusion.residual_loss import RegressionLoss
from petdiff.finetune.pairs import CasePaths, network_pair
from petdiff.finetune.patches import PatchSource, PatchSpec
from petdiff.finetune.stage import StageSettings, run_stage
from petdiff.io import Scan
from petdiff.models import build_network
from petdiff.models.presets import network_config
from tests.finetune.conftest import SCAN_NET, tiny_pair


def _source() -> PatchSource:
    pairs = []
    for i in range(2):
        low, full = tiny_pair(i)
        scans = [Scan(torch.from_numpy(x)[:, None], voxel_size=(3.0, 2.0, 2.0)) for x in (low, full)]
        pairs.append(network_pair(CasePaths(f"c{i}", Path("l"), Path("f")), i, *scans, 0.25, "given", 0.25,
                                  scans[0].pixel_size, 1.0))
    return PatchSource(pairs, PatchSpec(size=16, context=1, labels="density"))


def test_patches_are_normalised_like_inference():
    source = _source()
    batch = source.fixed(6, seed=0)
    assert batch.condition.shape == (6, 3, 16, 16) and batch.labels.shape == (6, 1)
    assert torch.equal(batch.target, source.fixed(6, seed=0).target)  # the validation set is fixed
    assert float(batch.condition.min()) >= -1.0 and float(batch.target.min()) >= -1.0


def test_early_stopping_keeps_the_best(tmp_path: Path):
    source = _source()
    net = build_network(network_config("pet_regression_scan", **SCAN_NET, role="regression"), seed=0)
    val = source.fixed(8, seed=1)
    settings = StageSettings(kimg=1.0, batch=4, lr=0.0, eval_every=8, patience=3)  # lr 0: nothing improves
    result = run_stage(net, RegressionLoss(), source, val, settings, tmp_path / "state.pt", torch.device("cpu"),
                       say=lambda s: None)
    assert result.stopped == "early stopping" and result.nimg == 3 * 8
    assert result.best_loss == result.initial_loss and result.best_nimg == 0
    settings = StageSettings(kimg=0.064, batch=4, lr=1e-3, eval_every=16, patience=10)
    result = run_stage(net, RegressionLoss(), source, val, settings, tmp_path / "s2.pt", torch.device("cpu"),
                       say=lambda s: None)
    assert result.best_loss < result.initial_loss and result.stopped == "kimg"
    assert min(h["val_loss"] for h in result.history) == result.best_loss
