import pytest
import torch

from petdiff.phantoms.label_fields import FIELD_CLASS_NAMES, gaussian_random_fields, label_field_phantoms


def test_shapes_seeded_and_non_negative():
    a = label_field_phantoms(16, 64, generator=3)
    b = label_field_phantoms(16, 64, generator=3)
    assert a.activity.shape == (16, 1, 64, 64) and a.labels.shape == (16, 1, 64, 64)
    assert torch.equal(a.activity, b.activity)
    assert not torch.equal(a.activity, label_field_phantoms(16, 64, generator=4).activity)
    assert float(a.activity.min()) >= 0
    assert bool((a.activity.flatten(1).sum(dim=1) > 0).all())
    assert int(a.labels.max()) < len(FIELD_CLASS_NAMES)


def test_hard_edges_are_piecewise_constant_with_brainweb_like_level_counts():
    ph = label_field_phantoms(200, 64, generator=0, partial_volume=0.0)
    # Without partial volume every pixel carries exactly its class level.
    expected = torch.gather(ph.concentrations, 1, ph.labels.flatten(1)).view_as(ph.activity)
    assert torch.equal(ph.activity, expected)
    levels = torch.tensor([len(torch.unique(a[a > 0])) for a in ph.activity])
    assert 3 <= float(levels.float().median()) <= 8  # BrainWeb: 3-8 per slice, median 5-6
    assert float(ph.activity.amax(dim=(1, 2, 3)).median()) <= 14  # BrainWeb scale 1-12
    centres = (torch.arange(64) + 0.5) / 32 - 1
    radius = (centres[None, :] ** 2 + centres[:, None] ** 2).sqrt()
    assert float(ph.activity[..., radius >= 1.0].abs().max()) == 0  # inside the scanner's field of view


def test_level_order_varies_from_slice_to_slice():
    ph = label_field_phantoms(64, 64, generator=1, partial_volume=0.0)
    hottest = [int(torch.bincount(lab[act == act.max()].flatten()).argmax()) for act, lab in
               zip(ph.activity, ph.labels)]
    assert len(set(hottest)) >= 4  # the hottest class is not always the same one


def test_random_fields_have_unit_variance_and_set_correlation():
    g = torch.Generator().manual_seed(0)
    ell = torch.tensor([[1.0, 6.0]]).expand(8, 2)
    fields = gaussian_random_fields(8, 2, 64, ell, g, torch.device("cpu"))
    assert torch.allclose(fields.std(dim=(-2, -1)), torch.ones(8, 2), atol=1e-4)
    # Neighbouring pixels correlate more for the longer correlation length: exp(-1/(4 l^2)) for a Gaussian filter.
    lag1 = (fields[..., 1:] * fields[..., :-1]).mean(dim=(-2, -1)).mean(dim=0)
    assert float(lag1[0]) == pytest.approx(torch.exp(torch.tensor(-1 / 4.0)).item(), abs=0.05)
    assert float(lag1[1]) > 0.98


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"classes": (0, 3)}, {"classes": (5, 3)}, {"supersample": 0},
                                    {"partial_volume": 1.5}, {"resolution": 8}])
def test_bad_arguments_name_the_field(kwargs):
    args = {"n": 2, "resolution": 32, **kwargs}
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        label_field_phantoms(**args)
