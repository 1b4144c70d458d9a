from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from petdiff.data.sampler import InfiniteSampler
from petdiff.training.checkpoint import (
    load_network,
    load_training_state,
    read_network_metadata,
    restore_training_state,
    save_network,
    save_training_state,
    sidecar_path,
    snapshot_name,
    training_state_name,
)
from petdiff.training.ema import EMA


class Net(torch.nn.Module):
    def __init__(self, channels: int = 4, depth: int = 2):
        super().__init__()
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(channels if i else 1, channels, 3) for i in range(depth))
        self.register_buffer("sigma_data", torch.tensor(0.5))


def build(arch: dict) -> torch.nn.Module:
    return Net(**arch)


def make_snapshot(tmp_path: Path, arch=None, **meta) -> tuple[Path, Net]:
    arch = arch or {"channels": 4, "depth": 2}
    torch.manual_seed(0)
    net = Net(**arch)
    path = tmp_path / snapshot_name(12)
    save_network(path, net, arch, {"kimg": 12, "config_hash": "abc", "normalization": {"scale": 2.0}, **meta})
    return path, net


class Arbitrary:
    def __init__(self):
        self.x = 1


class Touch:
    """Unpickling this would create a file: proves that loading runs no code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# ---- names ---------------------------------------------------------------------------------------------------


def test_file_names():
    assert snapshot_name(12) == "network-snapshot-000012.safetensors"
    assert training_state_name(600) == "training-state-000600.pt"
    assert sidecar_path("a/network-snapshot-000012.safetensors") == Path("a/network-snapshot-000012.json")


# ---- network snapshots ---------------------------------------------------------------------------------------


def test_network_round_trip(tmp_path):
    path, net = make_snapshot(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["network-snapshot-000012.json", path.name]
    side = json.loads(sidecar_path(path).read_text())
    assert side["format"] == "petdiff-network" and side["version"] == 1
    assert side["architecture"] == {"channels": 4, "depth": 2}
    loaded, meta = load_network(path, build)
    assert meta["kimg"] == 12 and meta["config_hash"] == "abc" and meta["normalization"] == {"scale": 2.0}
    assert not loaded.training
    for (name, a), (_, b) in zip(net.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    # The sidecar path works as well as the weights path.
    loaded2, _ = load_network(sidecar_path(path), build)
    assert torch.equal(loaded2.convs[0].weight, net.convs[0].weight)


def test_network_with_tied_weights_and_any_callable(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(3, 3, bias=False), torch.nn.Linear(3, 3, bias=False))
    net[1].weight = net[0].weight

    def tied(arch):
        m = torch.nn.Sequential(*(torch.nn.Linear(arch["n"], arch["n"], bias=False) for _ in range(2)))
        m[1].weight = m[0].weight
        return m

    save_network(tmp_path / "n.safetensors", net, {"n": 3})
    loaded, _ = load_network(tmp_path / "n.safetensors", tied)
    assert torch.equal(loaded[1].weight, net[0].weight)


def test_missing_sidecar(tmp_path):
    path, _ = make_snapshot(tmp_path)
    sidecar_path(path).unlink()
    with pytest.raises(ValueError, match=r"network-snapshot-000012\.json.*sidecar not found"):
        load_network(path, build)


def test_missing_weights(tmp_path):
    path, _ = make_snapshot(tmp_path)
    path.unlink()
    with pytest.raises(ValueError, match="weights file not found"):
        load_network(path, build)


@pytest.mark.parametrize("keep", [0, 7, 100, -10])
def test_truncated_safetensors(tmp_path, keep):
    path, _ = make_snapshot(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    with pytest.raises(ValueError, match=rf"{path.name}.*(truncated or corrupt)"):
        load_network(path, build)


def test_corrupted_bytes_caught_by_checksum(tmp_path):
    path, _ = make_snapshot(tmp_path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # inside the last tensor: the header still parses
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        load_network(path, build)


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("{not json", "unreadable JSON"),
        ('{"format": "something-else", "version": 1, "architecture": {}}', "format"),
        ('{"format": "petdiff-network", "version": 99, "architecture": {}}', "version"),
        ('{"format": "petdiff-network", "version": 1, "architecture": [1]}', "architecture"),
        ("[1, 2]", "format"),
    ],
)
def test_bad_sidecar(tmp_path, text, word):
    path, _ = make_snapshot(tmp_path)
    sidecar_path(path).write_text(text)
    with pytest.raises(ValueError, match=word):
        read_network_metadata(path)


def test_architecture_mismatch_lists_names_and_shapes(tmp_path):
    path, _ = make_snapshot(tmp_path)
    with pytest.raises(ValueError) as info:
        load_network(path, lambda arch: Net(channels=8, depth=3))
    msg = str(info.value)
    assert path.name in msg
    assert "2 tensor(s) missing" in msg and "convs.2.weight (8, 8, 3, 3)" in msg
    assert "shape mismatch" in msg and "convs.0.weight: network (8, 1, 3, 3) vs file (4, 1, 3, 3)" in msg
    expected = r"2 unexpected tensor\(s\) in the file: convs\.1\.bias \(4,\), convs\.1\.weight"
    with pytest.raises(ValueError, match=expected):
        load_network(path, lambda arch: Net(channels=4, depth=1))


def test_build_fn_must_return_a_module(tmp_path):
    path, _ = make_snapshot(tmp_path)
    with pytest.raises(ValueError, match="build_fn"):
        load_network(path, lambda arch: None)


def test_save_network_rejects_bad_metadata_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        save_network(tmp_path / "a.safetensors", Net(), {}, {"format": "x"})
    with pytest.raises(ValueError, match="JSON"):
        save_network(tmp_path / "a.safetensors", Net(), {}, {"kimg": float("nan")})
    with pytest.raises(ValueError, match="JSON"):
        save_network(tmp_path / "a.safetensors", Net(), {}, {"obj": object()})
    with pytest.raises(ValueError, match="safetensors"):
        save_network(tmp_path / "a.pkl", Net(), {})
    assert list(tmp_path.iterdir()) == []


# ---- training states -----------------------------------------------------------------------------------------


def make_training(seed: int = 0):
    torch.manual_seed(seed)
    net = Net()
    ema = EMA(net, halflife_kimg=0.1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss = sum(p.square().sum() for p in net.parameters())
    loss.backward()
    opt.step()
    ema.update(net, cur_nimg=8, batch_size=8)
    return net, ema, opt


def test_training_state_round_trip_restores_everything(tmp_path):
    net, ema, opt = make_training(0)
    sampler = InfiniteSampler(10, seed=3)
    it = iter(sampler)
    [next(it) for _ in range(7)]
    gen = torch.Generator().manual_seed(11)
    torch.rand(3, generator=gen)
    config = {"run": {"kimg": 1, "batch": 8}, "optimizer": {"betas": [0.9, 0.999]}}
    path = save_training_state(
        tmp_path / training_state_name(0), net=net, ema=ema, optimizer=opt, nimg=8, config=config,
        sampler=sampler, generators={"noise": gen}, extra={"tick": 1},
    )
    expected_cpu = torch.rand(4)
    expected_gen = torch.rand(4, generator=gen)
    expected_next = next(it)

    net2, ema2, opt2 = make_training(1)
    sampler2 = InfiniteSampler(10, seed=3)
    gen2 = torch.Generator().manual_seed(999)
    gens = {"noise": gen2}
    state = restore_training_state(path, net=net2, ema=ema2, optimizer=opt2, sampler=sampler2, generators=gens)
    assert state["nimg"] == 8 and state["kimg"] == 0.008 and state["config"] == config and state["extra"] == {"tick": 1}
    for a, b in zip(net.parameters(), net2.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(ema.module.parameters(), ema2.module.parameters()):
        assert torch.equal(a, b)
    assert opt2.state_dict()["state"][0]["exp_avg"].equal(opt.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(torch.rand(4), expected_cpu)
    assert torch.equal(torch.rand(4, generator=gen2), expected_gen)
    assert next(iter(sampler2)) == expected_next


def test_training_state_refuses_pickled_objects(tmp_path):
    path = tmp_path / "training-state-000001.pt"
    torch.save({"format": "petdiff-training-state", "obj": Arbitrary()}, path)
    with pytest.raises(ValueError, match="refused"):
        load_training_state(path)


def test_training_state_loading_runs_no_code(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "training-state-000002.pt"
    with open(path, "wb") as f:
        pickle.dump({"x": Touch(marker)}, f, protocol=2)
    with pytest.raises(ValueError, match="refused"):
        load_training_state(path)
    assert not marker.exists()


def test_truncated_training_state(tmp_path):
    net, ema, opt = make_training()
    path = tmp_path / "training-state-000000.pt"
    save_training_state(path, net=net, ema=ema, optimizer=opt, nimg=0, config={})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_training_state(path)


def test_training_state_rejects_non_plain_data_before_writing(tmp_path):
    net, ema, opt = make_training()
    path = tmp_path / "training-state-000000.pt"
    with pytest.raises(ValueError, match=r"config\.scale.*numpy"):
        save_training_state(path, net=net, ema=ema, optimizer=opt, nimg=0, config={"scale": np.float64(1.0)})
    with pytest.raises(ValueError, match="nimg"):
        save_training_state(path, net=net, ema=ema, optimizer=opt, nimg=-1, config={})
    assert not path.exists()


def test_training_state_format_checks(tmp_path):
    path = tmp_path / "training-state-000003.pt"
    torch.save({"format": "other"}, path)
    with pytest.raises(ValueError, match="format"):
        load_training_state(path)
    torch.save({"format": "petdiff-training-state", "version": 1, "nimg": 0}, path)
    with pytest.raises(ValueError, match="missing"):
        load_training_state(path)
    with pytest.raises(ValueError, match="not found"):
        load_training_state(tmp_path / "nope.pt")


def test_restore_rejects_other_architecture(tmp_path):
    net, ema, opt = make_training()
    path = tmp_path / "training-state-000000.pt"
    save_training_state(path, net=net, ema=ema, optimizer=opt, nimg=0, config={})
    other = Net(channels=8)
    with pytest.raises(ValueError, match=r"training-state-000000\.pt.*'net'.*shape"):
        restore_training_state(path, net=other, ema=EMA(other, 1.0), optimizer=torch.optim.Adam(other.parameters()))


@pytest.mark.parametrize("blob", [b"\x80\x02\x86.", b"\x80\x02h\x05.", b"\x80\x02]q\x00.", b"PK\x03\x04junk"])
def test_junk_bytes_are_not_a_training_state(tmp_path, blob):
    path = tmp_path / "training-state-000000.pt"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match=r"training-state-000000\.pt: not a petdiff training state"):
        load_training_state(path)


def test_random_files_are_never_anything_but_a_value_error(tmp_path):
    # ≈ 7 % of random files used to escape as IndexError / KeyError from inside the unpickler.
    rng = np.random.default_rng(0)
    path = tmp_path / "training-state-000000.pt"
    for _ in range(300):
        path.write_bytes(rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8).tobytes())
        with pytest.raises(ValueError, match="not a petdiff training state"):
            load_training_state(path)


def _state_with(tmp_path, **fields) -> Path:
    net, ema, opt = make_training()
    path = tmp_path / "training-state-000000.pt"
    save_training_state(path, net=net, ema=ema, optimizer=opt, nimg=0, config={})
    state = torch.load(path, weights_only=True)
    torch.save({**state, **fields}, path)
    return path


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"nimg": "12"}, r"'nimg' to be an integer >= 0, found '12'"),
        ({"net": [1, 2]}, r"'net' to be a dict of tensors, found list"),
        ({"ema": {"w": 3}}, r"'ema' to be a dict of tensors"),
        ({"optimizer": None}, r"'optimizer' to be a dict, found NoneType"),
    ],
)
def test_malformed_fields_are_named(tmp_path, fields, words):
    with pytest.raises(ValueError, match=words):
        load_training_state(_state_with(tmp_path, **fields))


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"optimizer": {"state": {}, "param_groups": 5}}, "optimizer"),
        ({"optimizer": {"state": 3, "param_groups": []}}, "optimizer"),
        ({"rng": {"torch_cpu": torch.zeros(3), "generators": {}}}, "rng"),
    ],
)
def test_corrupt_fields_fail_to_restore_with_a_value_error_naming_them(tmp_path, fields, key):
    path = _state_with(tmp_path, **fields)
    net, ema, opt = make_training(1)
    with pytest.raises(ValueError, match=rf"training-state-000000\.pt: field '{key}'"):
        restore_training_state(path, net=net, ema=ema, optimizer=opt)
