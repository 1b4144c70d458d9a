"""Validation scoring: slices enhanced with their neighbours; `scaled` is what a pair recalibrated by c gives."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from petdiff.finetune.assess import enhance_pair, scaled, scored_slices, volume_scores
from petdiff.finetune.pairs import CasePaths, network_pair
from petdiff.inference.enhancers import PairEnhancer, load_enhancer
from petdiff.io import Scan
from tests.finetune.conftest import save_scan_pair, tiny_pair


def test_scaled_equals_the_recalibrated_pair(tmp_path: Path):
    start = load_enhancer(save_scan_pair(tmp_path), device="cpu")
    low, full = tiny_pair(0, slices=4)
    scans = [Scan(torch.from_numpy(x)[:, None], voxel_size=(3.0, 2.5, 2.5)) for x in (low, full)]
    pair = network_pair(CasePaths("c", Path("l"), Path("f")), 0, *scans, 0.25, "given", 0.25, (2.5, 2.5), 1.0)
    slices = scored_slices(pair, 2)
    assert len(slices) == 2
    settings = start.settings("posterior", samples=2)
    plain = enhance_pair(start, pair, settings, slices)
    wide = PairEnhancer(start.regression_model, replace(start.residual_model, meta={
        **start.residual_model.meta, "std_scale": 1.7}), start.count_model)
    rerun = enhance_pair(wide, pair, settings, slices)
    shortcut = scaled(plain, 1.7)
    assert plain.mean.shape == (2, 1, 24, 24)
    assert torch.equal(shortcut.mean, rerun.mean) and torch.allclose(shortcut.std, rerun.std, rtol=1e-6, atol=0)
    assert bool((rerun.std > plain.std).any())
    scores = volume_scores(replace(pair, low=pair.low[slices], full=pair.full[slices]), shortcut, 1.7)
    assert scores["coverage90"]["std_scale"] == 1.7 and 0 <= scores["coverage90"]["vs_remainder_with_its_noise"] <= 1
