from __future__ import annotations

import hashlib
import json
import re

import pytest
import torch
from omegaconf import OmegaConf

from petdiff.training.config import (
    config_hash,
    config_to_dict,
    list_configs,
    load_config,
    load_config_from_args,
    packaged_config_dir,
    parse_config_args,
    save_training_options,
)
from petdiff.training.ema import ema_beta
from petdiff.training.schedule import LRSchedule

SHIPPED = ["images_cpu", "images_guided", "pet_cpu_64", "pet_reference_64", "tiny_test"]
SECTIONS = ["run", "data", "network", "loss", "augment", "optimizer", "ema", "sampling"]


def leaf_keys(node, prefix=""):
    out = set()
    for key, value in node.items():
        if isinstance(value, dict) and f"{prefix}{key}" != "network.overrides":
            out |= leaf_keys(value, f"{prefix}{key}.")
        else:
            out.add(f"{prefix}{key}")
    return out


def load_plain(name, *overrides):
    return OmegaConf.to_container(load_config(name, list(overrides), allow_missing=True))


def test_shipped_configs_are_found_via_package_resources():
    assert packaged_config_dir().name == "configs"
    assert set(SHIPPED) <= set(list_configs())


def test_every_shipped_config_has_the_same_keys():
    reference = leaf_keys(load_plain("pet_reference_64"))
    assert list(load_plain("pet_reference_64")) == SECTIONS
    for name in SHIPPED:
        assert leaf_keys(load_plain(name)) == reference, name


def test_reference_settings():
    cfg = load_config("pet_reference_64")
    assert (cfg.run.batch, cfg.run.kimg) == (32, 600)
    assert (cfg.optimizer.lr_start, cfg.optimizer.lr_max, cfg.optimizer.lr_min, cfg.optimizer.warmup) == (
        1e-5, 2e-4, 4e-6, 0.1,
    )
    assert (cfg.ema.halflife_kimg, cfg.ema.rampup_ratio) == (15, 0.05)
    assert cfg.augment.p == 0.05
    assert (cfg.loss.P_mean, cfg.loss.P_std, cfg.loss.sigma_data) == (-1.2, 1.2, 0.5)
    assert cfg.network.preset == "pet_reference_64"
    assert load_config("pet_cpu_64").network.preset == "pet_cpu_64"
    assert isinstance(cfg.data.counts, float) and cfg.data.counts == 1e6
    assert (cfg.sampling.steps, cfg.sampling.S_churn, cfg.sampling.S_noise) == (60, 40, 1.003)
    assert load_config("images_guided", allow_missing=True).network.overrides.label_dropout == 0.1


@pytest.mark.parametrize("name", SHIPPED)
def test_sections_feed_the_training_pieces(name):
    cfg = load_config(name, allow_missing=True)
    opt = cfg.optimizer
    schedule = LRSchedule(cfg.run.kimg, opt.lr_max, opt.lr_start, opt.lr_min, opt.warmup)
    assert schedule(cfg.run.kimg) == opt.lr_min
    assert 0 < ema_beta(cfg.run.batch * 10, cfg.run.batch, cfg.ema.halflife_kimg, cfg.ema.rampup_ratio) < 1
    assert cfg.run.kimg / cfg.run.tick >= 1


def test_network_sections_build_with_the_models_package():
    models = pytest.importorskip("petdiff.models")
    for name in ("tiny_test", "pet_cpu_64", "images_guided"):
        cfg = load_plain(name)
        assert cfg["network"]["preset"] in models.NETWORK_PRESETS
        overrides = dict(cfg["network"]["overrides"])
        if cfg["data"]["labels"]:
            overrides["label_dim"] = 3  # supplied by the data file at training time
        config = models.network_config(cfg["network"]["preset"], **overrides)
        assert list(config["img_resolution"]) == [cfg["data"]["resolution"]] * 2
    tiny = models.build_network(models.network_config("pet_cpu_64", **load_plain("tiny_test")["network"]["overrides"]))
    assert sum(p.numel() for p in tiny.parameters()) < 200_000
    with torch.no_grad():
        out = tiny(torch.zeros(1, 1, 16, 16), torch.ones(1), condition=torch.zeros(1, 1, 16, 16))
    assert out.shape == (1, 1, 16, 16)


def test_overrides_are_applied_with_hydra_grammar():
    cfg = load_config("tiny_test", ["run.kimg=0.5", "optimizer.betas=[0.5,0.9]", "run.batch_gpu=2", "data.alpha=null"])
    assert cfg.run.kimg == 0.5 and list(cfg.optimizer.betas) == [0.5, 0.9] and cfg.run.batch_gpu == 2
    assert cfg.data.alpha is None
    assert load_config("tiny_test", ["data.counts=[1e5,1e6]"]).data.counts == [1e5, 1e6]


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ValueError) as info:
        load_config("tiny_test", ["run.kimgs=3"])
    msg = str(info.value)
    assert "'run.kimgs'" in msg and "run.kimg" in msg and "run.batch_gpu" in msg and "optimizer" not in msg
    with pytest.raises(ValueError, match=r"\(top-level sections\): run, data, network"):
        load_config("tiny_test", ["trainer.lr=3"])
    with pytest.raises(ValueError, match="no key"):
        load_config("tiny_test", ["~run.nothing"])


