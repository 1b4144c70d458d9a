"""Progress of a long command: a tqdm bar on a terminal, plain log lines with an ETA otherwise (nohup, SLURM, pipes)."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

LOG_EVERY_S = 30.0  # a log line at least this often while work goes on …
LOG_EVERY_FRACTION = 0.1  # … or after each tenth of the work


def _duration(seconds: float) -> str:
    """12 s, 3 min 05 s, 1 h 02 min."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """`update(done, total)` for one task (e.g. the tiles of a case): a bar on a TTY, else log lines with an ETA."""

    def __init__(self, label: str, unit: str = "tile", stream: IO[str] | None = None, tty: bool | None = None,
                 prefix: str = "petdiff enhance"):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.label, self.unit, self.prefix = label, unit, prefix
        self.start = time.monotonic()
        self.bar: Any = None
        self.last_time, self.last_fraction = self.start, 0.0

    def update(self, done: int, total: int) -> None:
        """Record that `done` of `total` units are finished."""
        if self.tty:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit=self.unit, desc=self.label, leave=False, file=self.stream)
            self.bar.update(done - self.bar.n)
            return
        now = time.monotonic()
        fraction = done / total if total else 1.0
        if done < total and now - self.last_time < LOG_EVERY_S and fraction - self.last_fraction < LOG_EVERY_FRACTION:
            return
        self.last_time, self.last_fraction = now, fraction
        elapsed = now - self.start
        eta = elapsed / fraction - elapsed if fraction > 0 else float("nan")
        tail = "done" if done >= total else f"ETA {_duration(eta)}"
        print(f"{self.prefix}: {self.label}: {done}/{total} {self.unit}s, {_duration(elapsed)} elapsed, {tail}",
              file=self.stream, flush=True)

    def close(self) -> None:
        """Remove the bar (log lines need no closing)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
