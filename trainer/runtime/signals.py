"""SIGINT, SIGTERM and SIGHUP (the terminal closed, an ssh session lost) during training: finish the current step,
write a checkpoint, then stop.

Outside training (data preparation, evaluation at the end) and on a second signal, they stop at once; a
signal repeated within REPEAT_S of the one that started the stop is not acted on (see below). Either way the
run's context manager (trainer.tracking.record.mlflow_run) ends the MLflow run KILLED, because Interrupted is a
KeyboardInterrupt.
"""
from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; exit_code is the shell's convention, 128 + the signal number."""

    def __init__(self, signum: int, detail: str = "", run_id: str | None = None) -> None:
        self.signum, self.run_id = signum, run_id
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}{': ' + detail if detail else ''}")


# A repeat of a signal within REPEAT_S of the one that is stopping the process is not raised again: a second
# Ctrl-C 10 to 70 ms after the first interrupted the unwinding of the first (the run then ended FAILED instead of
# KILLED, the resume command went unprinted, or joblib's workers were left running and the exit hung).
REPEAT_S = 2.0

_received: int | None = None  # a signal interrupt() turned into Interrupted, until the run's end handles it
_held = False  # between two jobs of a sweep (Hydra's code): interrupt() records a signal, release() raises it
_stopping_at = -math.inf  # time.monotonic() of the signal that started stopping the process (raised or deferred)


def _stopping() -> bool:
    """Whether a signal started stopping the process less than REPEAT_S ago; if not, this one starts it now."""
    global _stopping_at
    now = time.monotonic()
    if now - _stopping_at < REPEAT_S:
        return True
    _stopping_at = now
    return False


def interrupt(signum: int, frame: Any) -> None:
    """The process-wide handler of SIGNALS outside training (trainer.runtime.shutdown installs it): raise Interrupted,
    unless a signal raised one less than REPEAT_S ago (the process is stopping: let it end its runs).

    The signal is also remembered: Python prints and drops an exception raised inside a garbage-collector or
    weakref callback (SQLAlchemy's, while MLflow opens its store), and the run would then train to the end.
    stop_request() raises it again when the run's guarded part starts; handled() forgets it."""
    global _received
    if _stopping():
        return
    _received = signum
    if not _held:
        raise Interrupted(signum)


_exiting_on: int | None = None  # the signal the process is exiting on (trainer.runtime.shutdown), for exit handlers


def exiting_on(signum: int | None = None) -> int | None:
    """With signum: the process is exiting on that signal (its exit handlers run next). Returns the signal the
    process is exiting on, None while it is not: an exit handler that would wait (the figures drawn in the
    background) stops at once instead, since a repeat of the signal within REPEAT_S is not raised to stop it."""
    global _exiting_on
    if signum is not None:
        _exiting_on = signum
    return _exiting_on


def remember(signum: int) -> None:
    """A stop asked for after the training loop's last look at its StopRequest (in the last epoch): training ended
    anyway and the run finishes; the signal stays pending for the next job's start or the process's exit to raise
    (trainer.runtime.shutdown), instead of being forgotten (the run and the sweep went on and exited 0)."""
    global _received
    if _received is None:
        _received = signum


def hold() -> None:
    """From now on interrupt() records a signal without raising it, until release(): Hydra composes the next job's
    config between two jobs of a sweep, and an exception raised inside OmegaConf there left a half-built node whose
    clean-up failed with AttributeError, which Hydra reported as an error: exit 1 instead of 130 (2 of 4 SIGINTs sent
    20 ms after a job's launch line). The window is short: the next job's start, or the process's exit
    (trainer.runtime.shutdown.run_then_exit raises what is pending), ends it."""
    global _held
    _held = True


def release() -> None:
    """Raise signals again as they arrive, and raise Interrupted now for one that arrived while held."""
    unhold()
    if _received is not None:
        raise Interrupted(_received)


def unhold() -> None:
    """Raise signals again as they arrive; one that arrived while held stays pending (pending())."""
    global _held
    _held = False


def pending() -> int | None:
    """A signal interrupt() received whose Interrupted has not been handled (None when there is none)."""
    return _received


def handled() -> None:
    """The Interrupted of the last signal has been reported: nothing pending, and the next signal raises again."""
    global _received, _stopping_at
    _received, _stopping_at = None, -math.inf


class StopRequest:
    """Callable stop() for the training loop: true once one of SIGNALS arrived while deferring."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._deferring = False

    def __call__(self) -> bool:
        return self.signum is not None

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Within this block a first signal only sets the request; the loop stops at its next check."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False

    def _handle(self, signum: int, frame: Any) -> None:
        if _stopping():
            return  # a repeat of the signal that is stopping the run
        again = self.signum is not None
        self.signum = signum
        if again or not self._deferring:
            raise Interrupted(signum, "stopped at once" if again else "")


@contextmanager
def stop_request() -> Iterator[StopRequest]:
    """Route SIGNALS to a StopRequest for the duration of the block, then restore the handlers.

    Signal handlers can only be set from the main thread; elsewhere the block runs with the old handlers.
    """
    global _stopping_at
    if _received is not None:  # its Interrupted was dropped on the way (see interrupt): the run stops here
        raise Interrupted(_received)
    _stopping_at = -math.inf  # a run starts: any earlier stop is over, its repeats no longer count once
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {s: signal.signal(s, request._handle) for s in SIGNALS}
    try:
        yield request
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
