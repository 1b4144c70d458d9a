"""Reconstruction: batched MLEM / OSEM and the Gaussian post-filter baseline."""

from petdiff.recon.filters import gaussian_filter, gaussian_kernel1d
from petdiff.recon.mlem import MLEM_ITERATIONS, em_update, mlem
from petdiff.recon.sinograms import reconstruct

__all__ = ["MLEM_ITERATIONS", "em_update", "gaussian_filter", "gaussian_kernel1d", "mlem", "reconstruct"]
