"""EDM preconditioning: closed-form coefficients, the unit-variance training target, plumbing, config round trip."""

from __future__ import annotations

import json
import math

import pytest
import torch

from petdiff.models import EDMPrecond, build_network, count_parameters, edm_coefficients, network_config

SIGMA_DATA = 0.5


def tiny_precond(**overrides) -> EDMPrecond:
    kwargs = dict(img_resolution=16, img_channels=1, cond_channels=1, model_channels=8, channel_mult=[1, 2],
                  num_blocks=1, attn_stages=[1], dropout=0.0)
    kwargs.update(overrides)
    return EDMPrecond(**kwargs)


def randomize_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return module


class RecordingUNet(torch.nn.Module):
    """Stands in for the UNet: records its inputs and returns a constant F."""

    def __init__(self, value: float, augment_dim: int = 0):
        super().__init__()
        self.value, self.augment_dim, self.calls = value, augment_dim, []

    def forward(self, x, noise_labels, class_labels=None, augment_labels=None):
        self.calls.append(dict(x=x, noise_labels=noise_labels, class_labels=class_labels,
                               augment_labels=augment_labels))
        return torch.full((x.shape[0], 1, *x.shape[2:]), self.value)


SIGMAS = torch.tensor([0.002, 0.05, 0.5, 1.0, 7.0, 80.0], dtype=torch.float64)


def test_coefficients_closed_form_and_identities():
    c = edm_coefficients(SIGMAS, SIGMA_DATA)
    s, d = SIGMAS, SIGMA_DATA
    torch.testing.assert_close(c.c_skip, d**2 / (s**2 + d**2))
    torch.testing.assert_close(c.c_out, s * d / torch.sqrt(s**2 + d**2))
    torch.testing.assert_close(c.c_in, 1 / torch.sqrt(s**2 + d**2))
    torch.testing.assert_close(c.c_noise, torch.log(s) / 4)
    # c_skip + c_out²/σ_d² = 1 and c_in²(σ² + σ_d²) = 1.
    torch.testing.assert_close(c.c_skip + c.c_out**2 / d**2, torch.ones_like(s))
    torch.testing.assert_close(c.c_in**2 * (s**2 + d**2), torch.ones_like(s))
    assert edm_coefficients(torch.tensor(1.0, dtype=torch.float64), d).c_noise == 0


@pytest.mark.parametrize("sigma", [0.02, 0.5, 3.0, 40.0])
def test_effective_target_and_network_input_have_unit_variance(sigma):
    # x = x₀ + σn with std(x₀) = σ_d: Var[(x₀ − c_skip x)/c_out] = 1 and Var[c_in x] = 1 (EDM's design goals).
    n = 200_000
    gen = torch.Generator().manual_seed(7)
    x0 = torch.randn(n, generator=gen, dtype=torch.float64) * SIGMA_DATA
    x = x0 + sigma * torch.randn(n, generator=gen, dtype=torch.float64)
    c = edm_coefficients(torch.tensor(sigma, dtype=torch.float64), SIGMA_DATA)
    target = (x0 - c.c_skip * x) / c.c_out
    tol = 5 * math.sqrt(2 / n)  # std of a Gaussian sample variance around 1
    assert abs(target.var().item() - 1) < tol
    assert abs((c.c_in * x).var().item() - 1) < tol


def test_denoiser_tends_to_identity_as_sigma_vanishes():
    net = randomize_(tiny_precond(), seed=1).eval()
    x, y = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16)
    errors = [(net(x, s, condition=y) - x).abs().max().item() for s in (1e-2, 1e-4, 1e-6)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-4


def test_zero_initialised_output_gives_c_skip_times_x():
    net = tiny_precond(label_dim=3, augment_dim=9)
    x, y = torch.randn(3, 1, 16, 16), torch.randn(3, 1, 16, 16)
    sigma = torch.tensor([0.1, 1.0, 10.0])
    d = net(x, sigma, condition=y, class_labels=torch.eye(3), augment_labels=torch.randn(3, 9))
    torch.testing.assert_close(d, edm_coefficients(sigma, SIGMA_DATA).c_skip.reshape(3, 1, 1, 1) * x)


def test_forward_feeds_scaled_noisy_image_and_condition():
    net = tiny_precond()
    net.model = RecordingUNet(value=2.0)
    x, y = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16)
    sigma = torch.tensor([0.3, 4.0])
    d = net(x, sigma, condition=y)
    c = edm_coefficients(sigma.reshape(2, 1, 1, 1), SIGMA_DATA)
    call = net.model.calls[0]
    torch.testing.assert_close(call["x"][:, :1], c.c_in * x)
    torch.testing.assert_close(call["x"][:, 1:], y / SIGMA_DATA)  # condition: not noised, scaled by 1/σ_d
    torch.testing.assert_close(call["noise_labels"], sigma.log() / 4)
    torch.testing.assert_close(d, c.c_skip * x + c.c_out * 2.0)


