import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from petdiff.models import build_network
from petdiff.training import checkpoint, config, rundir, signals
from petdiff.training.loop import train
from tests.conftest import save_tiny_scan_pairs


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PETDIFF_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "matrix-cache"))


def _cfg(tmp_path, *overrides):
    return config.load_config("tiny_test", [f"run.run_dir={tmp_path / 'runs'}", *overrides])


def test_pet_run_writes_snapshot_state_and_stats(tmp_path):
    run_dir = train(_cfg(tmp_path), quiet=True)
    files = sorted(p.name for p in run_dir.iterdir())
    assert "training_options.json" in files and "log.txt" in files
    lines = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and all(np.isfinite(rec["loss"]["mean"]) for rec in lines)
    assert lines[-1]["kimg"] == pytest.approx(0.032)
    snapshot = run_dir / checkpoint.snapshot_name(0)
    net, meta = checkpoint.load_network(snapshot, build_network)
    assert meta["mode"] == "pet" and meta["resolution"] == 16 and meta["cond_channels"] == 1
    assert meta["normalization"] == "quantitative" and meta["target"] == "full_dose"
    state = checkpoint.load_training_state(run_dir / checkpoint.training_state_name(0))
    # The snapshot holds the EMA weights bit for bit.
    for name, value in net.state_dict().items():
        assert torch.equal(value, state["ema"][name]), name
    assert state["nimg"] == 32


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path):
    full = train(_cfg(tmp_path), quiet=True)
    part = train(_cfg(tmp_path), quiet=True, max_ticks=2)
    part_state = checkpoint.load_training_state(part / checkpoint.training_state_name(0))
    assert part_state["nimg"] == 16
    resumed = train(_cfg(tmp_path, f"run.resume={part}"), quiet=True)
    a = checkpoint.load_training_state(full / checkpoint.training_state_name(0))
    b = checkpoint.load_training_state(resumed / checkpoint.training_state_name(0))
    assert a["nimg"] == b["nimg"] == 32
    for key in ("net", "ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name}"
    assert len({full, part, resumed}) == 3  # never overwrites a run


class _StopAfter(signals.StopRequest):
    """A stop request that turns on at the n-th poll, i.e. as if SIGINT arrived during step n."""

    def __init__(self, step: int):
        super().__init__()
        self._step, self._polls = step, 0

    @property
    def requested(self) -> bool:
        self._polls += 1
        return self._polls >= self._step

    @requested.setter
    def requested(self, value: bool) -> None:
        pass


def _assert_states_equal(a: dict, b: dict) -> None:
    assert a["nimg"] == b["nimg"]
    for key in ("net", "ema"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name}"
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys() and a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    for i in sa:
        for k in sa[i]:
            assert torch.equal(sa[i][k], sb[i][k]), f"optimizer.state[{i}].{k}"


@pytest.mark.parametrize("stop_step", [5, 7])
def test_stop_in_mid_tick_resumes_bitwise_equal(tmp_path, monkeypatch, stop_step):
    # tiny_test: 8 steps of batch 4, 2 steps per tick; steps 5 and 7 end in the middle of a tick.
    full = train(_cfg(tmp_path), quiet=True)
    with monkeypatch.context() as m:
        m.setattr(signals, "stop_on_signals", lambda: contextlib.nullcontext(_StopAfter(stop_step)))
        part = train(_cfg(tmp_path), quiet=True)
    assert checkpoint.load_training_state(rundir.find_latest_state(part))["nimg"] == 4 * stop_step
    resumed = train(_cfg(tmp_path, f"run.resume={part}"), quiet=True)
    a = checkpoint.load_training_state(full / checkpoint.training_state_name(0))
    b = checkpoint.load_training_state(resumed / checkpoint.training_state_name(0))
    assert a["nimg"] == 32
    _assert_states_equal(a, b)
    # The resumed run logs the same tick boundaries as the uninterrupted one (plus the partial tick before the stop).
    kimg = [json.loads(line)["kimg"] for line in (resumed / "stats.jsonl").read_text().splitlines()]
    assert kimg == [k for k in (0.016, 0.024, 0.032) if k > 0.004 * stop_step]


def test_resume_removes_temporaries_a_killed_state_write_left(tmp_path, capsys):
    part = train(_cfg(tmp_path), quiet=True, max_ticks=2)
    stale = part / ".training-state-000000.pt.x1y2z3w4.tmp"
    stale.write_bytes(b"half a state")
    resumed = train(_cfg(tmp_path, f"run.resume={part}"))
    assert not stale.exists() and (part / checkpoint.training_state_name(0)).is_file()
    assert f"removed 1 stale temporary file(s) from {part}" in capsys.readouterr().out
    assert not [p for p in resumed.iterdir() if p.name.endswith(".tmp")]


def test_images_run_with_pair_file_free_dataset(tmp_path):
    images = np.random.default_rng(0).random((6, 16, 16)).astype(np.float32)
    np.savez(tmp_path / "imgs.npz", images=images)
    cfg = _cfg(tmp_path, "data.mode=images", f"data.path={tmp_path / 'imgs.npz'}", "network.overrides.cond_channels=0")
    run_dir = train(cfg, quiet=True)
    _, meta = checkpoint.load_network(run_dir / checkpoint.snapshot_name(0), build_network)
    assert meta["mode"] == "images" and meta["cond_channels"] == 0


def test_bad_config_values_are_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"run\.batch"):
        train(_cfg(tmp_path, "run.batch=0"), quiet=True)
    with pytest.raises(ValueError, match=r"run\.resume"):
        train(_cfg(tmp_path, f"run.resume={tmp_path / 'nothing-here'}"), quiet=True)
    with pytest.raises(ValueError, match=r"data\.target"):
        train(_cfg(tmp_path, "data.target=noise"), quiet=True)


