"""Distributed-data-parallel helpers that also work as a single process without torchrun.

Under torchrun the environment holds RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without it the
run is rank 0 of 1, no process group is created and every collective below is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its rank, the number of processes, its rank on the node and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that writes files and prints)."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    """An integer environment variable (torchrun's), or `default` when unset."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}: expected an integer, found {raw!r}") from None


def select_device(local_rank: int = 0, override: str | torch.device | None = None) -> torch.device:
    """cuda:LOCAL_RANK when CUDA is available, else cpu; `override` ('cpu', 'cuda', 'cuda:1', ...) wins."""
    if override is not None:
        try:
            device = torch.device(override)
        except (RuntimeError, TypeError):
            raise ValueError(f"device: expected a torch device such as 'cpu' or 'cuda:0', found {override!r}") from None
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"device: {override!r} was requested but CUDA is not available on this machine")
            if device.index is None:
                device = torch.device("cuda", local_rank)
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_distributed(device: str | torch.device | None = None, backend: str | None = None) -> DistInfo:
    """Read torchrun's variables and join the process group (nccl on CUDA, gloo on CPU) when WORLD_SIZE > 1."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world_size < 1:
        raise ValueError(f"environment variable WORLD_SIZE: expected an integer >= 1, found {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"environment variable RANK: expected 0 <= RANK < WORLD_SIZE = {world_size}, found {rank}")
    if local_rank < 0:
        raise ValueError(f"environment variable LOCAL_RANK: expected an integer >= 0, found {local_rank}")
    device = select_device(local_rank, device)
    if device.type == "cuda":
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device: expected one of {torch.cuda.device_count()} CUDA device(s), found {device}")
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if not os.environ.get(name):
                raise ValueError(f"environment variable {name}: expected to be set (by torchrun) when WORLD_SIZE > 1")
        backend = backend or ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def shutdown() -> None:
    """Leave the process group (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """True when a process group with more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def print0(*args: Any, **kwargs: Any) -> None:
    """print() on rank 0 only."""
    if get_rank() == 0:
        print(*args, **kwargs)


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Σ over ranks, in place; returns `tensor` (unchanged in a single process)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """(1/W)·Σ over ranks, in place; returns `tensor`."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


def any_rank(flag: bool, device: str | torch.device = "cpu") -> bool:
    """True when `flag` is true on at least one rank, so every rank takes the same branch (e.g. stop requested)."""
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    return bool(all_reduce_sum(value).item() > 0)


def rank_seed(seed: int, rank: int | None = None, world_size: int | None = None) -> int:
    """Per-rank seed s·W + r: distinct across the ranks of a run, reproducible from the run's seed."""
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, found {seed!r}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank: expected 0 <= rank < world_size = {world_size}, found {rank}")
    return (seed * world_size + rank) % (1 << 63)
