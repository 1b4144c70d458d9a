"""Loading snapshots by role: regression + residual pairs, and the single conditional denoisers of earlier releases."""

import json

import pytest
import torch

from petdiff.evaluate.pipeline import optional_model
from petdiff.inference.enhancer import Enhancer
from petdiff.inference.model import load_model, load_pair, read_role
from petdiff.models import build_network
from petdiff.models.presets import network_config
from petdiff.training.checkpoint import save_network
from tests.conftest import PAIR_TINY, save_pair


def test_a_residual_snapshot_brings_its_regression_network(tmp_path):
    mean_path, residual_path = save_pair(tmp_path)
    mean, residual = load_pair(residual_path)
    assert mean.role == "mean" and residual.role == "residual"
    assert mean.path == mean_path
    assert read_role(residual_path) == "residual" and read_role(mean_path) == "mean"
    enhancer = Enhancer(mean, residual)
    out = enhancer.enhance(torch.rand(2, 1, 16, 16) * 5, 0.25, torch.tensor([3e4, 4e4]),
                           enhancer.settings("posterior", samples=2))
    assert out.mean.shape == (2, 1, 16, 16) and out.std.shape == (2, 1, 16, 16)
    assert float(out.mean.min()) >= 0


def test_a_regression_snapshot_alone_is_the_mean_method(tmp_path):
    mean_path, _ = save_pair(tmp_path)
    mean, residual = load_pair(mean_path)
    assert residual is None and mean.role == "mean"
    model, note = optional_model(str(mean_path), no_model=False)
    assert isinstance(model, Enhancer) and "regression" in note


def test_a_residual_whose_regression_network_was_replaced_is_refused(tmp_path):
    _, residual_path = save_pair(tmp_path)
    other = build_network(network_config("pet_mean_64", **PAIR_TINY), seed=5)
    save_network(tmp_path / "mean.safetensors", other, other.config, {"mode": "pet", "role": "mean", "resolution": 16,
                                                                       "normalization": "quantitative"})
    with pytest.raises(ValueError, match=r"regression network mean\.safetensors"):
        load_pair(residual_path)
    (tmp_path / "mean.safetensors").unlink()
    with pytest.raises(ValueError, match="neither next to it"):
        load_pair(residual_path)


def test_single_denoiser_snapshots_of_earlier_releases_still_load(tmp_path):
    net = build_network(network_config("pet_cpu_64", **PAIR_TINY), seed=0)
    meta = {"mode": "pet", "resolution": 16, "normalization": "quantitative", "target": "full_dose",
            "cond_channels": 1, "label_dim": 0, "data": {"n_iter": 10}, "kimg": 57.5, "config_hash": "old"}
    path = save_network(tmp_path / "old.safetensors", net, net.config, meta)  # no 'role': written before pairs
    assert read_role(path) == "denoiser"
    assert load_model(path).role == "denoiser"
    model, note = optional_model(str(path), no_model=False)
    assert not isinstance(model, Enhancer) and "single conditional denoiser" in note
    with pytest.raises(ValueError, match="--method denoiser"):
        load_pair(path)


def test_a_role_that_contradicts_the_network_names_the_sidecar(tmp_path):
    mean_path, _ = save_pair(tmp_path)
    sidecar = mean_path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["role"] = "residual"  # a regression network (1 condition channel) claiming to be a residual model
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="cond_channels = 2"):
        load_model(mean_path)
