"""enhance_scan: any matrix / pixel size on the input's grid, units in = units out, seamless tiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petdiff.inference.enhancers import load_enhancer
from petdiff.inference.scan import enhance_scan
from petdiff.inference.settings import SamplingSettings
from petdiff.inference.spec import ModelSpec
from petdiff.inference.tiling import _starts
from petdiff.io import Scan
from tests.conftest import RES, save_pair

AFFINE = np.array([[-2.0, 0, 0, 30], [0, 2.0, 0, -20], [0, 0, 3, 5], [0, 0, 0, 1]])


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return load_enhancer(save_pair(tmp_path_factory.mktemp("pair"))[1], device="cpu")


def scan_of(images: torch.Tensor, units: str = "counts", pixel: float = 2.0, **kw) -> Scan:
    return Scan(images=images, units=units, voxel_size=(3.0, pixel, pixel), affine=AFFINE, space="RAS",
                fraction=0.25, kind="nifti", **kw)


def phantom(h: int, w: int, n: int = 1, level: float = 40.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return level * (1 + 0.5 * torch.rand(n, 1, h, w, generator=g))


@pytest.mark.parametrize(("shape", "tiles"), [((128, 128), 1), ((96, 80), 4)])
def test_any_matrix_comes_back_on_the_input_grid(pair, shape, tiles):
    # 128² at 0.5 mm = 16² at 4 mm (one network pass); 96×80 at 1 mm = 24×20 (tiles of 16×16)
    pixel = 0.5 if shape == (128, 128) else 1.0
    scan = scan_of(phantom(*shape, n=2), pixel=pixel)
    calls = []
    result = enhance_scan(pair, scan, pair.settings("posterior", samples=2), progress=lambda d, t: calls.append((d, t)))
    for out in (result.mean, result.std, result.regression):
        assert out.shape == (2, *shape) and out.units == "counts"
        np.testing.assert_array_equal(out.affine, AFFINE)
        assert out.space == "RAS" and out.kind == "nifti"
        assert bool(torch.isfinite(out.images).all()) and float(out.images.min()) >= 0
    assert result.report["tiles_per_slice"] == tiles and result.report["model_grid"] == [
        round(shape[0] * pixel / 4), round(shape[1] * pixel / 4)]
    assert calls[-1] == (2 * tiles, 2 * tiles)
    # counts at full dose: the slice totals are those of the input / f (the untrained regression is the identity)
    np.testing.assert_allclose(result.regression.images.sum(dim=(1, 2, 3)), scan.images.sum(dim=(1, 2, 3)) / 0.25,
                               rtol=1e-3)
    level = result.report["dose_level"]
    assert level["max"] <= float(scan.images[:, 0].sum(dim=(1, 2)).max()) * 1.001  # a tile holds part of a slice


def test_bq_per_ml_in_bq_per_ml_out(pair):
    scan = scan_of(phantom(40, 40, level=22.3e3), units="Bq/mL", pixel=4.0)
    with pytest.warns(UserWarning, match="estimated K"):
        estimated = enhance_scan(pair, scan, pair.settings("mean"))
    given = enhance_scan(pair, scan, pair.settings("mean"), counts_per_unit=0.01)
    for result in (estimated, given):
        assert result.mean.units == "Bq/mL"
        # a concentration does not change with the dose: no ×1/f (the untrained regression is the identity)
        np.testing.assert_allclose(result.mean.images, scan.images, rtol=2e-3)
        assert result.std is None
    assert given.report["counts_per_unit"] == 0.01 and given.report["counts_per_unit_source"] == "given"
    assert estimated.report["counts_per_unit_source"] == "estimated"
    np.testing.assert_allclose(given.report["dose_level"]["max"], 0.01 * float(scan.images[0, 0, :16, :16].sum()),
                               rtol=0.2)


def test_empty_slices_give_zeros_with_a_note(pair):
    images = phantom(16, 16, n=3)
    images[1] = 0
    result = enhance_scan(pair, scan_of(images, pixel=4.0), pair.settings("posterior", samples=2))
    assert float(result.mean.images[1].abs().max()) == 0 and float(result.std.images[1].abs().max()) == 0
    assert result.report["empty_slices"] == [1] and "1" in result.report["notes"][0]


def test_one_scale_per_volume(pair):
    # a slice at twice the activity comes back at twice the activity: no per-slice renormalisation
    base = phantom(24, 24)
    result = enhance_scan(pair, scan_of(torch.cat([base, 2 * base]), pixel=4.0), pair.settings("mean"))
    np.testing.assert_allclose(result.mean.images[1], 2 * result.mean.images[0], rtol=1e-3)


class EdgeArtifactEnhancer:
    """A deterministic stand-in with a CNN-like artefact: +10 % on the two outer pixel rings of every tile."""

    methods = ("mean",)
    models = ()
    device = torch.device("cpu")
    spec = ModelSpec.from_sidecars({"resolution": RES, "data": {"pixel_size_mm": 4.0, "dose_labels": True}})

    def settings(self, method=None, **kw):
        return SamplingSettings(method="mean", samples=0, seeds=())

    def dose_level(self, centre):
        return centre.flatten(1).sum(dim=1)

    def estimate_counts_per_unit(self, tiles, fraction):
        return None

    def run(self, low, fraction, settings, seeds):
        ring = torch.ones(1, 1, RES, RES)
        ring[..., :2, :] = ring[..., -2:, :] = ring[..., :, :2] = ring[..., :, -2:] = 1.1
        return {"regression": low / fraction * ring}


def test_flat_phantom_through_tiles_has_no_seam(pair):
    scan = scan_of(torch.full((1, 1, 40, 40), 100.0), pixel=4.0)  # 40² > 16²: 4×4 tiles, stride 8
    result = enhance_scan(EdgeArtifactEnhancer(), scan, SamplingSettings(method="mean", samples=0, seeds=()))
    assert result.report["tiles_per_slice"] == 16
    inner = result.mean.images[0, 0, 2:-2, 2:-2].double()  # the image's own border keeps the tiles' edge rings
    # stitched edge to edge, every tile border would show a 10 % step (40 of 400); blended: none
    np.testing.assert_allclose(inner, 400.0, rtol=2e-3)  # < 1/50 of the stitched step
    borders = [s - 1 for s in _starts(40, RES, 0.5)[1:]]
    # the real pair on the same phantom: mean flat to float precision across the tile borders
    flat = enhance_scan(pair, scan, pair.settings("mean"))
    np.testing.assert_allclose(flat.mean.images, 400.0, rtol=1e-4)
    posterior = enhance_scan(pair, scan, pair.settings("posterior", samples=2)).mean.images[0, 0].double()
    jumps = (posterior[:, 1:] - posterior[:, :-1]).abs().amax(dim=0)
    assert float(jumps[borders].max()) <= float(jumps.max()) and float(jumps.max()) < 0.05 * 400


def test_errors_name_the_field(pair):
    with pytest.raises(ValueError, match="dose fraction"):
        enhance_scan(pair, scan_of(phantom(16, 16)).replace(fraction=None), pair.settings("mean"))
    with pytest.raises(ValueError, match="non-negative"):
        enhance_scan(pair, scan_of(-phantom(16, 16)), pair.settings("mean"))
    with pytest.raises(ValueError, match="counts_per_unit"):
        enhance_scan(pair, scan_of(phantom(16, 16)), pair.settings("mean"), counts_per_unit=-1.0)
    with pytest.raises(ValueError, match="pixel_size_mm"):
        ModelSpec.from_sidecars({"data": {"pixel_size_mm": [4.0]}})


def test_counts_per_unit_estimated_by_the_count_level_network(tmp_path):
    from petdiff.models import build_network, network_config
    from petdiff.models.dose import density_from_labels, peak_density
    from petdiff.training.checkpoint import save_network
    from tests.conftest import SCAN_DATA, save_scan_pair

    _, residual = save_scan_pair(tmp_path)
    config = network_config("pet_count_level_scan", model_channels=8, img_resolution=[RES, RES])
    save_network(tmp_path / "count_level.safetensors", build_network(config, seed=2), config,
                 {"kimg": 0, "config_hash": "test", "mode": "pet", "role": "count_level", "resolution": RES,
                  "normalization": "quantitative", "cond_channels": 3, "label_dim": 0, "data": SCAN_DATA})
    enhancer = load_enhancer(residual, device="cpu")
    assert enhancer.count_model is not None and enhancer.count_model.role == "count_level"
    scan = scan_of(phantom(RES, RES, n=1, level=2.0e3), units="Bq/mL", pixel=4.0)
    with pytest.warns(UserWarning, match="count-level network"):
        result = enhance_scan(enhancer, scan, enhancer.settings("mean"))
    # K̂ = ρ̂ / ρ_units of the one slice: ρ̂ from the normalised stack alone, ρ_units its peak density in Bq/mL
    stack = scan.images.expand(1, 3, RES, RES)
    condition, _ = enhancer.to_network(stack, torch.full((1,), 0.25))
    with torch.no_grad():
        rho_hat = density_from_labels(enhancer.count_model.net(condition))
    expected = float(rho_hat[0]) / float(peak_density(stack)[0])
    assert result.report["counts_per_unit"] == pytest.approx(expected, rel=1e-4)
    assert result.report["counts_per_unit_source"] == "estimated by the count-level network"
    # the estimate does not depend on the units' scale: ×10 Bq/mL gives K̂/10
    with pytest.warns(UserWarning, match="count-level network"):
        tenfold = enhance_scan(enhancer, scan.with_images(scan.images * 10), enhancer.settings("mean"))
    assert tenfold.report["counts_per_unit"] == pytest.approx(expected / 10, rel=1e-3)


def test_without_an_estimator_k_puts_the_median_slice_at_the_centre_of_the_trained_density(tmp_path):
    from petdiff.models.dose import peak_density
    from tests.conftest import SCAN_DATA, save_scan_pair

    enhancer = load_enhancer(save_scan_pair(tmp_path)[1], device="cpu")
    images = phantom(RES, RES, n=3, level=50.0) * torch.tensor([1.0, 2.0, 4.0]).view(3, 1, 1, 1)
    with pytest.warns(UserWarning, match="centre of the training range"):
        result = enhance_scan(enhancer, scan_of(images, units="SUV", pixel=4.0), enhancer.settings("mean"))
    lo, hi = SCAN_DATA["density_range"]
    expected = (lo * hi) ** 0.5 / float(peak_density(images[1:2]))  # the median slice's peak density
    assert result.report["counts_per_unit"] == pytest.approx(expected, rel=1e-4)
