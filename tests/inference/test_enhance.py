from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from petdiff.data.normalization import Normalizer
from petdiff.diffusion import sample
from petdiff.inference import (
    FALLBACK_SAMPLING,
    enhance,
    load_model,
    reconstruct,
    sampling_settings,
)
from petdiff.inference import model as model_module
from petdiff.inference.enhance import full_dose_scale
from petdiff.physics import Projector, poisson_sinogram, thin
from petdiff.recon import mlem
from tests.conftest import RES, save_tiny, stub_model


def low_dose_batch(batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Positive 'reconstructions' in count units: a bright disc on a dimmer background plus texture."""
    g = torch.Generator().manual_seed(seed)
    c = torch.linspace(-1, 1, RES)
    disc = ((c[None, :] ** 2 + c[:, None] ** 2) < 0.5).float()
    return (5.0 + 20.0 * disc + 3.0 * torch.rand(batch, 1, RES, RES, generator=g)) * (1 + torch.arange(batch)).view(
        -1, 1, 1, 1
    )


@pytest.fixture
def pet_snapshot(tmp_path):
    return save_tiny(tmp_path / "network-snapshot-000000.safetensors")


# ---- load_model ---------------------------------------------------------------------------------------------


def test_load_model_from_safetensors_or_json(pet_snapshot):
    for path in (pet_snapshot, pet_snapshot.with_suffix(".json")):
        model = load_model(path, device="cpu")
        assert model.path == pet_snapshot
        assert not model.net.training
        assert model.device == torch.device("cpu")
        assert model.mode == "pet" and model.resolution == (RES, RES)
        assert model.meta["normalization"] == "quantitative"


def test_default_weights_missing_names_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(model_module, "default_weights_dir", lambda: tmp_path / "weights")
    with pytest.raises(ValueError, match=r"weights.*--network"):
        load_model()


def test_default_weights_are_loaded(monkeypatch, tmp_path):
    save_tiny(tmp_path / model_module.DEFAULT_WEIGHTS)
    monkeypatch.setattr(model_module, "default_weights_dir", lambda: tmp_path)
    assert load_model().path == tmp_path / model_module.DEFAULT_WEIGHTS


@pytest.mark.parametrize(
    ("meta", "word"),
    [
        ({"mode": None}, "mode"),
        ({"mode": "video"}, "mode"),
        ({"resolution": 32}, "resolution"),
        ({"normalization": "zscore"}, "normalization"),
        ({"sampling": [1]}, "sampling"),
    ],
)
def test_load_model_rejects_bad_sidecar(tmp_path, meta, word):
    path = save_tiny(tmp_path / "n.safetensors", **meta)
    with pytest.raises(ValueError, match=word):
        load_model(path, "cpu")


def test_load_model_rejects_mode_that_contradicts_network(tmp_path):
    path = save_tiny(tmp_path / "n.safetensors", kind="images")
    side = json.loads(path.with_suffix(".json").read_text())
    side.update(mode="pet", normalization="quantitative")
    path.with_suffix(".json").write_text(json.dumps(side))
    with pytest.raises(ValueError, match="cond_channels"):
        load_model(path, "cpu")


def test_load_model_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="safetensors"):
        load_model(tmp_path / "net.pkl")
    with pytest.raises(ValueError, match="not found"):
        load_model(tmp_path / "missing.safetensors")


# ---- sampler settings ---------------------------------------------------------------------------------------


def test_sampling_settings_defaults_and_overrides():
    net = stub_model().net
    assert sampling_settings(None, net) == ("edm", {"num_steps": 32, "S_churn": 0.0})
    assert FALLBACK_SAMPLING["num_steps"] == 32
    section = {"sampler": "edm", "steps": 7, "S_churn": 40, "S_min": 0.05, "S_max": 50, "S_noise": 1.003,
               "sigma_min": 0.002, "sigma_max": 80, "rho": 7, "seeds": "0-7", "network": None}
    name, opts = sampling_settings(section, net)
    assert name == "edm"
    assert opts == {"num_steps": 7, "S_churn": 40, "S_min": 0.05, "S_max": 50, "S_noise": 1.003,
                    "sigma_min": 0.002, "sigma_max": 80, "rho": 7}
    # churn defaults do not apply to a solver without churn; explicit options do
    name, opts = sampling_settings(section, net, sampler="dpmpp_2m", steps=5, overrides={"rho": 3})
    assert name == "dpmpp_2m" and opts == {"num_steps": 5, "sigma_min": 0.002, "sigma_max": 80, "rho": 3}
    with pytest.raises(ValueError, match="steps"):
        sampling_settings(section, net, steps=0)


def test_sampling_settings_clip_sigma_to_network():
    net = stub_model().net
    net.sigma_min, net.sigma_max = 0.01, 20.0
    _, opts = sampling_settings({"sigma_min": 0.002, "sigma_max": 80}, net)
    assert (opts["sigma_min"], opts["sigma_max"]) == (0.01, 20.0)


def test_enhance_uses_snapshot_sampling_steps():
    model = stub_model(sampling={"sampler": "edm", "steps": 3, "S_churn": 0})
    enhance(model, low_dose_batch(1), samples=2, batch_size=16)
    assert model.net.calls == 2 * 3 - 1  # Heun: 2N − 1 evaluations for the one batch
    model.net.calls = 0
    enhance(model, low_dose_batch(1), samples=2, steps=4, sampler="euler", batch_size=16)
    assert model.net.calls == 4


# ---- units and the posterior summary ------------------------------------------------------------------------


@pytest.mark.parametrize("normalization", ["quantitative", "reference"])
def test_noise_ignoring_network_returns_input_over_fraction_with_zero_std(normalization):
    # D(x; σ, y) = y: every sample is the condition itself, which maps back to exactly low / f.
    model = stub_model(0.0, normalization, data={})
    low, f = low_dose_batch(3), 0.2
    out = enhance(model, low, fraction=f, samples=4, keep_samples=True)
    torch.testing.assert_close(out.mean, low / f, rtol=1e-5, atol=0)
    assert out.std.shape == low.shape and float(out.std.max()) <= 1e-5 * float((low / f).max())
    assert out.samples.shape == (4, *low.shape)


def test_full_dose_scale_formulas():
    low, f = low_dose_batch(2), torch.tensor([0.25, 0.5])
    q = full_dose_scale(Normalizer("quantitative"), low, f)
    torch.testing.assert_close(q, Normalizer("quantitative").scale(low, f))  # s = max(smooth(low / f))
    r = full_dose_scale(Normalizer("reference"), low, f)
    torch.testing.assert_close(r, low.flatten(1).amax(1) / f)  # s = max(low) / f


def test_gaussian_posterior_mean_and_std_in_full_dose_units():
    # Exact denoiser of x₀ ~ N(y, τ²) in network units: the Heun ODE maps a latent z to y + c·τ·z, where c → 1 as
    # the steps grow (c is measured on the same solver below). In full-dose units the posterior mean is then
    # low / f and the std c·τ·s/2 (s = full-dose scale).
    tau, k, f, steps = 0.1, 48, 0.25, 32
    c = float(sample(lambda x, sigma: tau**2 * x / (tau**2 + sigma.view(-1, 1, 1, 1) ** 2),
                     torch.ones(1, 1, 1, 1, dtype=torch.float64), "edm", num_steps=steps)) / tau
    model = stub_model(tau)
    low = low_dose_batch(2)
    out = enhance(model, low, fraction=f, samples=k, steps=steps, batch_size=96)
    s = full_dose_scale(Normalizer("quantitative"), low, torch.full((2,), f)).view(-1, 1, 1, 1)
    sd = c * tau * s / 2
    # mean: per pixel N(low/f, sd²/K); 6 standard errors bound the largest of 512 pixels (p ≈ 1e-6)
    assert float(((out.mean - low / f).abs() / (sd / math.sqrt(k))).max()) < 6
    # std: E[unbiased std] = c4(K)·sd; the pixel average has relative s.e. 1/√(2(K−1)P) over P independent
    # pixels (P = H·W: sample k of every slice starts from the same seed-k latent). 5 standard errors.
    c4 = math.sqrt(2 / (k - 1)) * math.exp(math.lgamma(k / 2) - math.lgamma((k - 1) / 2))
    ratio = float((out.std / sd).mean()) / c4
    assert abs(ratio - 1) < 5 / math.sqrt(2 * (k - 1) * RES * RES)


def test_keep_samples_matches_running_moments(pet_snapshot):
    model = load_model(pet_snapshot, "cpu")
    low = low_dose_batch(2)
    kept = enhance(model, low, samples=3, keep_samples=True)
    running = enhance(model, low, samples=3)
    torch.testing.assert_close(kept.samples.mean(0), running.mean, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(kept.samples.std(0), running.std, rtol=1e-3, atol=1e-4)
    assert running.samples is None and kept.mean.shape == (2, 1, RES, RES)


# ---- reproducibility -----------------------------------------------------------------------------------------


def test_same_seed_same_sample_whatever_the_batch(pet_snapshot):
    model = load_model(pet_snapshot, "cpu")
    low = low_dose_batch(2)
    a = enhance(model, low, samples=3, seeds=[4, 9, 2], keep_samples=True, batch_size=16)
    b = enhance(model, low, samples=3, seeds=[4, 9, 2], keep_samples=True, batch_size=1)
    c = enhance(model, low[1:], samples=2, seeds=[2, 7], keep_samples=True, batch_size=3)
    torch.testing.assert_close(a.samples, b.samples, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.samples[2, 1], c.samples[0, 0], rtol=1e-5, atol=1e-5)
    d = enhance(model, low, samples=3, seeds=[5, 9, 2], keep_samples=True)
    assert not torch.allclose(a.samples[0], d.samples[0])
    assert a.seeds == (4, 9, 2)


def test_default_seeds_and_single_sample(pet_snapshot):
    model = load_model(pet_snapshot, "cpu")
    out = enhance(model, low_dose_batch(1), samples=1)
    assert out.seeds == (0,) and out.std is None
    torch.testing.assert_close(out.mean, enhance(model, low_dose_batch(1), samples=1, seeds=[0]).mean)


def test_progress_bar_does_not_change_results(pet_snapshot):
    model = load_model(pet_snapshot, "cpu")
    a = enhance(model, low_dose_batch(1), samples=2, progress=True)
    b = enhance(model, low_dose_batch(1), samples=2)
    torch.testing.assert_close(a.mean, b.mean)


# ---- validation ----------------------------------------------------------------------------------------------


def test_rejects_bad_input():
    model = stub_model()
    low = low_dose_batch(1)
    with pytest.raises(ValueError, match=r"16×16.*resample"):
        enhance(model, torch.ones(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        enhance(model, low[0, 0])
    with pytest.raises(ValueError, match="finite"):
        enhance(model, torch.where(low > 20, float("nan"), low))
    with pytest.raises(ValueError, match="non-negative"):
        enhance(model, low - 10)
    with pytest.raises(ValueError, match="fraction"):
        enhance(model, low, fraction=0.0)
    with pytest.raises(ValueError, match="fraction"):
        enhance(model, low, fraction=torch.tensor([0.2, 0.3]))
    with pytest.raises(ValueError, match="seeds"):
        enhance(model, low, samples=4, seeds=[1, 2])
    with pytest.raises(ValueError, match="samples"):
        enhance(model, low, samples=0)
    with pytest.raises(ValueError, match="LoadedModel"):
        enhance(model.net, low)


def test_rejects_unconditional_model(tmp_path):
    model = load_model(save_tiny(tmp_path / "i.safetensors", kind="images"), "cpu")
    with pytest.raises(ValueError, match="mode 'pet'"):
        enhance(model, low_dose_batch(1))


def test_zero_slices_are_skipped_with_a_warning():
    model = stub_model()
    low = low_dose_batch(3)
    low[1] = 0
    with pytest.warns(UserWarning, match=r"\[1\]"):
        out = enhance(model, low, samples=2)
    assert out.skipped == (1,)
    assert float(out.mean[1].abs().max()) == 0 and float(out.std[1].abs().max()) == 0
    torch.testing.assert_close(out.mean[[0, 2]], low[[0, 2]] / 0.25, rtol=1e-5, atol=0)


def test_all_zero_input_runs_no_network():
    model = stub_model()
    with pytest.warns(UserWarning, match="all zero"):
        out = enhance(model, torch.zeros(2, 1, RES, RES), samples=2)
    assert model.net.calls == 0 and float(out.mean.abs().max()) == 0


def test_fraction_outside_training_range_warns():
    model = stub_model(data={"fraction": [0.2, 0.3]})
    with pytest.warns(UserWarning, match="trained on dose fractions"):
        enhance(model, low_dose_batch(1), fraction=0.05, samples=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enhance(model, low_dose_batch(1), fraction=0.25, samples=2)


# ---- sinograms -----------------------------------------------------------------------------------------------


def test_reconstruct_uses_the_training_iterations():
    model = stub_model()
    projector = Projector(RES)
    g = torch.Generator().manual_seed(1)
    full = poisson_sinogram(low_dose_batch(2), projector, counts=1e5, generator=g)
    sino = thin(full, 0.25, generator=g)
    recon = reconstruct(model, sino)
    torch.testing.assert_close(recon, mlem(sino, projector, n_iter=5))  # the sidecar's data.n_iter
    with pytest.raises(ValueError, match="sinograms"):
        reconstruct(model, torch.ones(1, 16, 16))
