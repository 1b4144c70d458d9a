"""ModelSpec: one reading of the sidecars for old 64×64 pairs, scan-model pairs and single denoisers."""

import json
from importlib import resources

import pytest

from petdiff.inference.spec import ModelSpec, snapshot_role
from tests.conftest import SCAN_DATA

SHIPPED = {name: json.loads(resources.files("petdiff").joinpath(f"weights/{name}.json").read_text())
           for name in ("regression", "residual")}


def test_the_shipped_pair_is_a_native_2p5d_scan_model():
    spec = ModelSpec.from_sidecars(SHIPPED["regression"], SHIPPED["residual"])
    assert spec.roles == ("regression", "residual") and snapshot_role(SHIPPED["regression"]) == "regression"
    assert spec.resolution == (64, 64) and spec.pixel_size is None and spec.native and spec.whole_slices
    assert spec.context == 1 and spec.channels == 3 and spec.dose_label == "density"
    assert spec.density_range == (2.7, 6.6e3) and spec.fraction_range == (0.02, 0.6) and spec.n_iter is None
    assert spec.default_samples == 16 and spec.sampling["sampler"] == "dpmpp_2m" and spec.residual_std > 0
    assert spec.dose_level_range(0.25) == (2.7, 6.6e3)
    assert spec.model_pixel_size((3.5, 3.5)) == (3.5, 3.5) and spec.model_pixel_size((1.2, 1.2)) == (1.5, 1.5)


def test_a_scan_model_runs_native_within_its_range():
    meta = {"role": "mean", "resolution": 64, "normalization": "quantitative", "data": SCAN_DATA,
            "architecture": {"channel_mult": [1, 2, 2, 2], "attn_stages": []}}
    spec = ModelSpec.from_sidecars(meta, {"role": "residual", "residual_std": 0.2, "sampling": {"seeds": "0-7"}})
    assert spec.native and spec.whole_slices and spec.size_multiple == 8
    assert spec.context == 1 and spec.channels == 3 and spec.dose_label == "density"
    assert spec.model_pixel_size((3.5, 1.65)) == (3.5, 1.65)
    assert spec.model_pixel_size((5.0, 1.0)) == (4.5, 1.5)  # outside the trained range: the nearest bound
    assert spec.dose_level_range(0.1) == tuple(SCAN_DATA["density_range"])
    assert spec.default_samples == 8 and spec.residual_std == 0.2


def test_defaults_of_old_snapshots_and_bad_fields():
    spec = ModelSpec.from_sidecars({"mode": "pet", "resolution": 32, "data": {}})
    assert spec.roles == ("denoiser",) and spec.pixel_size == (4.0, 4.0) and spec.dose_label == "none"
    assert spec.n_iter is None and spec.dose_level_range(0.25) is None  # the caller's MLEM_ITERATIONS then
    with pytest.raises(ValueError, match=r"x\.json: expected data\.context"):
        ModelSpec.from_sidecars({"data": {"context": -1}}, where="x.json")
    with pytest.raises(ValueError, match="dose_label"):
        ModelSpec.from_sidecars({"data": {"dose_labels": "photons"}})
    with pytest.raises(ValueError, match=r"data\.counts"):
        ModelSpec.from_sidecars({"data": {"counts": "many"}})
