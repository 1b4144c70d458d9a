"""The two adapters behind the Enhancer protocol, on problems whose answer is known in closed form.

Pair toy: x = y + τ·ε per pixel (network units), so p(x | y) = N(y, τ²). The regression stub returns μ(y) = y,
the exact conditional mean; the residual stub is the exact denoiser of r ~ N(0, σ_d²) (the residual scaled by
σ_d/τ), D(r; σ) = r·σ_d²/(σ² + σ_d²). The posterior samples must then be N(y, τ²), i.e. activity std τ·s/2
around the regression mean. Denoiser toy (`StubNet`): the exact denoiser of x₀ ~ N(y, τ²) in network units.
"""

import math
import warnings
from pathlib import Path

import pytest
import torch

from petdiff.data.normalization import Normalizer
from petdiff.diffusion import sample
from petdiff.diffusion.loss import EDMLoss
from petdiff.diffusion.residual_loss import RegressionLoss, ResidualLoss
from petdiff.inference.enhancers import DenoiserEnhancer, PairEnhancer, count_level
from petdiff.inference.model import LoadedModel, load_model
from petdiff.inference.volume import enhance_slices
from petdiff.physics import Projector
from tests.conftest import save_tiny, stub_model

RES, SIGMA_DATA = 16, 0.5


class MeanStub(torch.nn.Module):
    """μ(y, d) = y (the centre channel)."""

    def __init__(self):
        super().__init__()
        self.img_resolution, self.cond_channels, self.label_dim = (RES, RES), 1, 2
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, condition, class_labels=None, augment_labels=None):
        return condition.clone()


class GaussianResidualDenoiser(torch.nn.Module):
    """The exact denoiser of N(0, σ_d²) data, D(r; σ) = r·σ_d²/(σ² + σ_d²); records what it is given."""

    def __init__(self):
        super().__init__()
        self.img_resolution, self.img_channels, self.cond_channels, self.label_dim = (RES, RES), 1, 2, 2
        self.sigma_data, self.sigma_min, self.sigma_max = SIGMA_DATA, 0.0, float("inf")
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.seen_labels = None

    def forward(self, x, sigma, condition=None, class_labels=None, augment_labels=None):
        assert condition is not None and condition.shape[1] == 2
        self.seen_labels = class_labels
        s2 = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1) ** 2
        return x * SIGMA_DATA**2 / (s2 + SIGMA_DATA**2)


DATA = {"counts": [1e1, 1e9], "fraction": [0.05, 0.6], "n_iter": 50, "pixel_size_mm": 4.0, "dose_labels": True}


def toy_enhancer(tau: float) -> PairEnhancer:
    common = {"mode": "pet", "normalization": "quantitative", "data": DATA, "resolution": RES}
    mean = LoadedModel(MeanStub(), {**common, "role": "mean"}, Path("mean.safetensors"))
    residual_meta = {**common, "role": "residual", "residual_std": tau,
                     "sampling": {"sampler": "dpmpp_2m", "steps": 24, "sigma_max": 10.0, "seeds": "0-7"}}
    residual = LoadedModel(GaussianResidualDenoiser(), residual_meta, Path("residual.safetensors"))
    return PairEnhancer(mean, residual)


