"""Non-leaky geometric augmentation: identity at p = 0, label layout, exact flips/rotations, channel alignment."""

from __future__ import annotations

import math

import pytest
import torch

from petdiff.models import AUGMENT_DIM, AugmentParams, AugmentPipe

ONLY = dict(xflip=0.0, yflip=0.0, scale=0.0, rotate=0.0, aniso=0.0, translate=0.0)


def images(n=4, c=2, h=16, w=16, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def params(n, **values):
    p = AugmentParams.identity(n)
    for name, v in values.items():
        setattr(p, name, torch.full((n,), float(v)))
    return p


def test_p_zero_is_exact_identity_with_zero_labels():
    x = images()
    y, labels = AugmentPipe(p=0.0)(x, generator=0)
    assert torch.equal(y, x)
    assert labels.shape == (4, AUGMENT_DIM) and torch.count_nonzero(labels) == 0


def test_xflip_alone_gives_flip_label_and_flipped_image():
    x = images(n=64)
    y, labels = AugmentPipe(p=1.0, **{**ONLY, "xflip": 1.0})(x, generator=1)
    flipped = labels[:, 0] == 1
    assert torch.count_nonzero(labels[:, 1:]) == 0
    assert set(labels[:, 0].tolist()) <= {0.0, 1.0} and 0 < int(flipped.sum()) < 64  # an enabled flip is a coin
    assert torch.equal(y[flipped], x[flipped].flip(-1))
    assert torch.equal(y[~flipped], x[~flipped])


def test_yflip_via_params():
    x = images()
    y, labels = AugmentPipe().apply(x, params(4, yflip=1))
    assert torch.equal(y, x.flip(-2))
    torch.testing.assert_close(labels, torch.tensor([0, 1.0, 0, 0, 0, 0, 0, 0, 0]).expand(4, 9))


@pytest.mark.parametrize("theta, k", [(math.pi / 2, 1), (-math.pi / 2, -1), (math.pi, 2)])
def test_rotation_by_quarter_turns_equals_rot90(theta, k):
    x = images()
    y, labels = AugmentPipe().apply(x, params(4, rotate=theta))
    torch.testing.assert_close(y, torch.rot90(x, k, dims=(-2, -1)), rtol=0, atol=1e-5)
    expected = torch.tensor([0, 0, 0, math.cos(theta) - 1, math.sin(theta), 0, 0, 0, 0])
    torch.testing.assert_close(labels, expected.expand(4, 9), rtol=0, atol=1e-6)


def test_integer_translation_shifts_content():
    pipe = AugmentPipe(translate_std=0.125)  # tx = 1 → 0.125·16 = 2 pixels
    x = images()
    y, labels = pipe.apply(x, params(4, translate_x=1, translate_y=-0.5))
    torch.testing.assert_close(y[..., :-1, 2:], x[..., 1:, :-2], rtol=0, atol=1e-5)  # right by 2, up by 1
    torch.testing.assert_close(labels[:, 7:], torch.tensor([1.0, -0.5]).expand(4, 2))


def test_isotropic_scale_zooms_in_by_two_to_the_scale_std_z():
    # A centred Gaussian blob of std 2 px becomes std 2·s under zoom s = 2^(scale_std·z).
    h = w = 48
    yy, xx = torch.meshgrid(torch.arange(h) - (h - 1) / 2, torch.arange(w) - (w - 1) / 2, indexing="ij")
    blob = torch.exp(-(xx**2 + yy**2) / (2 * 2.0**2))[None, None]
    pipe = AugmentPipe(scale_std=0.5)
    y, labels = pipe.apply(blob, params(1, scale=2))  # s = 2^(0.5·2) = 2
    mass = y[0, 0].clamp(min=0)
    std = torch.sqrt((mass * xx**2).sum() / mass.sum())
    assert abs(std.item() - 4.0) < 0.05 * 4.0
    assert labels[0, 2] == 2


def test_inverse_matrix_closed_forms():
    pipe = AugmentPipe(scale_std=1.0, aniso_std=1.0, translate_std=0.25)
    m = pipe.inverse_matrix(params(1, scale=1), 8, 8)[0]  # s = 2 → G⁻¹ = diag(½, ½)
    torch.testing.assert_close(m, torch.diag(torch.tensor([0.5, 0.5, 1.0])))
    m = pipe.inverse_matrix(params(1, aniso=1), 8, 8)[0]  # r = 0: stretch x by 2, squeeze y by ½
    torch.testing.assert_close(m, torch.diag(torch.tensor([0.5, 2.0, 1.0])))
    m = pipe.inverse_matrix(params(1, aniso=1, aniso_angle=math.pi / 2), 8, 8)[0]  # axis along y
    torch.testing.assert_close(m, torch.diag(torch.tensor([2.0, 0.5, 1.0])), rtol=0, atol=1e-6)
    m = pipe.inverse_matrix(params(1, translate_x=1, translate_y=2), 8, 8)[0]
    torch.testing.assert_close(m[:2, 2], torch.tensor([-2.0, -4.0]))


@pytest.mark.parametrize("seed", [0, 1])
def test_channels_stay_aligned(seed):
    pipe = AugmentPipe(p=1.0)  # every transform enabled
    base = images(n=6, c=1, seed=seed)
    for pair in (torch.cat([base, base], 1), torch.cat([base, 3 * base], 1)):
        y, labels = pipe(pair, generator=seed)
        assert torch.count_nonzero(labels[:, 2]) == 6  # the resampling path was exercised
        factor = pair[:, 1].sum() / pair[:, 0].sum()
        torch.testing.assert_close(y[:, 1], factor * y[:, 0], rtol=1e-5, atol=1e-5)


def test_zero_label_rows_are_untouched_and_probabilities_match():
    n, p = 4000, 0.3
    pipe = AugmentPipe(p=p)
    x = images(n=n, c=1, h=8, w=8)
    y, labels = pipe(x, generator=2)
    identity = (labels == 0).all(1)
    assert torch.equal(y[identity], x[identity])
    tol = 5 * math.sqrt(p * (1 - p) / n)
    for column in (2, 8):  # scale and translation: on with probability p
        assert abs((labels[:, column] != 0).float().mean().item() - p) < tol
    assert abs((labels[:, 0] != 0).float().mean().item() - p / 2) < tol  # enabled flips are coins
    assert abs((labels[:, 4] != 0).float().mean().item() - p) < tol  # rotation


def test_generator_makes_it_reproducible():
    x = images()
    pipe = AugmentPipe(p=1.0)
    a, la = pipe(x, generator=torch.Generator().manual_seed(5))
    b, lb = pipe(x, generator=5)
    assert torch.equal(a, b) and torch.equal(la, lb)
    _, lc = pipe(x, generator=6)
    assert not torch.equal(la, lc)


def test_config_round_trip_and_validation():
    pipe = AugmentPipe(p=0.05, xflip=1e8)
    assert AugmentPipe(**pipe.config).config == pipe.config
    with pytest.raises(ValueError, match="p"):
        AugmentPipe(p=1.5)
    with pytest.raises(ValueError, match="rotate"):
        AugmentPipe(rotate=-1)
    with pytest.raises(ValueError, match="images"):
        pipe(torch.rand(16, 16))
    with pytest.raises(ValueError, match="params"):
        pipe.apply(images(n=4), AugmentParams.identity(3))
    with pytest.raises(ValueError, match="generator"):
        pipe(images(), generator="seed")
