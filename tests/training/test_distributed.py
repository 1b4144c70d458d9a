from __future__ import annotations

import json
import os
import traceback

import pytest
import torch

from petdiff.data.sampler import InfiniteSampler
from petdiff.training import distributed as ddp
from petdiff.training.stats import TickStats
from tests.conftest import run_ranks

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def no_torchrun(monkeypatch):
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)


def test_single_process_without_torchrun(no_torchrun, capsys):
    info = ddp.init_distributed(device="cpu")
    assert (info.rank, info.world_size, info.local_rank, info.device) == (0, 1, 0, torch.device("cpu"))
    assert info.is_main and not ddp.is_distributed()
    assert not torch.distributed.is_initialized()
    x = torch.tensor([2.0, 3.0])
    assert ddp.all_reduce_sum(x) is x and x.tolist() == [2.0, 3.0]
    assert ddp.all_reduce_mean(x).tolist() == [2.0, 3.0]
    assert ddp.any_rank(True) and not ddp.any_rank(False)
    ddp.barrier()
    ddp.print0("hello")
    assert capsys.readouterr().out == "hello\n"
    ddp.shutdown()


def test_world_size_one_under_torchrun_needs_no_group(monkeypatch):
    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    info = ddp.init_distributed(device="cpu")
    assert info.world_size == 1 and not torch.distributed.is_initialized()


@pytest.mark.parametrize(
    ("env", "word"),
    [
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK"),
        ({"WORLD_SIZE": "0"}, "WORLD_SIZE"),
        ({"LOCAL_RANK": "-1"}, "LOCAL_RANK"),
        ({"WORLD_SIZE": "2", "RANK": "1"}, "MASTER_ADDR"),
    ],
)
def test_bad_environment(no_torchrun, monkeypatch, env, word):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=word):
        ddp.init_distributed(device="cpu")


def test_device_selection():
    assert ddp.select_device(0, "cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert ddp.select_device(1) == torch.device("cuda", 1)
        assert ddp.select_device(1, "cuda") == torch.device("cuda", 1)
    else:
        assert ddp.select_device(1) == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            ddp.select_device(0, "cuda")
    with pytest.raises(ValueError, match="device"):
        ddp.select_device(0, "quantum:3")


def test_rank_seed():
    seeds = {ddp.rank_seed(s, r, 4) for s in range(10) for r in range(4)}
    assert len(seeds) == 40  # s·W + r is injective for a fixed world size
    assert ddp.rank_seed(5, 2, 4) == 22
    assert ddp.rank_seed(5) == 5  # single process: rank 0 of 1
    with pytest.raises(ValueError, match="rank"):
        ddp.rank_seed(1, 4, 4)
    with pytest.raises(ValueError, match="seed"):
        ddp.rank_seed(-1, 0, 1)


# ---- two real gloo processes ---------------------------------------------------------------------------------


def _worker(rank: int, port: int, out_dir: str) -> None:
    try:
        os.environ.update(
            RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
        )
        torch.set_num_threads(1)
        info = ddp.init_distributed(device="cpu")
        total = ddp.all_reduce_sum(torch.tensor([float(rank + 1)])).item()
        mean = ddp.all_reduce_mean(torch.tensor([float(rank + 1)])).item()
        stop = ddp.any_rank(rank == 1)
        stats = TickStats()
        stats.report("Loss/loss", torch.arange(3.0) + 10 * rank)  # rank 0: 0,1,2; rank 1: 10,11,12
        if rank == 0:
            stats.report("Timing/sec", 4.0)  # reported on rank 0 only
        reduced = stats.reduce()
        sampler = InfiniteSampler(7, rank=info.rank, world_size=info.world_size, seed=1)
        it = iter(sampler)
        indices = [next(it) for _ in range(7)]
        ddp.barrier()
        result = {"total": total, "mean": mean, "stop": stop, "stats": reduced, "indices": indices}
        ddp.shutdown()
    except Exception:
        result = {"error": traceback.format_exc()}
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)


def test_two_gloo_ranks(tmp_path):
    results = run_ranks(_worker, tmp_path)
    for r in results:
        assert "error" not in r, r.get("error")
        assert r["total"] == 3.0 and r["mean"] == 1.5 and r["stop"] is True
        loss = r["stats"]["Loss/loss"]
        values = torch.tensor([0.0, 1, 2, 10, 11, 12], dtype=torch.float64)
        assert loss["num"] == 6
        assert loss["mean"] == pytest.approx(float(values.mean()))
        assert loss["std"] == pytest.approx(float(values.std(unbiased=False)))
        assert r["stats"]["Timing/sec"] == {"num": 1.0, "mean": 4.0, "std": 0.0}
    # Together the two ranks covered the first pass (7 indices) exactly once, plus the start of the second.
    first_pass = [results[p % 2]["indices"][p // 2] for p in range(7)]
    assert sorted(first_pass) == list(range(7))
