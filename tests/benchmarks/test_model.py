"""The model benchmark's roofline helpers: FLOP counts of a training step and an evaluation, and GFLOP/s shares."""

import pytest

from petdiff.models import build_network
from tests.conftest import load_benchmark


def small_network():
    return build_network("pet_cpu_64", seed=0, model_channels=8, num_blocks=1, img_resolution=[16, 16])


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("model")


def test_a_training_step_costs_two_to_three_forward_passes(bench):
    # Backward of a convolution = grad-input + grad-weight, each as costly as the forward; the stem needs no
    # grad-input, so a step lies strictly between 2x and 3x an evaluation.
    net = small_network()
    flops = bench.flops_per_image(net, batch=2)
    assert flops["eval"] > 0
    assert 2.0 * flops["eval"] < flops["train"] < 3.0 * flops["eval"]


def test_flops_per_image_do_not_depend_on_the_batch(bench):
    net = small_network()
    assert bench.flops_per_image(net, batch=1) == pytest.approx(bench.flops_per_image(net, batch=3))


def test_roofline_share_is_throughput_times_flops_over_peak(bench):
    result = {"train": {"img_per_s_median": 4.0}, "eval": {"img_per_s_median": 10.0}}
    out = bench.add_roofline(result, {"train": 15e9, "eval": 5e9}, peak_gflops=100.0)
    assert out["train"]["gflop_per_s"] == 60.0 and out["train"]["share_of_matmul_peak"] == 0.6
    assert out["eval"]["gflop_per_s"] == 50.0 and out["eval"]["share_of_matmul_peak"] == 0.5


def test_matmul_peak_is_2n3_flops_over_the_best_time(bench, monkeypatch):
    calls = []

    def fake_timer(fn, warmup, iters):
        product = fn()
        calls.append((tuple(product.shape), warmup, iters))
        return [0.004, 0.002, 0.003][:iters], [0.0] * iters

    monkeypatch.setattr(bench, "time_iterations", fake_timer)
    assert bench.matmul_peak_gflops(bench.torch.float32, size=128, repeats=3) == 2 * 128**3 / 0.002 / 1e9
    assert calls == [((128, 128), 3, 3)]
