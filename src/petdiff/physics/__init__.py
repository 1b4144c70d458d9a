"""PET physics: geometry, exact sparse system matrix (cached), projector with attenuation, Poisson data, thinning."""

from petdiff.physics.geometry import Geometry
from petdiff.physics.matrix import system_matrix
from petdiff.physics.projector import Projector, SparseOperator
from petdiff.physics.simulate import ExpectedSinogram, expected_sinogram, poisson_sinogram, thin

__all__ = [
    "ExpectedSinogram",
    "Geometry",
    "Projector",
    "SparseOperator",
    "expected_sinogram",
    "poisson_sinogram",
    "system_matrix",
    "thin",
]
