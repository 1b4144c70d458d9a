"""The streaming posterior statistics: Welford's running mean / std equal the two-pass ones, whatever the order."""

import torch

from petdiff.inference.posterior import PosteriorStats


def test_running_statistics_match_two_pass_ones():
    g = torch.Generator().manual_seed(0)
    samples = 1e3 + torch.randn(6, 4, 1, 3, 3, generator=g)  # a small spread on a large mean
    stats = PosteriorStats((4, 1, 3, 3), 6)
    for k in range(6):
        stats.update(k, [0, 1], samples[k, :2])
        stats.update(k, slice(2, 4), samples[k, 2:])
    mean, std = stats.result()
    torch.testing.assert_close(mean, samples.mean(0), rtol=0, atol=1e-4)
    torch.testing.assert_close(std, samples.std(0), rtol=1e-4, atol=1e-5)
    assert stats.kept is None and mean.dtype == torch.float32


def test_keep_and_callback_and_single_sample():
    x = torch.rand(2, 1, 2, 2)
    seen = []
    stats = PosteriorStats((2, 1, 2, 2), 1, keep=True, callback=lambda k, s: seen.append(k))
    stats.update(0, [0, 1], x)
    mean, std = stats.result()
    assert std is None and seen == [0]
    torch.testing.assert_close(mean, x)
    torch.testing.assert_close(stats.kept[0], x)
