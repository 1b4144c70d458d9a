from __future__ import annotations

import math

import pytest
import torch

from petdiff.training.ema import EMA, ema_beta


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.register_buffer("scale", torch.ones(2))


def test_beta_closed_form():
    # Without ramp-up: the half-life is halflife_kimg·1000 images, so β^(halflife/batch) = 1/2.
    assert ema_beta(10_000, 32, 15, None) == pytest.approx(0.5 ** (32 / 15_000), rel=1e-15)
    assert ema_beta(10_000, 32, 15, None) ** (15_000 / 32) == pytest.approx(0.5, rel=1e-12)
    # Ramp-up: ema_nimg = min(15000, 0.05·cur_nimg).
    assert ema_beta(100_000, 32, 15, 0.05) == pytest.approx(0.5 ** (32 / 5_000), rel=1e-15)
    assert ema_beta(1_000_000, 32, 15, 0.05) == pytest.approx(0.5 ** (32 / 15_000), rel=1e-15)
    assert ema_beta(0, 32, 15, 0.05) == 0.0  # first step copies the weights


def test_beta_rejects_bad_input():
    with pytest.raises(ValueError, match="batch_size"):
        ema_beta(0, 0, 15)
    with pytest.raises(ValueError, match="cur_nimg"):
        ema_beta(-1, 8, 15)


def test_halves_the_distance_to_a_constant_after_one_halflife():
    net = Tiny()
    ema = EMA(net, halflife_kimg=0.064, rampup_ratio=None)  # 64 images = 8 steps of batch 8
    start = ema.module.lin.weight.clone()
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(3.0)
    for step in range(8):
        ema.update(net, cur_nimg=8 * (step + 1), batch_size=8)
    expected = 3.0 + (start - 3.0) * 0.5
    torch.testing.assert_close(ema.module.lin.weight, expected, rtol=1e-6, atol=1e-6)
    for _ in range(400):
        ema.update(net, cur_nimg=1000, batch_size=8)
    # After 408 steps the exact distance is 0.5^51 of the start; float32 lerp rounding can stall the iterate a
    # few ulps away from the constant, so allow 8 ulps of 3.0.
    ulp = torch.finfo(torch.float32).eps * 3.0
    torch.testing.assert_close(ema.module.lin.weight, torch.full_like(start, 3.0), rtol=0, atol=8 * ulp)


def test_equals_closed_form_weighted_average_with_rampup():
    # ema_T = Π_t β_t · ema_0 + Σ_t (1 − β_t) Π_{s>t} β_s · w_t on a short sequence of weights.
    torch.manual_seed(1)
    net = Tiny()
    ema = EMA(net, halflife_kimg=0.05, rampup_ratio=0.5)
    ema_0 = ema.module.lin.weight.detach().double().clone()
    batch, weights, betas = 4, [], []
    for step in range(6):
        with torch.no_grad():
            net.lin.weight.normal_()
        weights.append(net.lin.weight.detach().double().clone())
        cur = 4 * step + 10  # ramp-up active: 0.5·cur < 50
        betas.append(ema.update(net, cur_nimg=cur, batch_size=batch))
        assert betas[-1] == pytest.approx(0.5 ** (batch / min(50, 0.5 * cur)))
    expected = math.prod(betas) * ema_0
    for t, w in enumerate(weights):
        expected = expected + (1 - betas[t]) * math.prod(betas[t + 1 :]) * w
    torch.testing.assert_close(ema.module.lin.weight.double(), expected, rtol=1e-5, atol=1e-6)


def test_buffers_are_copied_and_ema_is_frozen_copy():
    net = Tiny()
    ema = EMA(net, halflife_kimg=1.0)
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert not ema.module.training
    assert ema.module.lin.weight.data_ptr() != net.lin.weight.data_ptr()
    net.count.fill_(7)
    net.scale.fill_(0.25)
    ema.update(net, cur_nimg=100, batch_size=4)
    assert int(ema.module.count) == 7
    assert torch.equal(ema.module.scale, torch.full((2,), 0.25))


def test_state_dict_round_trip():
    net = Tiny()
    a = EMA(net, halflife_kimg=1.0)
    with torch.no_grad():
        a.module.lin.weight.fill_(0.5)
    b = EMA(Tiny(), halflife_kimg=1.0)
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.module.lin.weight, a.module.lin.weight)


def test_rejects_other_module_and_bad_arguments():
    ema = EMA(Tiny(), halflife_kimg=1.0)
    with pytest.raises(ValueError, match="module"):
        ema.update(torch.nn.Linear(3, 2), cur_nimg=0, batch_size=1)
    with pytest.raises(ValueError, match="halflife_kimg"):
        EMA(Tiny(), halflife_kimg=0)
    with pytest.raises(ValueError, match="rampup_ratio"):
        EMA(Tiny(), halflife_kimg=1, rampup_ratio=-0.1)
    with pytest.raises(ValueError, match="module"):
        EMA("net", halflife_kimg=1)


def test_first_step_copies_the_weights_exactly():
    net = Tiny()
    ema = EMA(net, halflife_kimg=15, rampup_ratio=0.05)
    with torch.no_grad():
        net.lin.weight.normal_()
        net.lin.bias.normal_()
    assert ema.update(net, cur_nimg=0, batch_size=32) == 0.0
    for a, b in zip(ema.module.parameters(), net.parameters()):
        assert torch.equal(a, b)
