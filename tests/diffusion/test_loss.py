"""EDM loss: weight formula, σ distribution, hand-computed values on trivial networks, the conditional split."""

from __future__ import annotations

import math

import pytest
import torch

from petdiff.diffusion.loss import EDMLoss
from petdiff.models import AugmentPipe, EDMPrecond, edm_coefficients

SIGMA_DATA = 0.5


class Recorder:
    """A trivial 'network' D(x; σ) = a·x that records what it was called with."""

    def __init__(self, a: float):
        self.a, self.calls = a, []

    def __call__(self, x, sigma, **kwargs):
        self.calls.append(dict(x=x, sigma=sigma, **kwargs))
        return self.a * x


def draws(seed, batch, shape):
    """Replay the loss's random stream: σ first, then the noise."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn((batch, 1, 1, 1), generator=gen)
    n = torch.randn(shape, generator=gen)
    return (z * 1.2 - 1.2).exp(), n


def test_weight_times_c_out_squared_is_one():
    sigma = torch.logspace(-3, 2, 11, dtype=torch.float64)
    loss = EDMLoss(sigma_data=SIGMA_DATA)
    torch.testing.assert_close(loss.weight(sigma), (sigma**2 + 0.25) / (sigma * 0.5) ** 2)
    torch.testing.assert_close(loss.weight(sigma) * edm_coefficients(sigma, SIGMA_DATA).c_out ** 2,
                               torch.ones_like(sigma))


def test_log_sigma_is_normal_with_p_mean_p_std():
    n = 20_000
    log_sigma = EDMLoss(P_mean=-1.2, P_std=1.2).sample_sigma(n, torch.device("cpu"), generator=0).log().flatten()
    assert abs(log_sigma.mean().item() + 1.2) < 5 * 1.2 / math.sqrt(n)
    assert abs(log_sigma.std().item() - 1.2) < 5 * 1.2 / math.sqrt(2 * n)


@pytest.mark.parametrize("a", [0.0, 1.0, 0.5])
def test_loss_on_trivial_network_equals_hand_formula(a):
    x0 = torch.randn(3, 1, 8, 8)
    net = Recorder(a)
    loss = EDMLoss()(net, x0, generator=11)
    sigma, n = draws(11, 3, x0.shape)
    weight = (sigma**2 + 0.25) / (sigma * 0.5) ** 2
    expected = weight * (a * (x0 + sigma * n) - x0) ** 2
    torch.testing.assert_close(loss, expected)
    assert "condition" not in net.calls[0]  # unconditional when condition is None


def test_conditional_noises_only_the_full_dose_image():
    x0, y = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    net = Recorder(1.0)
    EDMLoss()(net, x0, condition=y, generator=3)
    sigma, n = draws(3, 2, x0.shape)
    call = net.calls[0]
    assert torch.equal(call["condition"], y)
    torch.testing.assert_close(call["x"], x0 + sigma * n)
    torch.testing.assert_close(call["sigma"], sigma)


def test_same_augmentation_for_image_and_condition():
    x0 = torch.rand(8, 1, 16, 16)
    net = Recorder(0.0)
    terms = EDMLoss().terms(net, x0, condition=3 * x0, augment_pipe=AugmentPipe(p=1.0), generator=4)
    assert terms.augment_labels.shape == (8, 9) and torch.count_nonzero(terms.augment_labels[:, 2]) == 8
    assert not torch.allclose(terms.target, x0)  # augmented …
    torch.testing.assert_close(terms.condition, 3 * terms.target, rtol=1e-5, atol=1e-5)  # … identically
    assert torch.equal(net.calls[0]["augment_labels"], terms.augment_labels)
    torch.testing.assert_close(terms.loss, terms.weight * terms.target**2)


def test_expected_loss_at_init_is_one_for_data_of_std_sigma_data():
    # Zero-initialised F: D = c_skip·x, so λ(σ)(D − x₀)² = Z² with Z ~ N(0, 1) for every σ when std(x₀) = σ_d.
    net = EDMPrecond(16, 1, cond_channels=1, model_channels=8, channel_mult=[1, 2], num_blocks=1, attn_stages=[])
    gen = torch.Generator().manual_seed(5)
    x0 = torch.randn(16, 1, 16, 16, generator=gen) * SIGMA_DATA
    with torch.no_grad():
        loss = EDMLoss()(net, x0, condition=torch.randn(16, 1, 16, 16, generator=gen), generator=gen)
    assert abs(loss.mean().item() - 1) < 5 * math.sqrt(2 / loss.numel())


def test_generator_makes_the_loss_reproducible():
    x0 = torch.randn(2, 1, 8, 8)
    net = Recorder(0.5)
    a, b = EDMLoss()(net, x0, generator=9), EDMLoss()(net, x0, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b)


def test_bad_inputs_raise_value_error():
    loss = EDMLoss()
    with pytest.raises(ValueError, match="images"):
        loss(Recorder(1.0), torch.randn(8, 8))
    with pytest.raises(ValueError, match="condition"):
        loss(Recorder(1.0), torch.randn(2, 1, 8, 8), condition=torch.randn(3, 1, 8, 8))
    with pytest.raises(ValueError, match="P_std"):
        EDMLoss(P_std=0)