def test_explicit_add_and_open_network_overrides():
    cfg = load_config("tiny_test", ["+run.note=hello", "network.overrides.model_channels=16", "network.preset=x"])
    assert cfg.run.note == "hello" and cfg.network.overrides.model_channels == 16
    cfg = load_config("pet_cpu_64", ["network.overrides.channel_mult=[1,2,2]"])
    assert list(cfg.network.overrides.channel_mult) == [1, 2, 2]


def test_type_errors():
    with pytest.raises(ValueError, match=r"run\.kimg expects a int.*found 'abc'"):
        load_config("pet_cpu_64", ["run.kimg=abc"])
    with pytest.raises(ValueError, match=r"data\.labels expects a bool"):
        load_config("pet_cpu_64", ["data.labels=3"])


def test_bad_override_syntax_and_unknown_config():
    for bad in ("run.kimg=[1", "run.kimg=[1,"):
        with pytest.raises(ValueError, match=rf"^override '{re.escape(bad)}': expected key=value .*\[a,b\]") as e:
            load_config("tiny_test", ["run.seed=1", bad, "run.tick=1"])
        assert "\n" not in str(e.value) and "http" not in str(e.value)
    with pytest.raises(ValueError, match=r"expected one of .*pet_cpu_64.*found 'nope'"):
        load_config("nope")


def test_missing_mandatory_value():
    with pytest.raises(ValueError, match=r"data\.path.*\?\?\?"):
        load_config("images_cpu")
    assert load_config("images_cpu", ["data.path=images.npz"]).data.path == "images.npz"
    assert OmegaConf.is_missing(load_config("images_cpu", allow_missing=True).data, "path")
    with pytest.raises(ValueError, match="resolved"):
        config_to_dict(load_config("images_cpu", allow_missing=True))


def test_user_config_dir_extends_packaged_configs(tmp_path):
    (tmp_path / "mine.yaml").write_text("defaults:\n  - tiny_test\n  - _self_\nrun:\n  kimg: 0.064\n")
    (tmp_path / "pet_cpu_64.yaml").write_text("defaults:\n  - tiny_test\n  - _self_\nrun:\n  seed: 42\n")
    cfg = load_config("mine", ["run.seed=3"], config_dir=tmp_path)
    assert cfg.run.kimg == 0.064 and cfg.run.seed == 3 and cfg.data.resolution == 16
    assert "mine" in list_configs(tmp_path)
    # A user file shadows the packaged file of the same name.
    assert load_config("pet_cpu_64", config_dir=tmp_path).run.seed == 42
    with pytest.raises(ValueError, match="config_dir"):
        load_config("mine", config_dir=tmp_path / "absent")


@pytest.mark.parametrize(
    ("argv", "name", "folder", "overrides"),
    [
        (["-cn=pet_cpu_64", "run.kimg=5"], "pet_cpu_64", None, ["run.kimg=5"]),
        (["--config-name", "tiny_test", "-cd", "/x"], "tiny_test", "/x", []),
        (
            ["run.seed=1", "--config-name=a", "--config-dir=/y", "~run.desc", "+a.b=2"],
            "a", "/y", ["run.seed=1", "~run.desc", "+a.b=2"],
        ),
        (["-cn", "n", "data.alpha=-3.5"], "n", None, ["data.alpha=-3.5"]),
    ],
)
def test_parse_reference_style_arguments(argv, name, folder, overrides):
    args = parse_config_args(argv)
    assert (args.config_name, args.config_dir, args.overrides, args.help) == (name, folder, overrides, False)


@pytest.mark.parametrize(("argv", "word"), [(["-cn"], "-cn"), (["--bogus"], "--bogus"), (["kimg"], "key=value"),
                                             (["-cp=configs"], "-cp")])
def test_parse_rejects_bad_arguments(argv, word):
    with pytest.raises(ValueError, match=word):
        parse_config_args(argv)


def test_load_from_args():
    cfg, args = load_config_from_args(["-cn=tiny_test", "run.seed=9"])
    assert cfg.run.seed == 9 and args.config_name == "tiny_test"
    assert parse_config_args(["--help"]).help
    with pytest.raises(ValueError, match="tiny_test"):
        load_config_from_args(["run.seed=9"])


def test_config_hash_is_stable_and_sensitive():
    a = config_hash(load_config("tiny_test"))
    assert a == config_hash(load_config("tiny_test"))
    assert re.fullmatch(r"[0-9a-f]{16}", a)
    # The first 16 hex digits of sha256 over the canonical (sorted, compact) JSON.
    assert config_hash({"b": [1, 2], "a": "x"}) == hashlib.sha256(b'{"a":"x","b":[1,2]}').hexdigest()[:16]
    # Key order does not matter; where the run is written does not matter; what is trained does.
    assert config_hash({"b": 1, "a": {"y": 2, "x": 3}}) == config_hash({"a": {"x": 3, "y": 2}, "b": 1})
    assert a == config_hash(load_config("tiny_test", ["run.run_dir=/elsewhere", "run.resume=x.pt"]))
    assert a != config_hash(load_config("tiny_test", ["optimizer.lr_max=0.002"]))
    assert a != config_hash(load_config("tiny_test", ["network.overrides.model_channels=16"]))


def test_save_training_options(tmp_path):
    cfg = load_config("tiny_test")
    path = save_training_options(cfg, tmp_path)
    assert path.name == "training_options.json"
    assert json.loads(path.read_text()) == config_to_dict(cfg)
    assert [p.name for p in tmp_path.iterdir()] == ["training_options.json"]
