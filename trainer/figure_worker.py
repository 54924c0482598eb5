"""The figures of a sweep's runs, drawn in one background process while the next run of the sweep trains.

Drawing a run's four figures costs about as much CPU as training it for the loss zoo (0.5 to 1.5 s here).
When the jobs of a multirun run one after another in this process (Hydra's basic launcher) and a run leaves
cores of its share idle (one torch thread for a small model on a workstation), one of them draws them: a spawned
process (fork would copy torch's thread pools and open database connections), started at the first run,
lowered in priority so that it yields to training, and waited for before the process exits. Elsewhere
(single runs, joblib's worker processes, 2-core machines, where it measured slower) figures are drawn in-process.
The content is the same either way: trainer.figures.draw_and_log draws and logs them.
"""
from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import queue
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.figures import FigureInputs, draw_and_log

log = logging.getLogger(__name__)

NICE = 10  # the worker's niceness increment: training goes first when the cores are contended


@dataclass
class _Worker:
    process: Any  # multiprocessing's SpawnProcess
    tasks: Any  # queues of the spawn context
    results: Any
    pending: int = 0


_worker: _Worker | None = None
# The process costs about 5 s of imports (torch, mlflow, matplotlib); drawing a run's figures in the run costs
# 0.35 to 0.7 s. On 2 cores (1 torch thread, other work on the machine) the loss zoo's 12 runs took 20.3 and
# 24.9 s with the figures in the background from the first run, 17.6 and 18.0 s with them drawn in the runs,
# and its 36 runs 41.8 s (background from the 13th run) against 43.0 s: the second core is not idle enough.
IDLE_CORES = 2


def wanted(multirun: bool, threads: int, share: int) -> bool:
    """Whether a run's figures go to the background process: a job of a multirun in this main process whose
    share leaves IDLE_CORES cores beside its torch threads (one for the process, one for everything else)."""
    return multirun and multiprocessing.parent_process() is None and share - threads >= IDLE_CORES


def _serve(tasks: Any, results: Any) -> None:
    """The worker process: draw each run handed over until None arrives; report (run id, error or None)."""
    try:
        os.nice(NICE)
    except OSError:  # not permitted: the figures compete as equals, still off the training path
        pass
    for args in iter(tasks.get, None):
        try:
            draw_and_log(*args)
            results.put((args[2], None))
        except Exception as e:  # noqa: BLE001 - reported by the parent; the next run's figures still come
            results.put((args[2], f"{type(e).__name__}: {e}"))


def start() -> None:
    """Start the background process now (if not running), so that its imports overlap the first run's training."""
    global _worker
    if _worker is None:
        # A plain process and queues, not a ProcessPoolExecutor: its manager thread is not a daemon, and a
        # process exiting through trainer.shutdown joins such threads before the atexit handler that stops it.
        ctx = multiprocessing.get_context("spawn")
        tasks, results = ctx.Queue(), ctx.Queue()
        process = ctx.Process(target=_serve, args=(tasks, results), name="figures", daemon=True)
        process.start()
        _worker = _Worker(process, tasks, results)
        atexit.register(drain)  # runs before multiprocessing's own handler, which would stop it


def submit(inp: FigureInputs, output_dir: Path | None, run_id: str, uri: str, step: int) -> None:
    """Hand a finished run's figures to the background process (started on first use)."""
    start()
    assert _worker is not None
    _worker.tasks.put((inp, output_dir, run_id, uri, step))
    _worker.pending += 1


def drain() -> list[str]:
    """Wait for every figure handed over and stop the process; the run ids whose figures failed (each logged
    as a warning: a run's results stand without its figures)."""
    global _worker
    if _worker is None:
        return []
    w, _worker = _worker, None
    if w.pending:
        log.info("waiting for the figures of %d run(s) drawn in the background", w.pending)
    w.tasks.put(None)
    failed = []
    while w.pending:
        try:
            run_id, error = w.results.get(timeout=1.0)
        except queue.Empty:
            if w.process.is_alive():
                continue
            failed.append("?")
            log.warning("the figure process ended (exit code %s) with %d run(s) not drawn", w.process.exitcode,
                        w.pending)
            break
        w.pending -= 1
        if error is not None:
            failed.append(run_id)
            log.warning("figures of run %s failed: %s", run_id, error)
    w.process.join()
    return failed
