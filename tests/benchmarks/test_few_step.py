"""The few-step study's helpers: network passes per sample and the held-out slices."""

import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("few_step")


def test_passes_per_sample(bench):
    assert bench.passes("edm", 1) == 1 and bench.passes("edm", 8) == 15
    assert bench.passes("euler", 2) == 2 and bench.passes("dpmpp_2m", 8) == 8
    assert bench.SETTINGS[0] == bench.REFERENCE


def test_held_out_slices_are_counts_with_a_head_mask(bench):
    low, truth, mask = bench.held_out(2, 7, 16, 0.25, 5)
    assert low.shape == truth.shape == mask.shape == (2, 1, 16, 16)
    assert float(low.min()) >= 0 and bool(mask.any()) and float(truth.max()) > 0
