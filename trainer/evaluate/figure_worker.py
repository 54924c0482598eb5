"""The figures of a sweep's runs, drawn in a small background process while the next run of the sweep trains.

Drawing a run's four figures costs 0.3 to 0.7 s of CPU here, as much as training it for the loss zoo. When the
jobs of a multirun run one after another in this process (Hydra's basic launcher) and a run's torch threads
leave a core of its share idle, that core draws them: `python -m trainer.evaluate.figure_worker`, a process that imports
numpy and matplotlib only (0.5 s; a multiprocessing "spawn" child re-imports train.py and with it torch, mlflow
and Hydra, 5 s, which made an earlier version of this worker slower than drawing in the run on 2 cores), lowered
in priority so that training goes first. It writes the PNGs into the run's output folder; a thread of this
process logs them to the run (figures/, time/figures_s) as each run's are done.

It is never far behind: a run hands its figures over at once while fewer than MAX_BACKLOG runs wait for theirs, and
waits for the process otherwise (runs shorter than their figures then go at the pace of the drawing; for thousands of
sub-second runs, eval.figures=later defers them instead, see trainer.evaluate.deferred). So at exit this process
waits for at most MAX_BACKLOG runs' figures, never for a backlog (a sweep of 1,200 sub-second runs once waited 8
minutes for 918 of them). Runs it could not draw (the process failed or was killed) are drawn here at exit. A
signal while this process waits for them stops the process: their inputs are logged instead (figures=later) for
scripts/figures.py, and the exit status says so (128 + the signal). Ctrl-C or a closed terminal does not stop the
process by itself: it finishes the runs handed over; if the sweep's process is killed, it still draws them into the
output folders, without logging them. Elsewhere (single runs, launcher workers, a model using the whole share)
figures are drawn in the run. Same content either way: trainer.evaluate.figures.save draws them.

Protocol: pickled (FigureInputs, output folder, run id) tuples on the child's stdin, EOF to finish; pickled
(run id, seconds, error or None) on its stdout.
"""
from __future__ import annotations

import atexit
import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from trainer.evaluate.figures import FigureInputs, draw_and_log, log_saved, save
from trainer.runtime import signals
from trainer.words import counted

log = logging.getLogger(__name__)

NICE = 10  # the worker's niceness increment: training goes first when the cores are contended
IDLE_CORES = 1  # cores of the job's share beside its torch threads needed to draw in the background
MAX_BACKLOG = 2  # runs handed over and not yet drawn: one being drawn, one queued; a run waits beyond that


@dataclass
class _Job:
    inp: FigureInputs
    output_dir: Path
    uri: str
    step: int


@dataclass
class _Worker:
    process: subprocess.Popen
    reader: threading.Thread
    writer: threading.Thread
    tasks: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)  # what the writer hands over; None: the end
    pending: dict[str, _Job] = field(default_factory=dict)  # run id -> what it needs, until its figures are logged
    failed: list[str] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)  # notified when a run leaves pending


_worker: _Worker | None = None


def wanted(in_sweep_process: bool, threads: int, share: int) -> bool:
    """Whether a run's figures go to the background process: a multirun's job run by the sweep's own process
    (Hydra's basic launcher) whose CPU share leaves IDLE_CORES core(s) beside its torch threads."""
    return in_sweep_process and share - threads >= IDLE_CORES


def _write_tasks(w: _Worker, pipe: IO[bytes]) -> None:
    """This process's writer thread: hand each run over to the child, then close its stdin (EOF: finish). A run
    never waits for the child: a full pipe (the child behind, or stopped) blocks this thread only."""
    for task in iter(w.tasks.get, None):
        try:
            pickle.dump(task, pipe, protocol=pickle.HIGHEST_PROTOCOL)
            pipe.flush()
        except OSError:  # the child died: drain() draws what it left
            break
    try:
        pipe.close()
    except OSError:
        pass


