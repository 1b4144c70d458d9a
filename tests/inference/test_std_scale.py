"""A recalibrated pair (residual sidecar `std_scale` c): read once into the spec; the std is c× wider, the mean kept."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from petdiff.inference.enhancers import PairEnhancer
from petdiff.inference.model import load_pair
from petdiff.inference.volume import enhance_slices
from tests.conftest import RES, save_pair


def _enhancers(tmp_path: Path, c: float) -> tuple[PairEnhancer, PairEnhancer]:
    """The same pair twice: as saved (c = 1) and with `std_scale` c in the residual's sidecar."""
    _, residual = save_pair(tmp_path)
    mean, res = load_pair(residual, device="cpu")
    return PairEnhancer(mean, res), PairEnhancer(mean, replace(res, meta={**res.meta, "std_scale": c}))


def test_std_scale_widens_the_std_and_keeps_the_mean(tmp_path: Path):
    plain, wide = _enhancers(tmp_path, 2.5)
    assert plain.spec.std_scale == 1.0 and wide.spec.std_scale == 2.5
    low = 20 + 5 * torch.rand(3, 1, RES, RES, generator=torch.Generator().manual_seed(0))
    settings = plain.settings("posterior", samples=4)
    a = enhance_slices(plain, low, 0.25, settings, keep_samples=True)
    b = enhance_slices(wide, low, 0.25, settings, keep_samples=True)
    assert torch.equal(b.mean, a.mean) and torch.equal(b.regression, a.regression)
    assert bool((a.std > 0).any())
    assert torch.allclose(b.std, 2.5 * a.std, rtol=1e-6, atol=0)
    # kept samples are widened about the posterior mean (clipped at 0): where none is clipped, their spread is c×
    clear = (a.mean - 2.5 * 4 * a.std > 0)
    assert bool(clear.all())
    assert torch.allclose(b.samples.mean(dim=0), a.mean, rtol=1e-4, atol=1e-4)
    assert torch.allclose(b.samples.std(dim=0), b.std, rtol=1e-3, atol=1e-4)


def test_std_scale_must_be_positive(tmp_path: Path):
    _, residual = save_pair(tmp_path)
    mean, res = load_pair(residual, device="cpu")
    for bad in (0.0, -1.0, "2", float("nan")):
        with pytest.raises(ValueError, match="std_scale"):
            PairEnhancer(mean, replace(res, meta={**res.meta, "std_scale": bad}))
