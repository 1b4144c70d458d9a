"""Fixtures for the io tests (the DICOM series factory is pet_series.py)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def pet_values() -> np.ndarray:
    """(4, 6, 5) distinct positive activities (Bq/mL), exactly representable with the factory's slopes."""
    rng = np.random.default_rng(0)
    return (rng.integers(100, 30000, size=(4, 6, 5)) * 0.5).astype(np.float64)
