"""ADM UNet: parameter count of the reference network, init, blocks against closed forms, shapes, validation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from petdiff.models import DhariwalUNet, SelfAttention, UNetBlock, build_network, count_parameters
from petdiff.models.layers import PositionalEmbedding, conv2d, downsample, dropout, kaiming_uniform_, upsample

REFERENCE_PARAMS = 57.09e6


def tiny_unet(**overrides) -> DhariwalUNet:
    kwargs = dict(img_resolution=16, in_channels=2, out_channels=1, model_channels=8, channel_mult=[1, 2],
                  num_blocks=1, attn_stages=[1], dropout=0.0)
    kwargs.update(overrides)
    return DhariwalUNet(**kwargs)


def randomize_(module: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """Replace every parameter by N(0, 0.1²) so that zero-initialised branches contribute."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
    return module


def test_reference_parameter_count_within_one_percent():
    net = build_network("pet_reference_64")
    n = count_parameters(net)
    assert abs(n - REFERENCE_PARAMS) / REFERENCE_PARAMS < 0.01, n


def test_attn_stages_are_stage_indices():
    # Reference: 64×64, mult [1,2,2,2], attn_stages [2,3] → attention exactly at 16×16 and 8×8 (+ bottleneck).
    unet = build_network("pet_reference_64").model
    with_attn = {name.split("_")[0] for name, b in [*unet.enc.items(), *unet.dec.items()]
                 if isinstance(b, UNetBlock) and b.attn is not None}
    assert with_attn == {"16x16", "8x8"}
    assert unet.dec["8x8_in0"].attn is not None and unet.dec["8x8_in1"].attn is None
    assert unet.enc["16x16_down"].attn is None  # down-sampling blocks never carry attention
    assert unet.dec["16x16_block0"].attn.num_heads == 256 // 64


def test_output_is_exactly_zero_at_init():
    unet = tiny_unet(label_dim=3, augment_dim=9)
    x = torch.randn(2, 2, 16, 16)
    out = unet(x, torch.randn(2), class_labels=torch.eye(3)[:2], augment_labels=torch.randn(2, 9))
    assert out.shape == (2, 1, 16, 16)
    assert torch.count_nonzero(out) == 0


def test_kaiming_uniform_bound_and_variance():
    # U(-b, b), b = gain·√(3/fan_in): gain √(1/3) → b = 1/√fan_in, variance b²/3.
    fan_in, n = 50, 200_000
    w = kaiming_uniform_(torch.empty(n), fan_in, math.sqrt(1 / 3))
    b = 1 / math.sqrt(fan_in)
    assert w.abs().max() <= b
    # Var of the sample variance of U(-b, b): (μ4 − σ⁴)/n with μ4 = b⁴/5, σ² = b²/3.
    se = math.sqrt((b**4 / 5 - b**4 / 9) / n)
    assert abs(w.var().item() - b**2 / 3) < 5 * se


def test_positional_embedding_closed_form():
    emb = PositionalEmbedding(8, max_positions=10000)
    c = torch.tensor([0.0, 0.7, -2.5])
    freqs = torch.tensor([10000.0 ** (-i / 4) for i in range(4)])
    expected = torch.cat([torch.cos(c[:, None] * freqs), torch.sin(c[:, None] * freqs)], dim=1)
    torch.testing.assert_close(emb(c), expected)


def test_resampling_matches_box_filter():
    x = torch.arange(32.0).reshape(1, 2, 4, 4)
    down = downsample(x)
    torch.testing.assert_close(down[0, 0, 0, 0], (x[0, 0, 0, 0] + x[0, 0, 0, 1] + x[0, 0, 1, 0] + x[0, 0, 1, 1]) / 4)
    up = upsample(down)
    assert up.shape == x.shape
    torch.testing.assert_close(up[0, 1, 2:4, 2:4], down[0, 1, 1, 1].expand(2, 2))


def test_attention_matches_naive_softmax():
    gen = torch.Generator().manual_seed(1)
    attn = randomize_(SelfAttention(8, num_heads=2), gen)
    x = torch.randn(2, 8, 4, 4, generator=gen)
    qkv = attn.qkv(attn.norm2(x)).reshape(2, 2, 4, 3, 16)  # (B, heads, d, q/k/v, pixels)
    q, k, v = qkv.unbind(3)
    w = torch.softmax(torch.einsum("bhdq,bhdk->bhqk", q, k) / math.sqrt(4), dim=-1)
    a = torch.einsum("bhqk,bhdk->bhdq", w, v).reshape(2, 8, 4, 4)
    torch.testing.assert_close(attn(x), x + attn.proj(a), rtol=1e-5, atol=1e-5)


