"""Per-tick training statistics: running moments of named scalars (summed over DDP ranks) and their outputs.

Outputs: one JSON line per tick in stats.jsonl, TensorBoard scalars when tensorboard is installed, a log.txt copy
of everything printed, and process memory figures. No module-level state: each run owns its collector.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import resource
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.distributed as dist

from petdiff.training.distributed import all_reduce_sum, is_distributed


class TickStats:
    """Per name: n, Σx, Σx²; `reduce()` sums them over ranks: num = n, mean = Σx/n, std = √(Σx²/n − mean²)."""

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)  # where the all-reduce runs: a CUDA device with nccl, cpu with gloo
        self._moments: dict[str, torch.Tensor] = {}

    def report(self, name: str, value: float | torch.Tensor) -> None:
        """Add every element of `value` to the statistics of `name` (no host sync for tensors)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: expected a non-empty string, found {name!r}")
        x = torch.as_tensor(value).detach().flatten().to(torch.float64)
        n = torch.tensor(float(x.numel()), dtype=torch.float64, device=x.device)
        moments = torch.stack([n, x.sum(), x.square().sum()])
        if name in self._moments:
            self._moments[name] += moments.to(self._moments[name].device)
        else:
            self._moments[name] = moments

    def reduce(self) -> dict[str, dict[str, float]]:
        """{name: {num, mean, std}} over all ranks since the last call, then start afresh (collective under DDP)."""
        names = sorted(self._moments)
        if is_distributed():
            # Ranks may report different names (e.g. timings on rank 0 only): agree on the union first.
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, names)
            names = sorted(set().union(*gathered))
        table = torch.zeros(len(names), 3, dtype=torch.float64, device=self.device)
        for i, name in enumerate(names):
            if name in self._moments:
                table[i] = self._moments[name].to(self.device)
        if names:
            all_reduce_sum(table)
        self._moments = {}
        out = {}
        for name, (n, s, s2) in zip(names, table.tolist()):
            mean = s / n if n else math.nan
            out[name] = {"num": n, "mean": mean, "std": math.sqrt(max(s2 / n - mean * mean, 0.0)) if n else math.nan}
        return out


def cpu_memory_gb() -> float:
    """Resident set size of this process in GiB (peak RSS where /proc is unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            resident_pages = int(f.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**30 if sys.platform == "darwin" else peak / 2**20  # bytes on macOS, KiB on Linux


def gpu_memory_gb(device: str | torch.device, reset_peak: bool = True) -> dict[str, float]:
    """Peak allocated and reserved CUDA memory in GiB since the last reset ({} on a CPU device)."""
    device = torch.device(device)
    if device.type != "cuda":
        return {}
    out = {
        "peak_gb": torch.cuda.max_memory_allocated(device) / 2**30,
        "reserved_gb": torch.cuda.max_memory_reserved(device) / 2**30,
    }
    if reset_peak:
        torch.cuda.reset_peak_memory_stats(device)
    return out


def _finite_or_none(value: Any) -> Any:
    """NaN/inf become null so that every line is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite_or_none(v) for k, v in value.items()}
    return value


class StatsLog:
    """Writes each tick's statistics to `run_dir/stats.jsonl` and, when tensorboard is importable, to TensorBoard."""

    def __init__(self, run_dir: str | os.PathLike, tensorboard: bool = True):
        self.path = Path(run_dir) / "stats.jsonl"
        if not self.path.parent.is_dir():
            raise ValueError(f"run_dir: expected an existing folder, found {self.path.parent}")
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                SummaryWriter = None
            if SummaryWriter is not None:
                self.writer = SummaryWriter(str(self.path.parent))

    def write(self, stats: Mapping[str, Mapping[str, float]], kimg: float, timestamp: float | None = None) -> dict:
        """Append {name: {num, mean, std}, ..., "kimg", "timestamp"} as one line; returns the record."""
        timestamp = time.time() if timestamp is None else timestamp
        record = {**_finite_or_none(dict(stats)), "kimg": kimg, "timestamp": timestamp}
        line = json.dumps(record, allow_nan=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)  # one write per line: a crash loses at most the last tick, never a half line in the middle
            f.flush()
        if self.writer is not None:
            step = round(kimg * 1000)
            for name, moments in stats.items():
                if isinstance(moments, Mapping) and math.isfinite(moments.get("mean", math.nan)):
                    self.writer.add_scalar(name, moments["mean"], global_step=step, walltime=record["timestamp"])
            self.writer.flush()
        return record

    def close(self) -> None:
        """Close the TensorBoard writer (the JSON lines are already on disk)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class _Tee(io.TextIOBase):
    """A text stream that writes to the original stream and to a log file."""

    def __init__(self, stream: TextIO, log: TextIO):
        self.stream, self.log = stream, log

    def write(self, s: str) -> int:
        """Write to both; the log is flushed so log.txt is current if the run dies."""
        self.stream.write(s)
        self.log.write(s)
        self.log.flush()
        return len(s)

    def flush(self) -> None:
        """Flush both streams."""
        self.stream.flush()
        self.log.flush()

    def isatty(self) -> bool:
        """Whether the original stream is a terminal (progress bars ask)."""
        return self.stream.isatty()

    @property
    def encoding(self) -> str:
        """Encoding of the original stream."""
        return getattr(self.stream, "encoding", "utf-8")


@contextlib.contextmanager
def tee_output(path: str | os.PathLike) -> Iterator[Path]:
    """Copy everything printed to stdout and stderr into `path` (appending) until the block ends."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    old_out, old_err = sys.stdout, sys.stderr
    with open(path, "a", encoding="utf-8") as log:
        sys.stdout, sys.stderr = _Tee(old_out, log), _Tee(old_err, log)
        try:
            yield path
        finally:
            sys.stdout, sys.stderr = old_out, old_err