def test_train_command_reports_unknown_keys(tmp_path, capsys):
    from petdiff.cli import main

    assert main(["train", "-cn=tiny_test", "run.nonsense=1"]) == 2
    assert "run.nonsense" in capsys.readouterr().err


def test_train_command_refuses_a_file_as_run_dir(tmp_path, capsys):
    from petdiff.cli import main

    (tmp_path / "taken").write_text("a file")
    assert main(["train", "-cn=tiny_test", f"run.run_dir={tmp_path / 'taken'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run.run_dir" in err and "found a file" in err and "Traceback" not in err


def test_two_process_gloo_training_keeps_ranks_identical(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not installed")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        torchrun,
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "petdiff.train",
        "-cn=tiny_test",
        f"run.run_dir={tmp_path / 'runs'}",
        "run.kimg=0.016",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "weights identical on all 2 ranks" in result.stdout
    run_dir = next((tmp_path / "runs").iterdir())
    lines = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert all(np.isfinite(rec["loss"]["mean"]) for rec in lines)
    assert lines[0]["loss"]["num"] == 8  # a tick = 2 steps x batch 4, both ranks' samples reduced together


def test_train_command_refuses_a_junk_resume_file_in_one_line(tmp_path, capsys):
    from petdiff.cli import main

    junk = tmp_path / "training-state-000000.pt"
    junk.write_bytes(b"\x80\x02h\x05.")
    assert main(["train", "-cn=tiny_test", f"run.run_dir={tmp_path / 'runs'}", f"run.resume={junk}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{junk}: not a petdiff training state" in err


def test_regression_then_residual_runs_make_a_loadable_pair(tmp_path):
    from petdiff.inference.enhancers import PairEnhancer
    from petdiff.inference.model import load_pair
    from petdiff.inference.volume import enhance_slices
    from petdiff.models.regression import RegressionUNet

    pair = ["data.target=truth", "+data.dose_labels=true", "+data.pixel_size_mm=4.0"]
    mean_dir = train(_cfg(tmp_path, *pair, "network.preset=pet_mean_64", "+loss.kind=regression",
                          "run.desc=mean"), quiet=True)
    mean_snapshot = mean_dir / checkpoint.snapshot_name(0)
    mean_net, mean_meta = checkpoint.load_network(mean_snapshot, build_network)
    assert isinstance(mean_net, RegressionUNet) and mean_meta["role"] == "mean"
    assert mean_meta["target"] == "truth" and mean_meta["data"]["dose_labels"] is True
    assert mean_meta["label_dim"] == 2 and mean_meta["data"]["pixel_size_mm"] == 4.0
    losses = [json.loads(line)["loss"]["mean"] for line in (mean_dir / "stats.jsonl").read_text().splitlines()]
    assert all(np.isfinite(losses))

    residual_dir = train(_cfg(tmp_path, *pair, "network.preset=pet_residual_64", "+loss.kind=residual",
                              f"+loss.mean_network={mean_snapshot}", "run.desc=residual"), quiet=True)
    residual_snapshot = residual_dir / checkpoint.snapshot_name(0)
    meta = checkpoint.read_network_metadata(residual_snapshot)
    assert meta["role"] == "residual" and meta["cond_channels"] == 2 and meta["residual_std"] > 0
    assert meta["mean_network"]["sha256"] == mean_meta["sha256"]
    mean, residual = load_pair(residual_snapshot)
    assert mean.path == mean_snapshot
    enhancer = PairEnhancer(mean, residual)
    out = enhance_slices(enhancer, torch.rand(2, 1, 16, 16) * 50, 0.25, enhancer.settings("posterior", samples=2))
    assert bool(torch.isfinite(out.mean).all()) and float(out.mean.min()) >= 0


def test_a_residual_run_needs_a_regression_snapshot(tmp_path):
    with pytest.raises(ValueError, match=r"loss\.mean_network"):
        train(_cfg(tmp_path, "network.preset=pet_residual_64", "+loss.kind=residual", "+data.dose_labels=true"),
              quiet=True)
    plain = train(_cfg(tmp_path, "run.desc=plain"), quiet=True) / checkpoint.snapshot_name(0)
    with pytest.raises(ValueError, match="role 'mean'"):
        train(_cfg(tmp_path, "network.preset=pet_residual_64", "+loss.kind=residual", "+data.dose_labels=true",
                   f"+loss.mean_network={plain}"), quiet=True)
    with pytest.raises(ValueError, match=r"loss\.kind"):
        train(_cfg(tmp_path, "+loss.kind=adversarial"), quiet=True)


def test_scan_runs_make_a_2p5d_regression_a_residual_and_a_count_level_estimator(tmp_path):
    from petdiff.models.count_level import CountLevelNet
    from petdiff.models.regression import RegressionUNet

    pairs = save_tiny_scan_pairs(tmp_path / "scans.npz")
    common = ["network.overrides.model_channels=8", "data.resolution=16", f"data.path={pairs}", "run.kimg=0.016",
              "run.batch=4", "run.tick=0.008", "run.snapshot_ticks=2", "run.device=cpu", f"run.run_dir={tmp_path}"]
    tiny = [*common, "network.overrides.channel_mult=[1,2]", "network.overrides.num_blocks=1"]
    mean_dir = train(config.load_config("pet_regression_scan", [*tiny, "run.desc=reg"]), quiet=True)
    snapshot = mean_dir / checkpoint.snapshot_name(0)
    net, meta = checkpoint.load_network(snapshot, build_network)
    assert isinstance(net, RegressionUNet) and net.cond_channels == 3 and meta["label_dim"] == 1
    assert meta["data"]["context"] == 1 and meta["data"]["dose_labels"] == "density"
    assert meta["data"]["pixel_size_mm"] is None and meta["data"]["pixel_size_range_mm"] == [1.5, 4.5]
    assert net(torch.zeros(1, 3, 40, 24), class_labels=torch.zeros(1, 1)).shape == (1, 1, 40, 24)  # any size

    residual_dir = train(config.load_config("pet_residual_scan", [*tiny, "run.desc=res",
                                                                  f"loss.mean_network={snapshot}"]), quiet=True)
    meta = checkpoint.read_network_metadata(residual_dir / checkpoint.snapshot_name(0))
    assert meta["role"] == "residual" and meta["cond_channels"] == 4 and meta["residual_std"] > 0

    count_dir = train(config.load_config("pet_count_level_scan", [*common, "run.desc=count"]), quiet=True)
    estimator, meta = checkpoint.load_network(count_dir / checkpoint.snapshot_name(0), build_network)
    assert isinstance(estimator, CountLevelNet) and meta["role"] == "count_level"
    losses = [json.loads(line)["loss"]["mean"] for line in (count_dir / "stats.jsonl").read_text().splitlines()]
    assert all(np.isfinite(losses))


def test_a_density_label_run_refuses_a_pair_file_without_densities(tmp_path):
    old = tmp_path / "old.npz"
    from petdiff.data.pair_file import write_pairs
    from petdiff.data.pairs import PairSimulator
    from petdiff.phantoms import procedural_phantoms
    from petdiff.physics import Projector

    sim = PairSimulator(Projector(16), n_iter=2)
    write_pairs(old, iter([sim(procedural_phantoms(8, 16, generator=0).activity)]), 8, {"resolution": 16})
    with pytest.raises(ValueError, match="density"):
        train(config.load_config("pet_regression_scan", [f"data.path={old}", "data.resolution=16", "run.kimg=0.004",
                                                         "run.batch=4", f"run.run_dir={tmp_path}",
                                                         "network.overrides.model_channels=8"]), quiet=True)


def test_a_consistency_run_distils_a_residual_into_a_one_pass_sampler(tmp_path):
    from petdiff.inference import enhance_slices, load_enhancer

    pair = ["data.target=truth", "+data.dose_labels=true", "+data.pixel_size_mm=4.0"]
    mean_dir = train(_cfg(tmp_path, *pair, "network.preset=pet_mean_64", "+loss.kind=regression", "run.desc=mean"),
                     quiet=True)
    mean_snapshot = mean_dir / checkpoint.snapshot_name(0)
    residual_dir = train(_cfg(tmp_path, *pair, "network.preset=pet_residual_64", "+loss.kind=residual",
                              f"+loss.mean_network={mean_snapshot}", "run.desc=residual"), quiet=True)
    teacher = residual_dir / checkpoint.snapshot_name(0)
    teacher_meta = checkpoint.read_network_metadata(teacher)
    student_dir = train(_cfg(tmp_path, *pair, "network.preset=pet_residual_64", "+loss.kind=consistency",
                             f"+loss.teacher={teacher}", "sampling.sampler=consistency", "sampling.steps=1",
                             "run.desc=consistency"), quiet=True)
    losses = [json.loads(line)["loss"]["mean"] for line in (student_dir / "stats.jsonl").read_text().splitlines()]
    assert all(np.isfinite(losses))
    student = student_dir / checkpoint.snapshot_name(0)
    meta = checkpoint.read_network_metadata(student)
    assert meta["role"] == "residual" and meta["residual_std"] == teacher_meta["residual_std"]
    assert meta["mean_network"]["sha256"] == teacher_meta["mean_network"]["sha256"]
    assert meta["teacher"]["sha256"] == teacher_meta["sha256"] and meta["sampling"]["sampler"] == "consistency"
    enhancer = load_enhancer(student)  # the student pairs with the teacher's regression network
    settings = enhancer.settings("posterior", samples=2)
    assert settings.sampler == "consistency" and settings.options["num_steps"] == 1
    calls = []
    hook = enhancer.residual_model.net.register_forward_hook(lambda m, a, out: calls.append(out.shape[0]))
    out = enhance_slices(enhancer, torch.rand(2, 1, 16, 16) * 50, 0.25, settings)
    hook.remove()
    assert sum(calls) == 2 * 2  # one pass per sample
    assert bool(torch.isfinite(out.std).all())
    with pytest.raises(ValueError, match=r"loss\.teacher"):
        train(_cfg(tmp_path, *pair, "network.preset=pet_residual_64", "+loss.kind=consistency"), quiet=True)

