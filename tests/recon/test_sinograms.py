"""reconstruct: MLEM of sinograms on an H×H grid with the iterations a model expects."""

import pytest
import torch

from petdiff.physics import Projector, poisson_sinogram
from petdiff.recon import mlem, reconstruct


def test_reconstruct_is_mlem_on_the_grid():
    projector = Projector(16)
    phantom = torch.zeros(2, 1, 16, 16)
    phantom[..., 4:12, 5:11] = 1.0
    sino = poisson_sinogram(phantom, projector, counts=1e4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(reconstruct(sino, 16, n_iter=5), mlem(sino, projector, n_iter=5))
    torch.testing.assert_close(reconstruct(sino.to(torch.int64), 16, n_iter=5), mlem(sino, projector, n_iter=5))
    with pytest.raises(ValueError, match="sinograms"):
        reconstruct(torch.ones(1, 16, 16), 16)
    with pytest.raises(ValueError, match="sinograms"):
        reconstruct(sino.numpy(), 16)
