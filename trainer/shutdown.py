"""Leave the process at once when the work is done, instead of tearing its libraries down module by module.

Python's own shutdown frees every module object it loaded. With torch, torch._dynamo, mlflow, SQLAlchemy and
matplotlib in memory that took 2 to 2.5 s on a 2-core machine: a quarter of a default run's wall time, spent
after its summary was printed. By the time main() returns, everything a run keeps is on disk (the MLflow run
ended, the writer thread joined, the checkpoint renamed into place); what is left is done here in Python's
own order: wait for non-daemon threads, run the atexit handlers (logging's flush, MLflow's own), flush the
standard streams, then exit with the code Python would have used.
"""
from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import Callable


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

    Any other exception propagates as usual, so Python prints its traceback and exits the ordinary way.
    """
    try:
        main()
        code = 0
    except SystemExit as e:
        code = exit_code(e)
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be said on it
            pass
    os._exit(code)
