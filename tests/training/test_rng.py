from __future__ import annotations

import pytest
import torch

from petdiff.training.rng import capture_rng_state, restore_rng_state

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_capture_restore_replays_the_same_numbers(device):
    torch.rand(1, device=device)  # make sure the device's RNG is in use
    gen = torch.Generator(device).manual_seed(5)
    state = capture_rng_state({"noise": gen})
    first = (torch.rand(5, device=device), torch.randn(3, generator=gen, device=device))
    torch.rand(100, device=device)
    restore_rng_state(state, {"noise": gen})
    again = (torch.rand(5, device=device), torch.randn(3, generator=gen, device=device))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


def test_state_is_plain_tensors():
    state = capture_rng_state({"a": torch.Generator()})
    assert isinstance(state["torch_cpu"], torch.Tensor)
    assert isinstance(state["generators"]["a"], torch.Tensor)


def test_missing_generator_state_and_bad_input():
    state = capture_rng_state()
    with pytest.raises(ValueError, match="noise"):
        restore_rng_state(state, {"noise": torch.Generator()})
    with pytest.raises(ValueError, match="generators"):
        capture_rng_state({"a": 3})
    with pytest.raises(ValueError, match="torch_cpu"):
        restore_rng_state({}, None)


def test_cuda_state_without_cuda_warns():
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    state = {**capture_rng_state(), "torch_cuda": torch.zeros(16, dtype=torch.uint8)}
    with pytest.warns(UserWarning, match="CUDA"):
        restore_rng_state(state)
