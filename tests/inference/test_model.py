"""Loading snapshots by role: regression + residual pairs, and the single conditional denoisers of earlier releases."""

import json

import pytest
import torch

from petdiff.evaluate.pipeline import optional_model
from petdiff.inference import model as model_module
from petdiff.inference.enhancers import DenoiserEnhancer, PairEnhancer
from petdiff.inference.model import load_model, load_pair, read_role
from petdiff.models import build_network
from petdiff.models.presets import network_config
from petdiff.training.checkpoint import save_network
from tests.conftest import PAIR_TINY, RES, save_pair, save_tiny


def test_a_residual_snapshot_brings_its_regression_network(tmp_path):
    mean_path, residual_path = save_pair(tmp_path)
    mean, residual = load_pair(residual_path)
    assert mean.role == "regression" and residual.role == "residual"  # old sidecars say "mean": an alias
    assert mean.meta["role"] == "mean" and mean.path == mean_path
    assert read_role(residual_path) == "residual" and read_role(mean_path) == "regression"
    enhancer = PairEnhancer(mean, residual)
    assert enhancer.methods == ("mean", "posterior") and enhancer.spec.roles == ("regression", "residual")


def test_a_regression_snapshot_alone_is_the_mean_method(tmp_path):
    mean_path, _ = save_pair(tmp_path)
    mean, residual = load_pair(mean_path)
    assert residual is None and mean.role == "regression"
    model, note = optional_model(str(mean_path), no_model=False)
    assert model.methods == ("mean",) and "regression" in note


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
    assert isinstance(model, DenoiserEnhancer) and model.methods == ("denoiser",)
    assert "single conditional denoiser" in note
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


@pytest.fixture
def pet_snapshot(tmp_path):
    return save_tiny(tmp_path / "network-snapshot-000000.safetensors")


def test_load_model_from_safetensors_or_json(pet_snapshot):
    for path in (pet_snapshot, pet_snapshot.with_suffix(".json")):
        model = load_model(path, device="cpu")
        assert model.path == pet_snapshot
        assert not model.net.training
        assert model.device == torch.device("cpu")
        assert model.mode == "pet" and model.resolution == (RES, RES)
        assert model.meta["normalization"] == "quantitative"


def test_default_weights_missing_names_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(model_module, "default_weights_dir", lambda: tmp_path / "weights")
    with pytest.raises(ValueError, match=r"weights.*--network"):
        load_model()


def test_default_weights_are_loaded(monkeypatch, tmp_path):
    save_tiny(tmp_path / model_module.DEFAULT_WEIGHTS)
    monkeypatch.setattr(model_module, "default_weights_dir", lambda: tmp_path)
    assert load_model().path == tmp_path / model_module.DEFAULT_WEIGHTS


@pytest.mark.parametrize(
    ("meta", "word"),
    [
        ({"mode": None}, "mode"),
        ({"mode": "video"}, "mode"),
        ({"resolution": 32}, "resolution"),
        ({"normalization": "zscore"}, "normalization"),
        ({"sampling": [1]}, "sampling"),
    ],
)
def test_load_model_rejects_bad_sidecar(tmp_path, meta, word):
    path = save_tiny(tmp_path / "n.safetensors", **meta)
    with pytest.raises(ValueError, match=word):
        load_model(path, "cpu")


def test_load_model_rejects_mode_that_contradicts_network(tmp_path):
    path = save_tiny(tmp_path / "n.safetensors", kind="images")
    side = json.loads(path.with_suffix(".json").read_text())
    side.update(mode="pet", normalization="quantitative")
    path.with_suffix(".json").write_text(json.dumps(side))
    with pytest.raises(ValueError, match="cond_channels"):
        load_model(path, "cpu")


def test_load_model_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="safetensors"):
        load_model(tmp_path / "net.pkl")
    with pytest.raises(ValueError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
