"""Reconstruction: batched MLEM / OSEM and the Gaussian post-filter baseline."""

from petdiff.recon.filters import gaussian_filter, gaussian_kernel1d
from petdiff.recon.mlem import em_update, mlem

__all__ = ["em_update", "gaussian_filter", "gaussian_kernel1d", "mlem"]
