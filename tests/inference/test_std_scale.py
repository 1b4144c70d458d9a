"""A recalibrated pair (sidecar `std_scale` c): the Enhancer widens the samples about their mean c×."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from petdiff.inference.enhancer import Enhancer
from petdiff.inference.model import load_pair
from tests.conftest import RES, save_pair


def test_std_scale_widens_the_std_and_keeps_the_mean(tmp_path: Path):
    _, residual = save_pair(tmp_path)
    mean, res = load_pair(residual, device="cpu")
    low = 20 + 5 * torch.rand(2, 1, RES, RES, generator=torch.Generator().manual_seed(0))
    plain = Enhancer(mean, res)
    wide = Enhancer(mean, replace(res, meta={**res.meta, "std_scale": 2.5}))
    assert plain.std_scale == 1.0 and wide.std_scale == 2.5
    settings = plain.settings("posterior", samples=4)
    a = plain.enhance(low, 0.25, 1e5, settings)
    b = wide.enhance(low, 0.25, 1e5, settings)
    clear = (a.mean - 2.5 * 3 * a.std) > 0  # no widened sample clamped at 0 here
    assert bool(clear.any())
    assert torch.allclose(b.mean[clear], a.mean[clear], rtol=1e-4, atol=1e-4)
    assert torch.allclose(b.std[clear], 2.5 * a.std[clear], rtol=1e-3, atol=1e-5)
