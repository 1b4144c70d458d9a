import pytest
import torch

from petdiff.models import build_network
from petdiff.models.count_level import CountLevelLoss, CountLevelNet


def test_count_level_net_reads_any_tile_size_and_rebuilds_from_its_config():
    net = build_network("pet_count_level_scan", seed=0)
    assert isinstance(net, CountLevelNet)
    x = torch.randn(2, 3, 96, 128)
    assert net(x).shape == (2, 1)
    twin = build_network(net.config, seed=0)
    assert torch.equal(twin(x), net(x))


def test_count_level_net_output_depends_on_the_noise_in_the_image():
    # Two inputs that differ only in noise amplitude must be told apart by an untrained net's features too:
    # the output is a function of the image, not a constant.
    net = build_network("pet_count_level_scan", seed=1)
    g = torch.Generator().manual_seed(0)
    smooth = torch.zeros(1, 3, 64, 64)
    noisy = smooth + 0.5 * torch.randn(1, 3, 64, 64, generator=g)
    assert not torch.allclose(net(smooth), net(noisy))


def test_count_level_loss_is_the_squared_label_error_per_sample():
    net = build_network("pet_count_level_scan", seed=0)
    # Flat tiles are unchanged by the dihedral augmentation, so a label off by one costs exactly 1.
    condition = torch.linspace(-1, 1, 4).view(4, 1, 1, 1).expand(4, 3, 64, 64).contiguous()
    with torch.no_grad():
        labels = net(condition)
    loss = CountLevelLoss()(net, None, condition, labels + 1.0, generator=0)
    assert loss.shape == (4, 1, 1, 1)
    assert torch.allclose(loss.flatten(), torch.ones(4), atol=1e-4)


def test_count_level_needs_labels_and_an_odd_channel_count():
    net = build_network("pet_count_level_scan")
    with pytest.raises(ValueError, match="class_labels"):
        CountLevelLoss()(net, None, torch.randn(1, 3, 64, 64), None)
    with pytest.raises(ValueError, match="cond_channels"):
        CountLevelNet(cond_channels=2)
