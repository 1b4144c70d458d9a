"""Sinograms → images on a square grid: the MLEM reconstruction a model expects of a scan given as sinograms."""

from __future__ import annotations

import torch

from petdiff.physics import Projector
from petdiff.recon.mlem import MLEM_ITERATIONS, mlem


def reconstruct(sinograms: torch.Tensor, resolution: int, n_iter: int = MLEM_ITERATIONS) -> torch.Tensor:
    """MLEM (B, 1, H, H) of sinograms (B, n_angles, n_bins) with the exact Projector of an H×H grid.

    Integer counts are taken as float32; the reconstruction stays on the sinograms' device. Pass the
    iterations the model's training pairs used (`ModelSpec.n_iter`) so the input has the noise texture it learnt.
    """
    if not isinstance(sinograms, torch.Tensor):
        raise ValueError(f"sinograms: expected a torch.Tensor (B, n_angles, n_bins), found {type(sinograms).__name__}")
    if not sinograms.is_floating_point():
        sinograms = sinograms.float()
    return mlem(sinograms, Projector(resolution, device=sinograms.device), n_iter=n_iter)
