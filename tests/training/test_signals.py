from __future__ import annotations

import os
import signal
import threading

import pytest

from petdiff.training.signals import stop_on_signals


def wait_for(request, steps: int = 100_000) -> None:
    # The handler runs between bytecodes of the main thread; spin a bounded number of steps, no clock.
    for _ in range(steps):
        if request.requested:
            return


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_sets_flag_and_handlers_are_restored(signum, capsys):
    before = signal.getsignal(signum)
    with stop_on_signals() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signum)
        wait_for(stop)
        assert stop.requested and stop.signum == signum
    assert signal.getsignal(signum) is before
    assert "stopping after this step" in capsys.readouterr().err


def test_second_signal_aborts():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="second SIGTERM"), stop_on_signals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(stop)
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(stop)
        for _ in range(100_000):
            pass
    assert signal.getsignal(signal.SIGTERM) is before


def test_only_listed_signals_are_caught():
    before = signal.getsignal(signal.SIGINT)
    with stop_on_signals([signal.SIGTERM]):
        assert signal.getsignal(signal.SIGINT) is before


def test_requires_main_thread():
    errors = []

    def worker():
        try:
            with stop_on_signals():
                pass
        except ValueError as e:
            errors.append(str(e))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert errors and "main thread" in errors[0]
