"""Denoiser callables and classifier-free guidance: D_u + w (D_c − D_u), one batched forward."""

from __future__ import annotations

import pytest
import torch

from petdiff.diffusion.guidance import denoiser, guided_denoiser
from petdiff.models import EDMPrecond


def class_net(seed: int = 0) -> EDMPrecond:
    net = EDMPrecond(8, 1, cond_channels=1, label_dim=3, model_channels=8, channel_mult=[1, 2], num_blocks=1,
                     attn_stages=[], dropout=0.0)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():  # non-zero everywhere so that D depends on the label
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return net.eval()


class Counting(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.label_dim, self.batches = net, net.label_dim, []

    def forward(self, x, sigma, **kwargs):
        self.batches.append(x.shape[0])
        return self.net(x, sigma, **kwargs)


@pytest.fixture
def setup():
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(2, 1, 8, 8, generator=gen), torch.randn(2, 1, 8, 8, generator=gen)
    labels = torch.eye(3)[[0, 2]]
    sigma = torch.tensor([0.5, 3.0])
    return class_net(), x, y, labels, sigma


def test_plain_denoiser_is_the_network(setup):
    net, x, y, labels, sigma = setup
    torch.testing.assert_close(denoiser(net, condition=y, class_labels=labels)(x, sigma),
                               net(x, sigma, condition=y, class_labels=labels))


def test_w0_is_unconditional_and_w1_is_conditional(setup):
    net, x, y, labels, sigma = setup
    d_u = net(x, sigma, condition=y, class_labels=torch.zeros_like(labels))
    d_c = net(x, sigma, condition=y, class_labels=labels)
    assert not torch.allclose(d_u, d_c)
    torch.testing.assert_close(guided_denoiser(net, labels, guidance=0.0, condition=y)(x, sigma), d_u)
    torch.testing.assert_close(guided_denoiser(net, labels, guidance=1.0, condition=y)(x, sigma), d_c)


@pytest.mark.parametrize("w", [2.0, 0.3, -0.5])
def test_guidance_formula_in_one_batched_forward(setup, w):
    net, x, y, labels, sigma = setup
    d_u = net(x, sigma, condition=y, class_labels=torch.zeros_like(labels))
    d_c = net(x, sigma, condition=y, class_labels=labels)
    counting = Counting(net)
    out = guided_denoiser(counting, labels, guidance=w, condition=y)(x, sigma)
    torch.testing.assert_close(out, d_u + w * (d_c - d_u), rtol=1e-5, atol=1e-5)
    assert counting.batches == [4]
    # A scalar σ and a single broadcast label row work too.
    out = guided_denoiser(net, labels[:1], guidance=w, condition=y)(x, 0.5)
    ref_u = net(x, 0.5, condition=y, class_labels=torch.zeros(1, 3))
    ref_c = net(x, 0.5, condition=y, class_labels=labels[:1])
    torch.testing.assert_close(out, ref_u + w * (ref_c - ref_u), rtol=1e-5, atol=1e-5)


def test_bad_inputs_raise_value_error(setup):
    net, x, y, labels, sigma = setup
    plain = EDMPrecond(8, 1, model_channels=8, channel_mult=[1, 2], num_blocks=1, attn_stages=[])
    with pytest.raises(ValueError, match="label_dim"):
        guided_denoiser(plain, labels, guidance=2.0)
    with pytest.raises(ValueError, match="class_labels"):
        guided_denoiser(net, torch.ones(2, 4), guidance=2.0)
    with pytest.raises(ValueError, match="class_labels"):
        guided_denoiser(net, torch.ones(3, 3), guidance=2.0, condition=y)(x, sigma)
