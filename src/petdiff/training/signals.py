"""Graceful stop: SIGINT/SIGTERM set a flag so the loop can finish its step, save a state and exit 0."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from types import FrameType


class StopRequest:
    """Set by the first stop signal; the training loop polls `requested` once per step."""

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        """First signal: ask to stop; a second one aborts at once with KeyboardInterrupt."""
        if self.requested:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: aborting without saving")
        self.requested, self.signum = True, signum
        print(
            f"\n{signal.Signals(signum).name} received: stopping after this step (send it again to abort now)",
            file=sys.stderr,
            flush=True,
        )


@contextlib.contextmanager
def stop_on_signals(signals: Iterable[int] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[StopRequest]:
    """Within the block, turn `signals` into a StopRequest flag instead of killing the process; restore after."""
    if threading.current_thread() is not threading.main_thread():
        raise ValueError("stop_on_signals: expected to run in the main thread (Python delivers signals there only)")
    request = StopRequest()
    previous = {}
    try:
        for signum in signals:
            previous[signum] = signal.signal(signum, request._handle)
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
