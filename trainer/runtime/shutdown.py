"""Leave the process at once when the work is done, instead of tearing its libraries down module by module.

Python's own shutdown frees every module object it loaded. With torch, torch._dynamo, mlflow, SQLAlchemy and
matplotlib in memory that took 2 to 2.5 s on a 2-core machine: a quarter of a default run's wall time, spent
after its summary was printed. By the time main() returns, everything a run keeps is on disk (the MLflow run
ended, the writer thread joined, the checkpoint renamed into place); what is left is done here in Python's
own order (Py_FinalizeEx): threading's shutdown (the hooks that stop executor threads, then the join of every
non-daemon thread), the atexit handlers (logging's flush, MLflow's own), a flush of the standard streams, then
exit with the code Python would have used.

The threading step must be Python's own: joining the non-daemon threads before their shutdown hooks ran waits
forever on an idle executor thread (joblib's loky manager after a sweep, MLflow's artifact-upload pool after a
run refused before training), since only the hook tells those threads to stop.

SIGINT, SIGTERM and SIGHUP are turned into trainer.signals.Interrupted (a KeyboardInterrupt) for the whole process,
not only during training, and the same at every moment (SIGINT even when the process started with it ignored, as
each run's stop_request() already took it): a signal between the jobs of a sweep, while loading data or importing
modules then unwinds through the MLflow runs' context managers (ended KILLED) and the sweep's atexit handler
(parent ended FAILED), instead of killing the process with its runs RUNNING.
"""
from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from typing import Any, Callable

_exit_code_of_handlers = 0


def set_exit_code(code: int) -> None:
    """The exit status for a process whose work succeeded but whose exit handler a signal stopped (an atexit
    handler cannot raise: Python prints the error and goes on)."""
    global _exit_code_of_handlers
    _exit_code_of_handlers = code


def exit_code(e: SystemExit) -> int:
    """The exit status Python gives a SystemExit: None is 0, an int itself, anything else is printed and 1."""
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code
    print(e.code, file=sys.stderr)
    return 1


def run_then_exit(main: Callable[[], object]) -> None:
    """Call main(); on its return or sys.exit, finish the process without the module teardown.

    SIGINT, SIGTERM and SIGHUP end it with the shell's code 128 + the signal number and one line on stderr; so
    does one that stops an exit handler (set_exit_code). Any other exception propagates as usual, so Python
    prints its traceback and exits the ordinary way.
    """
    from trainer.runtime import signals

    # SIGINT too when the process started with it ignored (a background job of a non-interactive shell, a child
    # of a harness that ignores it): every run routes it to its StopRequest anyway, so leaving it ignored outside
    # the runs only lost a `kill -INT` sent between a sweep's jobs, as a job started or during the figures' wait
    for s in signals.SIGNALS:
        signal.signal(s, signals.interrupt)
    report_unraisable = sys.unraisablehook

    def unraisable(u: Any) -> None:  # an Interrupted dropped in a callback is remembered, not a traceback to show
        if not isinstance(u.exc_value, KeyboardInterrupt):
            report_unraisable(u)

    sys.unraisablehook = unraisable
    try:
        main()
        code = 0
        if signals.pending() is not None:  # a signal whose Interrupted Python dropped, after the run's last check
            raise signals.Interrupted(signals.pending())
    except SystemExit as e:
        code = exit_code(e)
    except KeyboardInterrupt as e:
        print(str(e) or "interrupted by SIGINT", file=sys.stderr)
        code = getattr(e, "exit_code", 128 + signal.SIGINT)
        signals.exiting_on(code - 128)
    signals.unhold()  # held at a sweep's end (trainer.runtime.signals.hold): the exit handlers stop at a signal again
    threading._shutdown()  # the step Python runs first at exit; private, stable since 3.4, still so in 3.13
    atexit._run_exitfuncs()
    code = code or _exit_code_of_handlers
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be said on it
            pass
    os._exit(code)
