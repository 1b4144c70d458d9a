from __future__ import annotations

import itertools

import pytest
import torch

from petdiff.data.sampler import InfiniteSampler


def take(sampler: InfiniteSampler, k: int) -> list[int]:
    return list(itertools.islice(iter(sampler), k))


@pytest.mark.parametrize("n", [10, 11])  # divisible and not divisible by the world size
def test_two_ranks_are_disjoint_and_cover_each_pass_exactly_once(n):
    ranks = [InfiniteSampler(n, rank=r, world_size=2, seed=3) for r in range(2)]
    passes = 4
    streams = [take(s, passes * n) for s in ranks]
    # Rebuild the global stream: global position p went to rank p % 2 as that rank's (p // 2)-th index.
    merged = [streams[p % 2][p // 2] for p in range(passes * n)]
    for e in range(passes):
        assert sorted(merged[e * n : (e + 1) * n]) == list(range(n))
    # Disjoint within a pass: the two ranks' shares of pass 0 do not overlap.
    first_pass = [set(merged[p] for p in range(n) if p % 2 == r) for r in range(2)]
    assert not first_pass[0] & first_pass[1]


def test_merged_stream_equals_single_rank_stream():
    n, w = 13, 3
    single = take(InfiniteSampler(n, seed=7), 5 * n)
    streams = [take(InfiniteSampler(n, rank=r, world_size=w, seed=7), 5 * n) for r in range(w)]
    merged = [streams[p % w][p // w] for p in range(5 * n)]
    assert merged == single


def test_reproducible_by_seed_and_different_seeds_differ():
    a = take(InfiniteSampler(50, seed=1), 200)
    b = take(InfiniteSampler(50, seed=1), 200)
    c = take(InfiniteSampler(50, seed=2), 200)
    assert a == b
    assert a != c


def test_each_pass_is_a_new_permutation():
    n = 40
    stream = take(InfiniteSampler(n, seed=0), 3 * n)
    passes = [stream[e * n : (e + 1) * n] for e in range(3)]
    assert all(sorted(p) == list(range(n)) for p in passes)
    # Two independent uniform permutations of 40 items coincide with probability 1/40!.
    assert passes[0] != passes[1] != passes[2]


def test_shuffle_false_is_identity_order():
    assert take(InfiniteSampler(4, shuffle=False), 9) == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    assert take(InfiniteSampler(5, rank=1, world_size=2, shuffle=False), 5) == [1, 3, 0, 2, 4]


def test_resume_continues_identically():
    n, w = 17, 2
    full = [take(InfiniteSampler(n, rank=r, world_size=w, seed=5), 60) for r in range(w)]
    resumed = []
    for r in range(w):
        s = InfiniteSampler(n, rank=r, world_size=w, seed=5)
        head = take(s, 23)
        state = s.state_dict()
        assert state["position"] == 23 * w
        t = InfiniteSampler(n, rank=r, world_size=w, seed=5)
        t.load_state_dict(state)
        resumed.append(head + take(t, 37))
    assert resumed == full


def test_resume_with_another_world_size_continues_the_global_stream():
    n = 9
    single = take(InfiniteSampler(n, seed=4), 40)
    s = InfiniteSampler(n, seed=4)
    take(s, 10)
    state = s.state_dict()
    parts = []
    for r in range(2):
        t = InfiniteSampler(n, rank=r, world_size=2, seed=4)
        t.load_state_dict(state)
        parts.append(take(t, 15))
    assert [parts[p % 2][p // 2] for p in range(30)] == single[10:40]


def test_uniform_marginal_within_a_pass():
    # Over many seeds, slot 0 of a pass holds each of n indices with probability 1/n: chi-square test.
    n, seeds = 5, 2000
    counts = torch.zeros(n)
    for seed in range(seeds):
        counts[InfiniteSampler(n, seed=seed).permutation(0)[0]] += 1
    expected = seeds / n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 18.47  # 99.9 % quantile of chi-square with 4 degrees of freedom


def test_works_with_a_dataloader():
    data = torch.arange(6.0)
    loader = torch.utils.data.DataLoader(data, batch_size=4, sampler=InfiniteSampler(6, seed=0))
    batches = list(itertools.islice(iter(loader), 3))
    assert sorted(torch.cat(batches)[:6].tolist()) == list(range(6))


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"dataset_len": 0}, "dataset_len"),
        ({"dataset_len": 3, "rank": 2, "world_size": 2}, "rank"),
        ({"dataset_len": 3, "rank": -1}, "rank"),
        ({"dataset_len": 3, "world_size": 0}, "world_size"),
        ({"dataset_len": 3, "seed": -1}, "seed"),
        ({"dataset_len": 3.0}, "dataset_len"),
        ({"dataset_len": 3, "shuffle": "yes"}, "shuffle"),
    ],
)
def test_rejects_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        InfiniteSampler(**kwargs)


def test_load_state_dict_rejects_mismatch():
    s = InfiniteSampler(10, seed=1)
    with pytest.raises(ValueError, match="seed"):
        s.load_state_dict(InfiniteSampler(10, seed=2).state_dict())
    with pytest.raises(ValueError, match="dataset_len"):
        s.load_state_dict(InfiniteSampler(11, seed=1).state_dict())
    with pytest.raises(ValueError, match="position"):
        s.load_state_dict({"seed": 1})
    with pytest.raises(ValueError, match="position"):
        s.load_state_dict({"position": -3})