def _log_results(w: _Worker, results: IO[bytes]) -> None:
    """This process's reader thread: log each run's figures as the child reports them drawn."""
    while True:
        try:
            run_id, seconds, error = pickle.load(results)
        except (EOFError, pickle.UnpicklingError, OSError):
            with w.lock:
                w.lock.notify_all()  # a run waiting to hand over draws its own now
            return  # the child finished or died; drain() draws what it left
        with w.lock:
            job = w.pending.get(run_id)
        if job is None:
            continue
        if error is None:
            try:
                log_saved(job.output_dir / "figures", seconds, run_id, job.uri, job.step)
            except Exception as e:  # noqa: BLE001 - the run's results stand without its figures
                error = f"{type(e).__name__}: {e}"
        if error is not None:
            log.warning("figures of run %s failed: %s", run_id, error)
        with w.lock:
            w.pending.pop(run_id, None)
            if error is not None:
                w.failed.append(run_id)
            w.lock.notify_all()


def start() -> bool:
    """Start the background process now (if not running), so that its imports overlap this run's training;
    False (and a warning) when it cannot be started: the run then draws its own figures."""
    global _worker
    if _worker is not None:
        return True
    root = str(Path(__file__).resolve().parents[2])
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH")))),
                        "MPLBACKEND": "Agg"}
    try:
        process = subprocess.Popen([sys.executable, "-m", "trainer.evaluate.figure_worker"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, env=env)
    except OSError as e:
        log.warning("figures drawn in the run: the background process did not start (%s)", e)
        return False
    reader = threading.Thread(target=lambda: _log_results(w, process.stdout), name="figure-results", daemon=True)
    writer = threading.Thread(target=lambda: _write_tasks(w, process.stdin), name="figure-tasks", daemon=True)
    w = _Worker(process, reader, writer)
    reader.start()
    writer.start()
    _worker = w
    atexit.register(drain)
    return True


def submit(inp: FigureInputs, output_dir: Path, run_id: str, uri: str, step: int) -> None:
    """Hand a finished run's figures to the background process (started on first use), once fewer than MAX_BACKLOG
    runs wait for theirs; drawn here if it is gone or cannot start."""
    if not start():
        draw_and_log(inp, output_dir, run_id, uri, step)
        return
    w = _worker
    assert w is not None
    with w.lock:
        while len(w.pending) >= MAX_BACKLOG and w.reader.is_alive():
            w.lock.wait(0.2)  # woken by each drawn run; the timeout lets a signal's handler run (see _join)
        alive = w.reader.is_alive()  # it reads until the process ends
        if alive:
            w.pending[run_id] = _Job(inp, output_dir, uri, step)
    if not alive:
        draw_and_log(inp, output_dir, run_id, uri, step)
        return
    w.tasks.put((inp, output_dir, run_id))


def draw(inp: FigureInputs, output_dir: Path, run_id: str, uri: str, step: int, background: bool) -> None:
    """A finished run's figures: handed to the background process (started by start()) when background, else drawn
    and logged here."""
    if background:
        submit(inp, output_dir, run_id, uri, step)
    else:
        draw_and_log(inp, output_dir, run_id, uri, step)


def drain() -> list[str]:
    """Wait for every figure handed over and stop the process; draw here any run it left; return the run ids
    whose figures failed (each logged as a warning: a run's results stand without its figures).

    It waits for at most MAX_BACKLOG runs (submit). Ctrl-C, SIGTERM or SIGHUP meanwhile stops the drawing: the
    inputs of the runs left without figures are logged (trainer.evaluate.deferred), one warning names them, and the
    process's exit status is 128 + the signal."""
    global _worker
    if _worker is None:
        return []
    w, _worker = _worker, None
    w.tasks.put(None)  # the writer closes the child's stdin after the last run: it finishes its queue and exits
    stopping = signals.exiting_on()
    if stopping is not None:  # a signal stopped the process just before: no wait (its repeat would not be raised)
        return w.failed + _stop(w, signals.Interrupted(stopping))
    try:
        if w.pending:
            log.info("waiting for the figures of %s drawn in the background", counted(len(w.pending), "run"))
        _join(w.writer)
        _join(w.reader)  # returns when the child closes its stdout: after its last result, or when it dies
        w.process.wait()
        left = list(w.pending.items())
        if left:
            log.warning("the figure process ended (exit code %s) with %s not drawn: drawing them here",
                        w.process.returncode, counted(len(left), "run"))
        for run_id, job in left:
            try:
                draw_and_log(job.inp, job.output_dir, run_id, job.uri, job.step)
                del w.pending[run_id]
            except Exception as e:  # noqa: BLE001 - the run's results stand without its figures
                log.warning("figures of run %s failed: %s", run_id, f"{type(e).__name__}: {e}")
                w.failed.append(run_id)
                del w.pending[run_id]
    except KeyboardInterrupt as e:
        return w.failed + _stop(w, e)
    return w.failed


def _join(thread: threading.Thread) -> None:
    """Join thread, waking every 0.2 s: a signal the kernel handed to another thread runs its Python handler only
    when the main thread next runs Python code, and a plain join() never would."""
    while thread.is_alive():
        thread.join(0.2)


def _stop(w: _Worker, e: KeyboardInterrupt) -> list[str]:
    """A signal while drain() waited: kill the process, set the exit status, log the inputs of the runs left without
    figures (figures=later) and say how to draw them; return their ids."""
    from trainer.evaluate import deferred
    from trainer.runtime.shutdown import set_exit_code
    from trainer.runtime.signals import handled

    w.process.kill()
    w.process.wait()
    w.writer.join(timeout=10)
    w.reader.join(timeout=10)
    set_exit_code(getattr(e, "exit_code", 130))
    handled()
    with w.lock:
        left = dict(w.pending)
    for run_id, job in left.items():
        try:
            deferred.defer(job.inp, run_id, job.uri, job.step)
        except Exception as error:  # noqa: BLE001 - the run's results stand without its figures
            log.warning("figures of run %s: their inputs could not be logged (%s)", run_id, error)
    if left:
        log.warning("%s while drawing figures: %s without them yet; their inputs are logged for "
                    "scripts/figures.py to draw them (%s)", str(e) or "interrupted by SIGINT",
                    counted(len(left), "run"), ", ".join(left))
    return list(left)


def _warm_up() -> None:
    """matplotlib's imports and font loading, done while the first run trains, so that they do not count in its
    time/figures_s (about 2 s on the first run otherwise, 0.3 to 0.7 s on the next)."""
    import io

    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().set_title("warm-up")
    fig.savefig(io.BytesIO(), format="png")


def _serve(tasks: IO[bytes], results: IO[bytes]) -> None:
    """The child: draw each run read from tasks until EOF; report (run id, seconds, error or None) on results."""
    import signal

    # Ctrl-C and a closed terminal reach the whole process group: the sweep stops, the figures of its finished runs
    # still come (the sweep's process stops this one if it is interrupted again while waiting for them)
    for s in (signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    try:
        os.nice(NICE)
    except OSError:  # not permitted: the figures compete as equals, still off the training path
        pass
    _warm_up()
    parent_gone = False
    while True:
        try:
            inp, output_dir, run_id = pickle.load(tasks)
        except (EOFError, pickle.UnpicklingError):  # the end, or the sweep's process killed in mid-hand-over
            return
        try:
            _, seconds = save(inp, output_dir)
            report = (run_id, seconds, None)
        except Exception as e:  # noqa: BLE001 - reported by the parent; the next run's figures still come
            report = (run_id, 0.0, f"{type(e).__name__}: {e}")
        if parent_gone:
            continue
        try:
            pickle.dump(report, results)
            results.flush()
        except OSError:  # the sweep's process was killed: still draw what it handed over, into the output folders
            parent_gone = True


if __name__ == "__main__":
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed goes to the sweep's log, not into the results stream
    _serve(sys.stdin.buffer, out)
    os._exit(0)  # no flush of a results pipe the sweep's process may have closed