def test_sigma_shapes_are_equivalent():
    net = randomize_(tiny_precond(), seed=2).eval()
    x, y = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16)
    ref = net(x, torch.tensor([0.7, 0.7]), condition=y)
    for sigma in (0.7, torch.tensor(0.7), torch.full((2, 1, 1, 1), 0.7), torch.full((1,), 0.7)):
        torch.testing.assert_close(net(x, sigma, condition=y), ref)


@pytest.mark.parametrize("call, field", [
    (lambda net, x, y: net(x, torch.ones(3), condition=y), "sigma"),
    (lambda net, x, y: net(x, torch.ones(2, 2), condition=y), "sigma"),
    (lambda net, x, y: net(x, 1.0, condition=torch.randn(2, 2, 16, 16)), "condition"),
    (lambda net, x, y: net(x, 1.0, condition=torch.randn(1, 1, 16, 16)), "condition"),
    (lambda net, x, y: net(x, 1.0, condition=torch.randn(2, 1, 8, 8)), "condition"),
    (lambda net, x, y: net(x, 1.0), "condition"),
    (lambda net, x, y: net(torch.randn(2, 2, 16, 16), 1.0, condition=y), "x"),
    (lambda net, x, y: net(torch.randn(2, 1, 8, 8), 1.0, condition=y[..., :8, :8]), "x"),
    (lambda net, x, y: net(x, 1.0, condition=y, class_labels=torch.ones(2, 3)), "class_labels"),
    (lambda net, x, y: net(x, 1.0, condition=y, augment_labels=torch.ones(2, 9)), "augment_labels"),
])
def test_bad_inputs_raise_value_error(call, field):
    net = tiny_precond()
    x, y = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16)
    with pytest.raises(ValueError, match=field):
        call(net, x, y)


def test_unconditional_network_rejects_a_condition():
    net = tiny_precond(cond_channels=0)
    x = torch.randn(2, 1, 16, 16)
    assert net(x, 1.0).shape == x.shape
    with pytest.raises(ValueError, match="condition"):
        net(x, 1.0, condition=x)


def test_wrong_label_shape_for_class_conditional_network():
    net = tiny_precond(label_dim=3)
    x, y = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16)
    assert net(x, 1.0, condition=y, class_labels=torch.eye(3)[:1]).shape == x.shape  # (1, dim) broadcasts
    with pytest.raises(ValueError, match="class_labels"):
        net(x, 1.0, condition=y, class_labels=torch.ones(2, 4))


def test_config_round_trip_rebuilds_identical_model():
    net = build_network("pet_cpu_64", seed=3, label_dim=2, label_dropout=0.1)
    config = json.loads(json.dumps(net.config, allow_nan=False))
    assert config["label_dim"] == 2 and config["label_dropout"] == 0.1  # the overrides are recorded
    clone = build_network(config, seed=3)
    a, b = net.state_dict(), clone.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)
    other = build_network(config, seed=4)
    assert not torch.equal(other.model.map_layer0.weight, net.model.map_layer0.weight)


def test_presets_and_unknown_fields():
    # The count is deterministic: any change to the preset or the UNet's blocks shows up here.
    assert count_parameters(build_network("pet_cpu_64")) == 2_776_129
    with pytest.raises(ValueError, match="attn_resolutions"):
        network_config("pet_cpu_64", attn_resolutions=[16])
    with pytest.raises(ValueError, match="preset"):
        build_network("no_such_preset")
    with pytest.raises(ValueError, match="unet_kwargs"):
        EDMPrecond(16, 1, bogus=1)
    with pytest.raises(ValueError, match="img_resolution"):
        build_network({"img_channels": 1})
    with pytest.raises(ValueError, match="sigma_max"):
        build_network("pet_cpu_64", sigma_max="large")


def test_sigma_range_is_kept():
    net = tiny_precond(sigma_min=0.002, sigma_max=80)
    assert (net.sigma_min, net.sigma_max) == (0.002, 80.0)
    assert tiny_precond().config["sigma_max"] == "inf"


def test_channels_last_option_gives_the_same_result():
    net = randomize_(tiny_precond(), seed=6).eval()
    plain = build_network({**net.config, "channels_last": False}).eval()
    plain.load_state_dict(net.state_dict())
    x, y = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(net(x, 0.8, condition=y), plain(x, 0.8, condition=y), rtol=1e-4, atol=1e-5)
    assert all(t.is_contiguous() for t in net.state_dict().values())  # savable with safetensors as is


def test_bfloat16_autocast_is_close_and_returns_float32():
    net = randomize_(tiny_precond(), seed=5).eval()
    amp = build_network({**net.config, "use_amp": True})
    amp.load_state_dict(net.state_dict())
    x, y = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16)
    ref, out = net(x, 2.0, condition=y), amp.eval()(x, 2.0, condition=y)
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()  # bf16 has an 8-bit mantissa
