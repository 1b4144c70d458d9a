"""The streaming posterior statistics: Welford's running mean / std equal the two-pass ones."""

import torch

from petdiff.inference.posterior import PosteriorStats


def test_running_statistics_match_two_pass_ones():
    g = torch.Generator().manual_seed(0)
    samples = 1e3 + torch.randn(6, 4, 1, 3, 3, generator=g)  # a small spread on a large mean
    stats = PosteriorStats((4, 1, 3, 3), 6)
    for x in samples:
        stats.update(x)
    mean, std = stats.result()
    torch.testing.assert_close(mean, samples.mean(0), rtol=0, atol=1e-4)
    torch.testing.assert_close(std, samples.std(0), rtol=1e-4, atol=1e-5)
    assert mean.dtype == torch.float32 and stats.moments.mean.dtype == torch.float64


def test_a_single_sample_has_no_std():
    x = torch.rand(2, 1, 2, 2)
    stats = PosteriorStats((2, 1, 2, 2), 1)
    stats.update(x)
    mean, std = stats.result()
    assert std is None
    torch.testing.assert_close(mean, x)