def low_dose_batch(batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Positive 'reconstructions' in count units: a bright disc on a dimmer background plus texture."""
    g = torch.Generator().manual_seed(seed)
    c = torch.linspace(-1, 1, RES)
    disc = ((c[None, :] ** 2 + c[:, None] ** 2) < 0.5).float()
    scale = (1 + torch.arange(batch)).view(-1, 1, 1, 1)
    return (5.0 + 20.0 * disc + 3.0 * torch.rand(batch, 1, RES, RES, generator=g)) * scale


# ---- losses the pair is trained with (their optimum is the toy above) -------------------------------------------


def test_weighted_residual_loss_is_one_for_the_exact_denoiser():
    tau = 0.2
    y = torch.rand(256, 1, RES, RES) * 2 - 1
    x = y + tau * torch.randn_like(y)
    loss = ResidualLoss(MeanStub(), tau, EDMLoss(sigma_data=SIGMA_DATA))
    value = loss(GaussianResidualDenoiser(), x, condition=y, class_labels=torch.zeros(256, 2),
                 generator=torch.Generator().manual_seed(0))
    assert float(value.mean()) == pytest.approx(1.0, abs=0.03)
    wrong = ResidualLoss(MeanStub(), 4 * tau, EDMLoss(sigma_data=SIGMA_DATA))
    value = wrong(GaussianResidualDenoiser(), x, condition=y, class_labels=torch.zeros(256, 2),
                  generator=torch.Generator().manual_seed(0))
    assert abs(float(value.mean()) - 1.0) > 0.2


def test_regression_loss_is_the_squared_error_of_the_mean():
    y = torch.rand(8, 1, RES, RES)
    value = RegressionLoss()(MeanStub(), y + 0.5, condition=y, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(value, torch.full_like(value, 0.25))


# ---- the pair ----------------------------------------------------------------------------------------------------


def test_posterior_samples_recover_the_known_gaussian_posterior():
    tau, fraction = 0.1, 0.25
    enhancer = toy_enhancer(tau)
    low = torch.full((2, 1, RES, RES), 3.0)  # flat: y = 1, s = low / f
    settings = enhancer.settings("posterior", samples=64)
    out = enhance_slices(enhancer, low, fraction, settings, keep_samples=True)
    scale = 3.0 / fraction
    assert out.samples.shape == (64, 2, 1, RES, RES)
    assert torch.allclose(out.regression, torch.full_like(low, scale))  # μ = y = 1 ↔ activity s
    assert float(out.std.mean()) == pytest.approx(tau * scale / 2, rel=0.05)
    assert float((out.mean - out.regression).mean()) == pytest.approx(0.0, abs=0.02 * tau * scale)
    assert settings.sampler == "dpmpp_2m" and settings.options["num_steps"] == 24
    assert enhancer.residual_model.net.seen_labels.shape[1] == 2


def test_mean_method_is_one_pass_and_outputs_are_never_negative():
    enhancer = toy_enhancer(tau=2.0)  # a residual wider than the activity: samples would go negative
    low = torch.zeros(1, 1, RES, RES)
    low[..., 4:12, 4:12] = 1.0
    mean_only = enhance_slices(enhancer, low, 0.25, enhancer.settings("mean"))
    assert mean_only.std is None and mean_only.samples is None
    torch.testing.assert_close(mean_only.mean, mean_only.regression)
    out = enhance_slices(enhancer, low, 0.25, enhancer.settings("posterior", samples=8), keep_samples=True)
    assert float(out.samples.min()) >= 0 and float(out.mean.min()) >= 0


def test_settings_are_validated_and_methods_are_offered():
    enhancer = toy_enhancer(0.1)
    assert enhancer.methods == ("mean", "posterior")
    assert enhancer.settings().method == "posterior" and enhancer.settings().samples == 8  # sidecar seeds 0-7
    assert enhancer.settings(warm_start=1.5).options["sigma_max"] == 1.5
    assert enhancer.settings().options["sigma_max"] == 10.0
    with pytest.raises(ValueError, match="method"):
        enhancer.settings("median")
    with pytest.raises(ValueError, match="batch_size"):
        enhancer.settings(batch_size=0)
    mean_only = PairEnhancer(enhancer.regression_model)
    assert mean_only.methods == ("mean",)
    with pytest.raises(ValueError, match="offers mean"):
        mean_only.settings("posterior")


def test_dose_outside_training_warns_once():
    enhancer = toy_enhancer(0.1)
    with pytest.warns(UserWarning, match="fraction 0.9"):
        enhance_slices(enhancer, torch.ones(2, 1, RES, RES), 0.9, enhancer.settings("mean"))
    with pytest.warns(UserWarning, match=r"2 of 2 network inputs at dose levels"):
        enhance_slices(enhancer, torch.full((2, 1, RES, RES), 1e-3), 0.25, enhancer.settings("mean"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enhance_slices(enhancer, torch.full((1, 1, RES, RES), 1e3), 0.25, enhancer.settings("mean"))


def test_count_level_is_the_counts_mlem_preserves():
    from petdiff.physics import poisson_sinogram
    from petdiff.recon import mlem

    projector = Projector(RES)
    phantom = torch.zeros(1, 1, RES, RES)
    phantom[..., 4:12, 5:11] = 2.0
    sino = poisson_sinogram(phantom, projector, counts=5e4, generator=torch.Generator().manual_seed(0))
    recon = mlem(sino, projector, n_iter=20)
    assert float(count_level(recon, projector)) == pytest.approx(float(sino.sum()), rel=1e-3)
    assert float(count_level(recon, projector, counts_per_unit=2.0)) == pytest.approx(2 * float(sino.sum()), rel=1e-3)
    assert float(toy_enhancer(0.1).dose_level(recon)) == pytest.approx(float(sino.sum()), rel=1e-3)


def test_antithetic_pairs_cancel_in_the_mean_but_keep_the_spread():
    tau, fraction = 0.1, 0.25
    enhancer = toy_enhancer(tau)
    low = torch.full((1, 1, RES, RES), 3.0)
    scale = 3.0 / fraction
    paired = enhance_slices(enhancer, low, fraction, enhancer.settings("posterior", samples=8))
    independent = enhance_slices(enhancer, low, fraction, enhancer.settings("posterior", samples=8, antithetic=False))
    # The exact Gaussian denoiser and the ODE solver are linear in the latent: r(−z) = −r(z), so pairs cancel.
    assert torch.allclose(paired.mean, paired.regression, atol=1e-4 * scale)
    assert float((independent.mean - independent.regression).abs().mean()) > 0.01 * tau * scale
    assert float(paired.std.mean()) == pytest.approx(tau * scale / 2, rel=0.3)
    assert not enhancer.settings("posterior", samples=3).antithetic  # odd K: independent samples
    with pytest.raises(ValueError, match="even"):
        enhancer.settings("posterior", samples=3, antithetic=True)


# ---- the single denoiser of older snapshots ---------------------------------------------------------------------


def test_denoiser_uses_snapshot_sampling_steps():
    enhancer = DenoiserEnhancer(stub_model(sampling={"sampler": "edm", "steps": 3, "S_churn": 0}))
    enhance_slices(enhancer, low_dose_batch(1), 0.25, enhancer.settings(samples=2))
    assert enhancer.model.net.calls == 2 * 3 - 1  # Heun: 2N − 1 evaluations for the one batch
    enhancer.model.net.calls = 0
    enhance_slices(enhancer, low_dose_batch(1), 0.25, enhancer.settings(samples=2, steps=4, sampler="euler"))
    assert enhancer.model.net.calls == 4


@pytest.mark.parametrize("normalization", ["quantitative", "reference"])
def test_noise_ignoring_denoiser_returns_input_over_fraction_with_zero_std(normalization):
    # D(x; σ, y) = y: every sample is the condition itself, which maps back to exactly low / f.
    enhancer = DenoiserEnhancer(stub_model(0.0, normalization, data={}))
    low, f = low_dose_batch(3), 0.2
    out = enhance_slices(enhancer, low, f, enhancer.settings(samples=4), keep_samples=True)
    torch.testing.assert_close(out.mean, low / f, rtol=1e-5, atol=0)
    assert out.std.shape == low.shape and float(out.std.max()) <= 1e-5 * float((low / f).max())
    assert out.samples.shape == (4, *low.shape) and out.regression is None


def test_gaussian_denoiser_posterior_mean_and_std_in_full_dose_units():
    # Exact denoiser of x₀ ~ N(y, τ²) in network units: the Heun ODE maps a latent z to y + c·τ·z (c measured on the
    # same solver). In full-dose units the posterior mean is low / f and the std c·τ·s/2 (s = full-dose scale).
    tau, k, f, steps = 0.1, 48, 0.25, 32
    c = float(sample(lambda x, sigma: tau**2 * x / (tau**2 + sigma.view(-1, 1, 1, 1) ** 2),
                     torch.ones(1, 1, 1, 1, dtype=torch.float64), "edm", num_steps=steps)) / tau
    enhancer = DenoiserEnhancer(stub_model(tau))
    low = low_dose_batch(2)
    out = enhance_slices(enhancer, low, f, enhancer.settings(samples=k, steps=steps, batch_size=96))
    s = Normalizer("quantitative").scale(low, torch.full((2,), f)).view(-1, 1, 1, 1)
    sd = c * tau * s / 2
    assert float(((out.mean - low / f).abs() / (sd / math.sqrt(k))).max()) < 6
    c4 = math.sqrt(2 / (k - 1)) * math.exp(math.lgamma(k / 2) - math.lgamma((k - 1) / 2))
    ratio = float((out.std / sd).mean()) / c4
    assert abs(ratio - 1) < 5 / math.sqrt(2 * (k - 1) * RES * RES)


def test_denoiser_is_refused_for_other_roles_and_unconditional_networks(tmp_path):
    model = load_model(save_tiny(tmp_path / "i.safetensors", kind="images"), "cpu")
    with pytest.raises(ValueError, match="mode 'pet'"):
        DenoiserEnhancer(model)
    with pytest.raises(ValueError, match="antithetic"):
        DenoiserEnhancer(stub_model()).settings(samples=2, antithetic=True)
    with pytest.raises(ValueError, match="offers denoiser"):
        DenoiserEnhancer(stub_model()).settings("posterior")
