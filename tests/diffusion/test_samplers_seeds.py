"""Per-seed noise: a sample depends on its own seed only, never on the batch it was drawn in."""

import pytest
import torch

from petdiff.diffusion import EDM_REFERENCE_SAMPLING, StackedRandomGenerator, parse_seeds, sample

MU, S = 0.7, 0.5


def denoise(x, sigma):
    """Exact denoiser of N(MU, S²) data (batch-independent)."""
    sigma = sigma.view(-1, 1, 1, 1)
    return MU + S**2 / (S**2 + sigma**2) * (x - MU)


def test_each_row_comes_from_its_own_seeded_generator():
    rnd = StackedRandomGenerator("cpu", [3, 7])
    noise = rnd.randn((2, 1, 4, 5))
    for row, seed in zip(noise, [3, 7]):
        torch.testing.assert_close(row, torch.randn((1, 4, 5), generator=torch.Generator().manual_seed(seed)))
    assert len(rnd) == 2 and rnd.seeds == [3, 7]
    like = rnd.randn_like(torch.zeros(2, 3, 2, 2, dtype=torch.float64))
    assert like.shape == (2, 3, 2, 2) and like.dtype == torch.float64


OPTIONS = [
    ("edm", {"num_steps": 12}),
    ("edm", {**EDM_REFERENCE_SAMPLING, "num_steps": 12}),
    ("euler", {"num_steps": 12, "S_churn": 30.0, "S_min": 0.05, "S_max": 50.0, "S_noise": 1.003}),
    ("dpmpp_2m", {"num_steps": 12}),
]


@pytest.mark.parametrize(("name", "opts"), OPTIONS)
def test_sampling_seeds_together_equals_sampling_them_apart(name, opts):
    def draw(seeds):
        rnd = StackedRandomGenerator("cpu", seeds)
        noise = {"noise": rnd} if opts.get("S_churn", 0) > 0 else {}
        return sample(denoise, rnd.randn((len(seeds), 1, 8, 8), dtype=torch.float64), name, **opts, **noise)

    together = draw([3, 7])
    torch.testing.assert_close(together[0:1], draw([3]), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(together[1:2], draw([7]), rtol=1e-12, atol=1e-12)
    assert not torch.allclose(together[0], together[1])


def test_churn_noise_is_drawn_from_the_same_generators():
    # Same latents but the churn noise from other seeds must change the stochastic result.
    z = StackedRandomGenerator("cpu", [3]).randn((1, 1, 8, 8))
    a = sample(denoise, z, "edm", **EDM_REFERENCE_SAMPLING, noise=StackedRandomGenerator("cpu", [3]))
    b = sample(denoise, z, "edm", **EDM_REFERENCE_SAMPLING, noise=StackedRandomGenerator("cpu", [4]))
    assert not torch.allclose(a, b)


def test_generator_rejects_mismatched_batch_and_device():
    rnd = StackedRandomGenerator("cpu", [1, 2, 3])
    with pytest.raises(ValueError, match=r"shape: .*3 seed\(s\)"):
        rnd.randn((2, 1, 4, 4))
    with pytest.raises(ValueError, match="x: expected a tensor on cpu"):
        rnd.randn_like(torch.empty(3, 1, 4, 4, device="meta"))


def test_parse_seeds_accepts_lists_ranges_and_ints():
    assert parse_seeds("0-3,10") == [0, 1, 2, 3, 10]
    assert parse_seeds(5) == [5]
    assert parse_seeds((2, 9)) == [2, 9]
    assert parse_seeds([4, 4]) == [4, 4]  # repeats are fine for a generator (same seed for several inputs)
    assert parse_seeds([2**64 - 1]) == [2**64 - 1]


@pytest.mark.parametrize(
    ("seeds", "distinct", "message"),
    [
        ([], False, "at least one seed"),
        ([1, 2.0], False, r"expected integers, found 2\.0"),
        ([True], False, "expected integers, found True"),
        ([-1], False, r"\[0, 2\^64\), found -1"),
        ([2**64], False, r"\[0, 2\^64\)"),
        ("3-1", False, "seeds"),
        (1.5, False, "expected a list of integers"),
        ([4, 5, 4], True, "distinct seeds.*found 4 twice"),
    ],
)
def test_parse_seeds_rejects_bad_lists_with_a_message(seeds, distinct, message):
    with pytest.raises(ValueError, match=message):
        parse_seeds(seeds, distinct=distinct)
    with pytest.raises(ValueError, match="seeds"):
        parse_seeds(seeds, distinct=distinct)
