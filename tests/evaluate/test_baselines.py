"""Baselines: MLEM iterate paths, tuning on procedural training scans, units of the baseline images."""

from __future__ import annotations

import pytest
import torch

from petdiff.evaluate.baselines import FWHM_GRID, mlem_path, run_baselines, tune_baselines
from petdiff.phantoms import procedural_phantoms
from petdiff.physics import Projector, poisson_sinogram, thin
from petdiff.recon import mlem

RES = 32


@pytest.fixture(scope="module")
def scans():
    g = torch.Generator().manual_seed(0)
    truth = procedural_phantoms(3, RES, generator=g).activity
    projector = Projector(RES)
    full = poisson_sinogram(truth, projector, 1e5, g)
    return truth, projector, full, thin(full, 0.25, g)


def test_mlem_path_equals_separate_runs(scans):
    _, projector, full, _ = scans
    path = mlem_path(full, projector, 12, keep={3, 7, 12})
    assert sorted(path) == [3, 7, 12]
    for k, x in path.items():
        torch.testing.assert_close(x, mlem(full, projector, n_iter=k), rtol=1e-5, atol=1e-6)
    assert sorted(mlem_path(full, projector, 4)) == [1, 2, 3, 4]


def test_tuning_at_low_counts_filters_and_stops_early():
    # 25 % of 1e5 counts at 32×32: noisy enough that both regularisers beat plain 50-iteration MLEM on training data
    s = tune_baselines(counts=1e5, fraction=0.25, resolution=RES, n=8, seed=0)
    assert s.fwhm > 0
    assert s.early_stop_iter < s.n_iter
    # the choices are the maxima of the training curves they report
    assert s.psnr_by_fwhm[FWHM_GRID.index(s.fwhm)] == max(s.psnr_by_fwhm)
    assert s.psnr_by_iter[s.early_stop_iter - 1] == max(s.psnr_by_iter)
    assert max(s.psnr_by_fwhm) > s.psnr_by_fwhm[0]  # filtering helps on the training set
    assert s.psnr_by_fwhm[0] == pytest.approx(s.psnr_by_iter[-1])  # FWHM 0 is the plain n_iter image
    assert len(s.psnr_by_iter) == s.n_iter and len(s.psnr_by_fwhm) == len(FWHM_GRID)
    # cached per setting
    assert tune_baselines(counts=1e5, fraction=0.25, resolution=RES, n=8, seed=0) is s
    assert tune_baselines(counts=1e5, fraction=0.25, resolution=RES, n=8, seed=1) is not s


def test_more_counts_need_less_smoothing():
    low = tune_baselines(counts=3e4, fraction=0.25, resolution=RES, n=8, seed=0)
    high = tune_baselines(counts=1e6, fraction=0.5, resolution=RES, n=8, seed=0)
    assert low.fwhm >= high.fwhm
    assert low.early_stop_iter <= high.early_stop_iter


def test_run_baselines_are_in_full_dose_units(scans):
    _, projector, _, low = scans
    s = tune_baselines(counts=1e5, fraction=0.25, resolution=RES, n=8, seed=0)
    images = run_baselines(low, projector, 0.25, s)
    assert set(images) == {"low_dose_mlem", "early_stop_mlem", "post_filter"}
    # MLEM keeps Σ_j (Aᵀ1)_j λ_j = Σ_i Y_i (unit sensitivity here), so /f puts the low dose on the full-dose total
    sens = projector.sensitivity
    for name in ("low_dose_mlem", "early_stop_mlem"):
        torch.testing.assert_close((images[name] * sens).sum(dim=(1, 2, 3)), low.sum(dim=(1, 2)) / 0.25, rtol=1e-4,
                                   atol=0)
    torch.testing.assert_close(images["low_dose_mlem"], mlem(low, projector, n_iter=s.n_iter) / 0.25)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="fraction"):
        tune_baselines(counts=1e5, fraction=1.5, resolution=RES)
    with pytest.raises(ValueError, match="counts"):
        tune_baselines(counts=-1, resolution=RES)
    with pytest.raises(ValueError, match="n: expected a positive integer"):
        tune_baselines(counts=1e5, resolution=RES, n=0)
