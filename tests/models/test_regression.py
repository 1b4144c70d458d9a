import pytest
import torch

from petdiff.models import build_network
from petdiff.models.presets import network_config
from petdiff.models.regression import RegressionUNet, inverse_softplus

TINY = {"img_resolution": [16, 16], "model_channels": 8, "channel_mult": [1, 2], "num_blocks": 1,
        "attn_stages": [], "dropout": 0.0}


def tiny_mean(seed: int = 0) -> RegressionUNet:
    return build_network(network_config("pet_mean_64", **TINY), seed=seed)


def labels(batch: int, log_counts: float = 0.0, fraction: float = 0.25) -> torch.Tensor:
    return torch.tensor([[log_counts, fraction]]).expand(batch, 2)


def test_inverse_softplus_inverts_softplus():
    z = torch.tensor([1e-4, 0.1, 1.0, 5.0, 30.0])
    assert torch.allclose(torch.nn.functional.softplus(inverse_softplus(z)), z, rtol=1e-5)


def test_starts_as_the_identity_above_the_floor():
    net = tiny_mean()
    y = torch.rand(3, 1, 16, 16) * 1.5 - 0.9  # activity > 0
    assert torch.allclose(net(y, class_labels=labels(3)), y, atol=1e-5)


def test_output_is_an_activity_whatever_the_weights():
    net = tiny_mean()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 3.0)  # a wildly wrong network still cannot produce negative activity
    y = torch.rand(4, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        out = net(y, class_labels=labels(4))
    assert float(out.min()) >= -1.0 and bool(torch.isfinite(out).all())


def test_dose_label_changes_the_output():
    net = tiny_mean()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))  # EDM's zero-initialised layers would hide the label at init
    y = torch.rand(2, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        low, high = net(y, class_labels=labels(2, -1.0)), net(y, class_labels=labels(2, 1.0))
    assert float((low - high).abs().max()) > 1e-3


def test_rebuilds_from_its_config_and_refuses_other_roles():
    net = tiny_mean(seed=3)
    clone = build_network(net.config)
    assert isinstance(clone, RegressionUNet) and clone.config == net.config
    clone.load_state_dict(net.state_dict())
    y = torch.rand(1, 1, 16, 16)
    assert torch.equal(clone(y, class_labels=labels(1)), net(y, class_labels=labels(1)))
    with pytest.raises(ValueError, match="role"):
        build_network({**net.config, "role": "critic"})


def test_any_size_divisible_by_the_downsampling_and_clear_errors():
    net = tiny_mean()
    assert net(torch.zeros(1, 1, 24, 40), class_labels=labels(1)).shape == (1, 1, 24, 40)
    with pytest.raises(ValueError, match="divisible by 2"):
        net(torch.zeros(1, 1, 15, 16), class_labels=labels(1))
    with pytest.raises(ValueError, match="dose labels"):
        net(torch.zeros(1, 1, 16, 16))
