from __future__ import annotations

import json
import math
import sys

import pytest
import torch

from petdiff.training.stats import StatsLog, TickStats, cpu_memory_gb, gpu_memory_gb, tee_output


def test_moments_match_closed_form():
    torch.manual_seed(0)
    a, b = torch.randn(100) * 3 + 1, torch.randn(37) * 3 + 1
    stats = TickStats()
    stats.report("Loss/loss", a)
    stats.report("Loss/loss", b)
    stats.report("Progress/kimg", 1.5)
    out = stats.reduce()
    both = torch.cat([a, b]).double()
    assert out["Loss/loss"]["num"] == 137
    assert out["Loss/loss"]["mean"] == pytest.approx(float(both.mean()), rel=1e-12)
    assert out["Loss/loss"]["std"] == pytest.approx(float(both.std(unbiased=False)), rel=1e-9)
    assert out["Progress/kimg"] == {"num": 1.0, "mean": 1.5, "std": 0.0}
    assert stats.reduce() == {}  # reset after each tick


def test_rejects_bad_name():
    with pytest.raises(ValueError, match="name"):
        TickStats().report("", 1.0)


def test_stats_jsonl_one_line_per_tick(tmp_path):
    log = StatsLog(tmp_path, tensorboard=False)
    log.write({"Loss/loss": {"num": 2, "mean": 0.5, "std": 0.1}}, kimg=1.0, timestamp=10.0)
    log.write({"Loss/loss": {"num": 0, "mean": math.nan, "std": math.nan}}, kimg=2.0, timestamp=11.0)
    log.close()
    lines = (tmp_path / "stats.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"Loss/loss": {"num": 2, "mean": 0.5, "std": 0.1}, "kimg": 1.0, "timestamp": 10.0},
        {"Loss/loss": {"num": 0, "mean": None, "std": None}, "kimg": 2.0, "timestamp": 11.0},
    ]
    with pytest.raises(ValueError, match="run_dir"):
        StatsLog(tmp_path / "missing")


def test_tensorboard_is_optional(tmp_path):
    # Works whether or not tensorboard is installed; when it is, an event file appears.
    log = StatsLog(tmp_path, tensorboard=True)
    log.write({"Loss/loss": {"num": 1, "mean": 0.5, "std": 0.0}}, kimg=0.5)
    log.close()
    assert (tmp_path / "stats.jsonl").is_file()


def test_tee_output_copies_and_restores(tmp_path, capsys):
    before = sys.stdout
    with tee_output(tmp_path / "log.txt"):
        print("tick 0")
        print("warning", file=sys.stderr)
    print("after")
    assert sys.stdout is before
    assert (tmp_path / "log.txt").read_text() == "tick 0\nwarning\n"
    captured = capsys.readouterr()
    assert captured.out == "tick 0\nafter\n" and captured.err == "warning\n"


def test_memory_reporting():
    import mmap

    before = cpu_memory_gb()
    # 64 MiB of fresh anonymous pages, touched: unlike a tensor, they cannot come from heap memory that earlier
    # tests freed but the allocator kept resident, so the resident set must grow by them.
    block = mmap.mmap(-1, 64 * 2**20)
    block.write(b"\x01" * (64 * 2**20))
    after = cpu_memory_gb()
    assert before > 0
    assert after - before > 0.03  # at least half of the 1/16 GiB shows up in the resident set
    block.close()
    assert gpu_memory_gb("cpu") == {}
