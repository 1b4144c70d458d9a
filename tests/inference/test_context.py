import pytest
import torch

from petdiff.inference.context import context_stack, with_context


def test_each_slice_gets_its_neighbours_and_the_ends_repeat():
    stack = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    out = with_context(stack, 1)
    assert out.shape == (4, 3, 2, 2)
    assert out[:, :, 0, 0].tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]
    assert torch.equal(with_context(stack, 0), stack)


def test_a_single_slice_is_repeated_and_bad_stacks_are_refused():
    one = torch.rand(1, 1, 8, 8)
    assert torch.equal(with_context(one, 2), one.expand(1, 5, 8, 8))
    with pytest.raises(ValueError, match="slices"):
        with_context(torch.rand(2, 3, 8, 8), 1)


def test_context_stack_replicates_at_the_ends():
    vol = torch.arange(5.0).view(5, 1, 1, 1).expand(5, 1, 2, 2)
    stack = context_stack(vol, [0, 2, 4], k=2)
    assert stack.shape == (3, 5, 2, 2)
    assert stack[:, :, 0, 0].tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4], [2, 3, 4, 4, 4]]
    assert context_stack(vol, [3], k=1, independent=True)[0, :, 0, 0].tolist() == [3, 3, 3]
    assert context_stack(vol, [1], k=0).shape == (1, 1, 2, 2)
