"""The sampling benchmark's helpers: PSNR formula, evaluation counts and the quality sweep on a toy network."""

import json
import math

import numpy as np
import pytest
import torch

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("sampling")


class ToyPosteriorNet(torch.nn.Module):
    """Exact denoiser of x | y ~ N(y, s²): the sampler-facing call of EDMPrecond, without weights."""

    img_channels, cond_channels, img_resolution = 1, 1, (8, 8)

    def forward(self, x, sigma, condition=None):
        s2, sigma = 0.01, sigma.view(-1, 1, 1, 1)
        return condition + s2 / (s2 + sigma**2) * (x - condition)


def test_psnr_of_a_constant_offset(bench):
    ref = torch.linspace(0, 2, 64).view(1, 1, 8, 8)
    e = 0.1
    assert float(bench.psnr(ref + e, ref)[0]) == pytest.approx(10 * math.log10(2.0**2 / e**2), rel=1e-6)


def test_evaluation_counts(bench):
    assert [bench.evaluations(s, 60) for s in ("edm", "euler", "dpmpp_2m")] == [119, 60, 60]


def _pair_file(path, n=3):
    full = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    np.savez(path, full_dose=full.numpy(), low_dose=full.numpy())
    return path


def test_quality_sweep_runs_on_a_toy_posterior(bench, tmp_path):
    out = bench.quality(ToyPosteriorNet(), str(_pair_file(tmp_path / "p.npz")), 3, [4, 60], ["edm", "dpmpp_2m"], 0.2)
    json.dumps(out)
    assert out["slices"] == 3 and math.isfinite(out["reference_edm_60_psnr_db"])
    # the same seeds and settings as the reference: identical at 60 steps, so EDM is within tolerance there
    assert out["solvers"]["edm"]["psnr_db_by_steps"]["60"] == out["reference_edm_60_psnr_db"]
    assert out["solvers"]["edm"]["fewest_steps_within_tolerance"] in (4, 60)


def test_fewest_steps_is_two_sided_and_must_hold_for_all_larger_counts(bench, tmp_path, monkeypatch):
    # Stub the sampler: output = truth + e, so PSNR = 10·log10(range²/e²) exactly; reference e = 0.1.
    offsets = {("edm", 60): 0.1, ("dpmpp_2m", 2): 0.001, ("dpmpp_2m", 10): 0.1 * 10 ** (0.3 / 20),
               ("dpmpp_2m", 20): 0.1 * 10 ** (0.1 / 20), ("dpmpp_2m", 60): 0.1 * 10 ** (-0.1 / 20)}
    monkeypatch.setattr(bench, "draw", lambda net, low, seeds, sampler, n: low + offsets[(sampler, n)])
    out = bench.quality(None, str(_pair_file(tmp_path / "p.npz")), 3, [2, 10, 20, 60], ["dpmpp_2m"], 0.2)
    row = out["solvers"]["dpmpp_2m"]
    # 2 steps: PSNR far *above* the reference (collapsed samples) does not count; 10 steps: 0.3 dB below
    assert row["fewest_steps_within_tolerance"] == 20 and row["evaluations"] == 20
    assert row["psnr_db_by_steps"]["20"] - out["reference_edm_60_psnr_db"] == pytest.approx(-0.1, abs=1e-3)


def test_quality_rejects_a_file_without_pairs(bench, tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, images=np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="expected array 'full_dose'"):
        bench.quality(ToyPosteriorNet(), str(path), 1, [5], ["edm"], 0.2)
