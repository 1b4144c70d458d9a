import pytest
import torch

from petdiff.models.dihedral import dihedral, random_dihedral


def test_the_eight_elements_are_distinct_and_invertible():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    images = [dihedral(x, code) for code in range(8)]
    assert len({tuple(im.flatten().tolist()) for im in images}) == 8
    for code, im in enumerate(images):
        inverse = [c for c in range(8) if torch.equal(dihedral(im, c), x)]
        assert len(inverse) == 1, code


def test_pairs_get_the_same_transform_and_the_batch_is_mixed():
    x = torch.randn(64, 1, 8, 8)
    a, b = random_dihedral(x, 2 * x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(b, 2 * a)
    assert not torch.equal(a, x)
    assert sum(torch.equal(a[i], x[i]) for i in range(64)) < 20  # about 1 in 8 stays as it was


def test_square_images_only():
    with pytest.raises(ValueError, match="square"):
        random_dihedral(torch.zeros(1, 1, 4, 6))
