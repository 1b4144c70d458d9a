"""Tissue-concentration perturbation (science.md §4): totals kept, background zero, Dirichlet statistics."""

from __future__ import annotations

import math

import pytest
import torch

from petdiff.phantoms import perturb_concentrations, perturbed_class_concentrations


def _two_slices() -> tuple[torch.Tensor, torch.Tensor]:
    """Slice 0 has classes {0, 1, 2}, slice 1 has {0, 1, 3}; class 0 is background (concentration 0)."""
    labels = torch.zeros(2, 1, 8, 8, dtype=torch.int64)
    labels[0, 0, 2:6, 2:6] = 1
    labels[0, 0, 3:5, 3:5] = 2
    labels[1, 0, 1:7, 1:7] = 1
    labels[1, 0, 0, :] = 3
    conc = torch.tensor([[0.0, 2.0, 6.0, 1.0], [0.0, 1.0, 4.0, 3.0]])
    return labels, conc


def test_perturbation_keeps_total_and_background():
    labels, conc = _two_slices()
    activity = torch.gather(conc, 1, labels.flatten(1)).reshape(labels.shape)
    out = perturb_concentrations(labels, conc, alpha=5.0, generator=0)
    assert out.shape == labels.shape and out.dtype == torch.float32
    assert torch.allclose(out.sum((1, 2, 3)), activity.sum((1, 2, 3)), rtol=1e-5)
    assert torch.all(out[labels == 0] == 0)
    # One value per class and slice: the image is still piecewise constant on the labels.
    for i in range(2):
        for k in labels[i].unique():
            assert out[i][labels[i] == k].unique().numel() == 1
    assert not torch.allclose(out, activity)


def test_perturbation_is_reproducible_from_a_seed():
    labels, conc = _two_slices()
    a = perturb_concentrations(labels, conc, 10.0, torch.Generator().manual_seed(4))
    b = perturb_concentrations(labels, conc, 10.0, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)


def test_absent_classes_keep_their_concentration():
    labels, conc = _two_slices()
    new = perturbed_class_concentrations(labels, conc, 3.0, 0)
    assert new[0, 3] == conc[0, 3] and new[1, 2] == conc[1, 2]


def test_perturbed_shares_follow_dirichlet_moments():
    # Equal pixel counts per class make the rescaled shares s·D_o/Σ(s·D) equal to D_o exactly.
    n, alpha = 4000, 30.0
    labels = torch.tensor([0, 1, 2, 3]).repeat(4).reshape(1, 1, 4, 4).expand(n, 1, 4, 4).contiguous()
    conc = torch.tensor([0.0, 1.0, 3.0, 4.0]).expand(n, 4).contiguous()
    new = perturbed_class_concentrations(labels, conc, alpha, torch.Generator().manual_seed(7))
    shares = new[:, 1:] / new[:, 1:].sum(1, keepdim=True)
    c = torch.tensor([1.0, 3.0, 4.0]) / 8.0
    var = c * (1 - c) / (alpha + 1)
    assert torch.all((shares.mean(0) - c).abs() < 5 * torch.sqrt(var / n))
    assert torch.all((shares.var(0) / var - 1).abs() < 5 * math.sqrt(2 / n) * 1.5)


@pytest.mark.parametrize(
    ("labels", "conc", "alpha", "match"),
    [
        (torch.zeros(1, 8, 8, dtype=torch.int64), torch.ones(1, 2), 1.0, "labels"),
        (torch.zeros(1, 1, 4, 4), torch.ones(1, 2), 1.0, "labels"),
        (torch.full((1, 1, 4, 4), 5), torch.ones(1, 2), 1.0, "labels"),
        (torch.zeros(1, 1, 4, 4, dtype=torch.int64), -torch.ones(1, 2), 1.0, "concentrations"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.int64), torch.ones(1, 2), 1.0, "concentrations"),
        (torch.zeros(1, 1, 4, 4, dtype=torch.int64), torch.ones(1, 2), 0.0, "alpha"),
    ],
)
def test_perturbation_rejects_bad_input(labels, conc, alpha, match):
    with pytest.raises(ValueError, match=match):
        perturb_concentrations(labels, conc, alpha, 0)