def test_block_is_identity_at_init_and_resamples():
    emb = torch.randn(3, 16)
    x = torch.randn(3, 8, 8, 8)
    torch.testing.assert_close(UNetBlock(8, 8, 16, attention=True)(x, emb), x)
    torch.testing.assert_close(UNetBlock(8, 8, 16, down=True)(x, emb), downsample(x))
    torch.testing.assert_close(UNetBlock(8, 8, 16, up=True)(x, emb), upsample(x))
    assert UNetBlock(8, 16, 16)(x, emb).shape == (3, 16, 8, 8)


def test_adaptive_group_norm_uses_embedding():
    # h = SiLU(GN(conv0(·))·(1 + scale) + shift): with conv1 = identity-like, changing emb must change the output.
    gen = torch.Generator().manual_seed(2)
    block = randomize_(UNetBlock(8, 8, 16), gen).eval()
    x = torch.randn(1, 8, 8, 8, generator=gen)
    e1, e2 = torch.randn(1, 16, generator=gen), torch.randn(1, 16, generator=gen)
    assert not torch.allclose(block(x, e1), block(x, e2))


@pytest.mark.parametrize("overrides, shape", [
    (dict(), (2, 2, 16, 16)),
    (dict(img_resolution=(16, 32), channel_mult=[1, 2, 2], attn_stages=[2]), (2, 2, 16, 32)),
    (dict(img_resolution=8, in_channels=3, out_channels=3, label_dim=5, augment_dim=9, attn_stages=[]),
     (2, 3, 8, 8)),
])
def test_shapes_and_gradients(overrides, shape):
    gen = torch.Generator().manual_seed(3)
    unet = randomize_(tiny_unet(**overrides), gen)
    x = torch.randn(*shape, generator=gen, requires_grad=True)
    labels = torch.eye(5)[:2] if unet.label_dim else None
    aug = torch.randn(2, 9) if unet.augment_dim else None
    out = unet(x, torch.randn(2, generator=gen), class_labels=labels, augment_labels=aug)
    assert out.shape == (shape[0], unet.out_channels, *shape[2:])
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_channels_last_matches_contiguous():
    gen = torch.Generator().manual_seed(4)
    unet = randomize_(tiny_unet(), gen).eval()
    x = torch.randn(2, 2, 16, 16, generator=gen)
    c = torch.randn(2, generator=gen)
    ref = unet(x, c)
    out = unet.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last), c)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_label_dropout_drops_whole_labels_at_the_expected_rate():
    gen = torch.Generator().manual_seed(5)
    unet = randomize_(tiny_unet(label_dim=3, label_dropout=0.3), gen)
    n = 2000
    labels = torch.eye(3)[torch.randint(3, (n,), generator=gen)]
    noise = torch.zeros(n)
    with torch.no_grad():
        unet.eval()
        kept, dropped = unet.embedding(noise, labels, None), unet.embedding(noise, torch.zeros_like(labels), None)
        unet.train()
        emb = unet.embedding(noise, labels, None)
    is_kept = (emb - kept).abs().amax(1) < 1e-6
    is_dropped = (emb - dropped).abs().amax(1) < 1e-6
    assert bool((is_kept ^ is_dropped).all())  # each row is exactly one of the two
    rate = is_dropped.float().mean().item()
    assert abs(rate - 0.3) < 5 * math.sqrt(0.3 * 0.7 / n)


def test_dropout_is_inverted_bernoulli():
    n, p = 200_000, 0.25
    x = torch.ones(n, requires_grad=True)
    y = dropout(x, p, training=True)
    zero = y == 0
    assert abs(zero.float().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)
    torch.testing.assert_close(y[~zero], torch.full_like(y[~zero], 1 / (1 - p)))  # E[y] = x
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())  # ∂y/∂x = m/(1 − p)
    assert dropout(x, p, training=False) is x and dropout(x, 0.0, training=True) is x


def test_zero_gain_layers_are_zero():
    layer = conv2d(4, 5, 3, gain=0.0)
    assert torch.count_nonzero(layer.weight) == 0 and torch.count_nonzero(layer.bias) == 0
    assert F.conv2d(torch.ones(1, 4, 3, 3), layer.weight, layer.bias, padding=1).abs().max() == 0


@pytest.mark.parametrize("overrides, field", [
    (dict(img_resolution=12, channel_mult=[1, 2, 2, 2]), "img_resolution"),
    (dict(attn_stages=[2]), "attn_stages"),
    (dict(dropout=1.0), "dropout"),
    (dict(channel_mult=[]), "channel_mult"),
    (dict(model_channels=0), "model_channels"),
    (dict(img_resolution=(16, 16, 1)), "img_resolution"),
])
def test_bad_hyperparameters_raise_value_error(overrides, field):
    with pytest.raises(ValueError, match=field):
        tiny_unet(**overrides)
