"""The volume benchmark's helpers: the synthetic body scan and the per-scan timing record (no wall-clock asserts)."""

import pytest
import torch

from petdiff.inference import load_enhancer
from tests.conftest import load_benchmark, save_scan_pair


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("volume")


def test_body_volume_is_a_counts_scan_on_its_grid(bench):
    scan = bench.body_volume(3, 128, 3.5, seed=0)  # 448 mm: the body (340 × 220 mm) and air around it
    assert scan.shape == (3, 128, 128) and scan.units == "counts" and scan.pixel_size == (3.5, 3.5)
    images = scan.images
    assert torch.equal(images, images.round()) and float(images.min()) == 0 and 120 < float(images.max()) < 300
    assert torch.equal(bench.body_volume(3, 128, 3.5, seed=0).images, images)


def test_time_scan_reports_the_grid_and_extrapolates_per_slice(bench, tmp_path):
    enhancer = load_enhancer(save_scan_pair(tmp_path)[1], device="cpu")
    row = bench.time_scan(enhancer, bench.body_volume(2, 24, 3.5), "mean", 10)
    assert row["slices"] == 2 and row["extrapolated"] and row["model_grid"] == [24, 24]
    assert row["full_volume_seconds"] == pytest.approx(row["seconds_per_slice"] * 10)
    assert row["per_64_slice_seconds"] == pytest.approx(row["seconds_per_slice"] * 64 * 64 / (24 * 24))
    assert row["network_input"] == [24, 24] and row["tiles_per_slice"] == 1
