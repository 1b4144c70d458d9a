"""The volume layer: context stacks, whole-or-tiled inputs, seed chunks and slabs that do not change the result."""

import pytest
import torch

from petdiff.inference.context import with_context
from petdiff.inference.enhancers import load_enhancer
from petdiff.inference.volume import _seed_chunks, enhance_volume, network_tile
from tests.conftest import save_scan_pair


def test_network_tile_whole_when_it_fits_else_tiles():
    assert network_tile((64, 64), False, 8, (300, 300), 10**6) == ((64, 64), 0.5)  # fixed-size models always tile
    assert network_tile((64, 64), True, 8, (113, 130), 10**6) == ((120, 136), None)  # padded to multiples of 8
    tile, overlap = network_tile((64, 64), True, 8, (440, 440), 200 * 200)
    assert tile == (200, 200) and overlap == 0.25


def test_seed_chunks_keep_antithetic_pairs_together():
    assert _seed_chunks(list(range(16)), 5) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]
    assert _seed_chunks([7], 32) == [[7]]
    assert _seed_chunks(list(range(6)), 32) == [list(range(6))]


@pytest.fixture(scope="module")
def scan_pair(tmp_path_factory):
    return load_enhancer(save_scan_pair(tmp_path_factory.mktemp("scan"))[1], device="cpu")


def test_chunks_and_slabs_do_not_change_the_statistics(scan_pair):
    low = torch.poisson(torch.full((5, 1, 24, 20), 30.0), generator=torch.Generator().manual_seed(0))
    one = enhance_volume(scan_pair, low, 0.25, scan_pair.settings(samples=8, batch_size=64), keep_samples=True)
    many = enhance_volume(scan_pair, low, 0.25, scan_pair.settings(samples=8, batch_size=2), slab=2)
    torch.testing.assert_close(many.mean, one.mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(many.std, one.std, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(one.mean, one.samples.mean(0), rtol=1e-5, atol=1e-5)
    assert many.samples is None and one.tiles_per_slice == 1 and one.overlap is None


def test_callback_sees_every_sample_once(scan_pair):
    low = torch.poisson(torch.full((3, 1, 16, 16), 30.0), generator=torch.Generator().manual_seed(1))
    seen = []
    kept = enhance_volume(scan_pair, low, 0.25, scan_pair.settings(samples=4), keep_samples=True)
    out = enhance_volume(scan_pair, low, 0.25, scan_pair.settings(samples=4, batch_size=2), slab=2,
                         callback=lambda k, rows, x: seen.append((k, list(rows), x)))
    assert sorted((k, rows) for k, rows, _ in seen) == [(k, rows) for k in range(4) for rows in ([0, 1], [2])]
    for k, rows, x in seen:  # the callback sees what keep_samples keeps
        torch.testing.assert_close(x, kept.samples[k, rows], rtol=1e-5, atol=1e-5)
    assert out.std.shape == low.shape and out.samples is None


def test_context_stacks_given_directly_match_the_volume(scan_pair):
    low = torch.poisson(torch.full((4, 1, 16, 16), 30.0), generator=torch.Generator().manual_seed(2))
    settings = scan_pair.settings(samples=2)
    volume = enhance_volume(scan_pair, low, 0.25, settings)
    stacks = enhance_volume(scan_pair, with_context(low, 1), 0.25, settings)
    torch.testing.assert_close(stacks.mean, volume.mean)
    torch.testing.assert_close(stacks.std, volume.std)


def test_bad_volume_is_refused(scan_pair):
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\) or context stacks \(N, 3, H, W\)"):
        enhance_volume(scan_pair, torch.ones(2, 2, 16, 16), 0.25, scan_pair.settings("mean"))


def test_network_calls_stay_within_the_pixel_budget(scan_pair, monkeypatch):
    from petdiff.inference import volume as volume_module

    monkeypatch.setattr(volume_module, "PIXELS_PER_CALL", 3 * 24 * 20)
    seen = []
    hooks = [m.net.register_forward_hook(lambda mod, args, out: seen.append(out.shape[0])) for m in scan_pair.models]
    low = torch.poisson(torch.full((4, 1, 24, 20), 30.0), generator=torch.Generator().manual_seed(3))
    try:
        small = enhance_volume(scan_pair, low, 0.25, scan_pair.settings(samples=4))
    finally:
        for hook in hooks:
            hook.remove()
    assert max(seen) == 3 and len(seen) > 4
    monkeypatch.undo()
    torch.testing.assert_close(small.mean, enhance_volume(scan_pair, low, 0.25, scan_pair.settings(samples=4)).mean)
