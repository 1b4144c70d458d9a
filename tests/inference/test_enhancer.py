"""The residual-corrective enhancer on a Gaussian toy problem whose posterior is known in closed form.

Toy: x = y + τ·ε per pixel (network units), so p(x | y) = N(y, τ²). The regression stub returns μ(y) = y,
the exact conditional mean; the residual stub is the exact denoiser of r ~ N(0, σ_d²) (the residual scaled
by σ_d/τ), D(r; σ) = r·σ_d²/(σ² + σ_d²). The posterior samples must then be N(y, τ²), i.e. activity
std τ·s/2 around the regression mean, and the weighted EDM loss has expectation exactly 1 per pixel.
"""

from pathlib import Path

import pytest
import torch

from petdiff.diffusion.loss import EDMLoss
from petdiff.diffusion.residual_loss import RegressionLoss, ResidualLoss
from petdiff.inference.enhancer import Enhancer, count_level
from petdiff.inference.model import LoadedModel
from petdiff.physics import Projector

RES, SIGMA_DATA = 16, 0.5


class MeanStub(torch.nn.Module):
    """μ(y, d) = y."""

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


DATA = {"counts": [1e5, 1e7], "fraction": [0.05, 0.6], "n_iter": 50, "pixel_size_mm": 4.0}


def toy_enhancer(tau: float) -> Enhancer:
    mean = LoadedModel(MeanStub(), {"mode": "pet", "role": "mean", "normalization": "quantitative", "data": DATA},
                       Path("mean.safetensors"))
    residual_meta = {"mode": "pet", "role": "residual", "residual_std": tau, "data": DATA,
                     "sampling": {"sampler": "dpmpp_2m", "steps": 24, "sigma_max": 10.0, "seeds": "0-7"}}
    residual = LoadedModel(GaussianResidualDenoiser(), residual_meta, Path("residual.safetensors"))
    return Enhancer(mean, residual)


def test_weighted_residual_loss_is_one_for_the_exact_denoiser():
    tau = 0.2
    y = torch.rand(256, 1, RES, RES) * 2 - 1
    x = y + tau * torch.randn_like(y)
    loss = ResidualLoss(MeanStub(), tau, EDMLoss(sigma_data=SIGMA_DATA))
    value = loss(GaussianResidualDenoiser(), x, condition=y, class_labels=torch.zeros(256, 2),
                 generator=torch.Generator().manual_seed(0))
    assert float(value.mean()) == pytest.approx(1.0, abs=0.03)
    # A wrong residual scale breaks it: the denoiser then no longer matches the data std.
    wrong = ResidualLoss(MeanStub(), 4 * tau, EDMLoss(sigma_data=SIGMA_DATA))
    value = wrong(GaussianResidualDenoiser(), x, condition=y, class_labels=torch.zeros(256, 2),
                  generator=torch.Generator().manual_seed(0))
    assert abs(float(value.mean()) - 1.0) > 0.2


def test_regression_loss_is_the_squared_error_of_the_mean():
    y = torch.rand(8, 1, RES, RES)
    x = y + 0.5
    value = RegressionLoss()(MeanStub(), x, condition=y, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(value, torch.full_like(value, 0.25))


def test_posterior_samples_recover_the_known_gaussian_posterior():
    tau, fraction = 0.1, 0.25
    enhancer = toy_enhancer(tau)
    low = torch.full((2, 1, RES, RES), 3.0)  # flat: y = 1, s = low / f
    settings = enhancer.settings("posterior", samples=64)
    out = enhancer.enhance(low, fraction, counts=torch.tensor([5e4, 5e4]), settings=settings, keep_samples=True)
    scale = 3.0 / fraction
    assert out.samples.shape == (64, 2, 1, RES, RES)
    assert torch.allclose(out.regression, torch.full_like(low, scale))  # μ = y = 1 ↔ activity s
    assert float(out.std.mean()) == pytest.approx(tau * scale / 2, rel=0.05)
    assert float((out.mean - out.regression).mean()) == pytest.approx(0.0, abs=0.02 * tau * scale)
    assert out.settings.sampler == "dpmpp_2m" and out.settings.options["num_steps"] == 24
    assert enhancer.residual_model.net.seen_labels.shape[1] == 2


def test_mean_method_is_one_pass_and_outputs_are_never_negative():
    enhancer = toy_enhancer(tau=2.0)  # a residual wider than the activity: samples would go negative
    low = torch.zeros(1, 1, RES, RES)
    low[..., 4:12, 4:12] = 1.0
    mean_only = enhancer.enhance(low, 0.25, counts=1e5, settings=enhancer.settings("mean"))
    assert mean_only.std is None and mean_only.samples is None
    out = enhancer.enhance(low, 0.25, counts=1e5, settings=enhancer.settings("posterior", samples=8),
                           keep_samples=True)
    assert float(out.samples.min()) >= 0 and float(out.mean.min()) >= 0


def test_warm_start_lowers_sigma_max_and_settings_are_validated():
    enhancer = toy_enhancer(0.1)
    assert enhancer.settings(warm_start=1.5).options["sigma_max"] == 1.5
    assert enhancer.settings().options["sigma_max"] == 10.0
    with pytest.raises(ValueError, match="warm_start"):
        enhancer.settings(warm_start=-1.0)
    with pytest.raises(ValueError, match="method"):
        enhancer.settings("median")
    with pytest.raises(ValueError, match="seeds"):
        enhancer.settings(samples=4, seeds="0-2")
    mean_only = Enhancer(enhancer.mean_model)
    with pytest.raises(ValueError, match="--method mean"):
        mean_only.settings("posterior")


def test_dose_outside_training_warns():
    enhancer = toy_enhancer(0.1)
    with pytest.warns(UserWarning, match="fraction"):
        enhancer.enhance(torch.ones(1, 1, RES, RES), 0.9, counts=1e5, settings=enhancer.settings("mean"))
    with pytest.warns(UserWarning, match="count level"):
        enhancer.enhance(torch.ones(1, 1, RES, RES), 0.25, counts=10.0, settings=enhancer.settings("mean"))
    # 1e5·0.05 = 5e3 low-dose counts is inside the count range, but not at fraction 0.5 (5e4…5e6).
    with pytest.warns(UserWarning, match=r"count level 5000 at fraction 0\.5"):
        enhancer.enhance(torch.ones(1, 1, RES, RES), 0.5, counts=5e3, settings=enhancer.settings("mean"))


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


def test_antithetic_pairs_cancel_in_the_mean_but_keep_the_spread():
    tau, fraction = 0.1, 0.25
    enhancer = toy_enhancer(tau)
    low = torch.full((1, 1, RES, RES), 3.0)
    scale = 3.0 / fraction
    paired = enhancer.enhance(low, fraction, 5e4, enhancer.settings("posterior", samples=8))
    independent = enhancer.enhance(low, fraction, 5e4, enhancer.settings("posterior", samples=8, antithetic=False))
    assert paired.settings.antithetic and not independent.settings.antithetic
    # The exact Gaussian denoiser and the ODE solver are linear in the latent: r(−z) = −r(z), so pairs cancel.
    assert torch.allclose(paired.mean, paired.regression, atol=1e-4 * scale)
    assert float((independent.mean - independent.regression).abs().mean()) > 0.01 * tau * scale
    assert float(paired.std.mean()) == pytest.approx(tau * scale / 2, rel=0.3)
    assert not enhancer.settings("posterior", samples=3).antithetic  # odd K: independent samples
    with pytest.raises(ValueError, match="even"):
        enhancer.settings("posterior", samples=3, antithetic=True)
