from __future__ import annotations

import itertools
import math

import pytest
import torch

from petdiff.training.schedule import LRSchedule, set_learning_rate

REF = LRSchedule(total_kimg=600, lr_max=2e-4, lr_start=1e-5, lr_min=4e-6, warmup=0.1)


def test_reference_closed_form_values():
    assert REF(0) == pytest.approx(1e-5, rel=1e-12)
    assert REF.warmup_kimg == pytest.approx(60)
    assert REF(30) == pytest.approx((1e-5 + 2e-4) / 2, rel=1e-12)  # half-way through the linear warm-up
    assert REF(60) == pytest.approx(2e-4, rel=1e-12)  # end of warm-up = top of the cosine
    assert REF(330) == pytest.approx((2e-4 + 4e-6) / 2, rel=1e-12)  # cosine midpoint: cos(π/2) = 0
    assert REF(60 + 540 / 3) == pytest.approx(4e-6 + 0.5 * 196e-6 * (1 + math.cos(math.pi / 3)), rel=1e-12)
    assert REF(600) == pytest.approx(4e-6, rel=1e-12)
    assert REF(1e6) == 4e-6


def test_pieces_are_monotone_and_continuous():
    ks = torch.linspace(0, 600, 6001).tolist()
    lrs = [REF(k) for k in ks]
    warm = [lr for k, lr in zip(ks, lrs) if k <= 60]
    cool = [lr for k, lr in zip(ks, lrs) if k >= 60]
    assert all(b > a for a, b in itertools.pairwise(warm))
    assert all(b < a for a, b in itertools.pairwise(cool))
    # No jump at the junction: the left limit of the ramp equals lr_max.
    assert REF(60 - 1e-9) == pytest.approx(REF(60), rel=1e-9)
    assert min(lrs) >= 4e-6 and max(lrs) <= 2e-4


def test_no_warmup_starts_at_lr_max():
    s = LRSchedule(total_kimg=10, lr_max=1e-3, lr_start=0, lr_min=0, warmup=0)
    assert s(0) == pytest.approx(1e-3)
    assert s(5) == pytest.approx(5e-4)
    assert s(10) == 0


def test_set_learning_rate_sets_every_group():
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.Adam([{"params": params[:1]}, {"params": params[1:]}], lr=1.0)
    set_learning_rate(opt, REF(330))
    assert [g["lr"] for g in opt.param_groups] == [REF(330)] * 2


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"total_kimg": 0}, "total_kimg"),
        ({"total_kimg": 10, "lr_max": 0}, "lr_max"),
        ({"total_kimg": 10, "lr_start": 1e-2}, "lr_start"),
        ({"total_kimg": 10, "lr_min": -1}, "lr_min"),
        ({"total_kimg": 10, "warmup": 1.5}, "warmup"),
        ({"total_kimg": float("nan")}, "total_kimg"),
        ({"total_kimg": "ten"}, "total_kimg"),
    ],
)
def test_rejects_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        LRSchedule(**kwargs)


def test_rejects_negative_progress():
    with pytest.raises(ValueError, match="kimg"):
        REF(-1)
