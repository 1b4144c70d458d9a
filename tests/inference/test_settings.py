"""Sampler settings: the snapshot's `sampling` section merged with explicit choices; seeds and warm starts."""

import pytest

from petdiff.inference.settings import FALLBACK_SAMPLING, apply_warm_start, resolve_seeds, sampling_settings
from tests.conftest import stub_model


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


def test_seeds_default_to_0_to_k_and_must_number_k():
    assert resolve_seeds(None, None, 4) == (4, (0, 1, 2, 3))
    assert resolve_seeds(3, "4,9,2", 8) == (3, (4, 9, 2))
    with pytest.raises(ValueError, match="seeds"):
        resolve_seeds(4, [1, 2], 8)
    with pytest.raises(ValueError, match="samples"):
        resolve_seeds(0, None, 8)


def test_warm_start_lowers_sigma_max_only():
    opts = {"sigma_max": 10.0}
    apply_warm_start(opts, 1.0)
    assert opts["sigma_max"] == 1.0
    apply_warm_start(opts, 50.0)
    assert opts["sigma_max"] == 1.0
    with pytest.raises(ValueError, match="warm_start"):
        apply_warm_start(opts, -1.0)


def test_precision_resolves_once_and_is_restored_after_a_run():
    import torch

    from petdiff.inference.settings import network_precision, resolve_precision
    from petdiff.models import build_network, network_config

    assert resolve_precision("float32", torch.device("cpu")) == "float32"
    assert resolve_precision("auto", torch.device("cpu")) in ("float32", "bfloat16")
    assert resolve_precision("auto", torch.device("meta")) == "float32"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp8", torch.device("cpu"))
    net = build_network(network_config("pet_residual_scan", model_channels=8, channel_mult=[1, 1]), seed=0)
    with network_precision([net], "bfloat16"):
        assert net.use_amp and net.amp_dtype == "bfloat16"
    assert not net.use_amp
    with network_precision([net, object()], "float32"):
        assert not net.use_amp
