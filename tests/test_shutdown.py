"""trainer.runtime.shutdown: the fast exit keeps the exit code, the output, the atexit handlers and running threads."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from helpers import ROOT, train_cli

SCRIPT = """
import atexit, sys, threading, time
sys.path.insert(0, {root!r})
from trainer.runtime.shutdown import run_then_exit

def main():
    atexit.register(lambda: open({marker!r}, "w").write("atexit ran"))
    threading.Thread(target=lambda: (time.sleep(0.3), open({thread_file!r}, "w").write("thread done"))).start()
    print("summary line", end="")  # no newline: must still reach a pipe through the flush
    {ending}

run_then_exit(main)
"""


@pytest.mark.parametrize("ending, code", [("return 1.5", 0), ("sys.exit(3)", 3), ("sys.exit()", 0),
                                          ("sys.exit('error: bad value')", 1),
                                          # SIGTERM outside training unwinds like Ctrl-C: atexit handlers still run
                                          ("import os, signal; os.kill(os.getpid(), signal.SIGTERM); time.sleep(30)",
                                           143),
                                          # its Interrupted raised inside a weakref callback, where Python drops it
                                          ("import weakref; from trainer.runtime import signals as interrupt; t = type('T', (), {})(); "
                                           "weakref.finalize(t, interrupt.interrupt, 15, None); del t", 143)])
def test_the_fast_exit_keeps_code_output_atexit_handlers_and_threads(tmp_path, ending, code):
    marker, thread_file = tmp_path / "atexit.txt", tmp_path / "thread.txt"
    script = textwrap.dedent(SCRIPT).format(root=str(ROOT), marker=str(marker), thread_file=str(thread_file),
                                            ending=ending)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == "summary line"
    assert marker.read_text() == "atexit ran"
    assert thread_file.read_text() == "thread done"
    if code == 1:
        assert "error: bad value" in proc.stderr
    if code == 143:
        assert "interrupted by SIGTERM" in proc.stderr and "Traceback" not in proc.stderr


def test_an_uncaught_exception_still_prints_its_traceback(tmp_path):
    script = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\nfrom trainer.runtime.shutdown import run_then_exit\n"
              "def main():\n    raise RuntimeError('boom')\nrun_then_exit(main)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "RuntimeError: boom" in proc.stderr and "Traceback" in proc.stderr


def test_a_resume_refused_for_a_config_difference_exits(tmp_path, run_cfg, store):
    # it used to print its error and then wait forever on MLflow's artifact-download threads
    from mlflow.tracking import MlflowClient

    from trainer.run import run

    result = run(run_cfg("trainer.epochs=1", "trainer.threads=1"))
    MlflowClient(store).set_terminated(result.run_id, "KILLED")  # as an interrupted run ends
    proc = train_cli("model=cnn", "trainer.epochs=1", "trainer.threads=1", f"trainer.resume={result.run_id}",
                     f"tracking.uri={store}", cwd=tmp_path, timeout=180)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "the config differs from the run's (model._target_" in proc.stderr


IGNORED_SCRIPT = """
import atexit, os, signal, sys, time
sys.path.insert(0, {root!r})
from trainer.runtime import signals
from trainer.runtime.shutdown import run_then_exit

def main():
    atexit.register(lambda: open({marker!r}, "w").write("atexit ran"))
    {before}
    os.kill(os.getpid(), signal.SIGINT)  # kill -INT <pid>, at a moment outside any run
    time.sleep(3)  # lost: the work goes on and the process exits 0

run_then_exit(main)
"""


@pytest.mark.parametrize("before", ["pass",  # before a sweep's first job (data preparation, imports)
                                    # between two jobs (or at the sweep's end): a run's handlers were restored
                                    "with signals.stop_request(): pass"])
def test_sigint_stops_a_process_that_inherited_it_ignored_at_every_moment(tmp_path, before):
    """A process started with SIGINT ignored (a background job of a non-interactive shell, a harness's child) took
    SIGINT during its runs (stop_request routes it) but ignored it between them and at the end of a sweep: 6 of 14
    kill -INT sent just after a sweep's job was launched were lost. It is now handled the same at every moment."""
    import signal

    marker = tmp_path / "atexit.txt"
    script = textwrap.dedent(IGNORED_SCRIPT).format(root=str(ROOT), marker=str(marker), before=before)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert proc.returncode == 130, proc.stderr
    assert "interrupted by SIGINT" in proc.stderr and "Traceback" not in proc.stderr
    assert marker.read_text() == "atexit ran"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the drop this test makes
def test_a_signal_whose_interrupt_python_dropped_stops_the_run_where_its_guarded_part_starts():
    import gc
    import signal
    import weakref

    from trainer.runtime import signals as interrupt

    thing = type("Thing", (), {})()
    weakref.finalize(thing, interrupt.interrupt, signal.SIGTERM, None)
    try:
        del thing  # the handler's Interrupted raised in a weakref callback (as in SQLAlchemy's): printed, dropped
        gc.collect()
        assert interrupt.pending() == signal.SIGTERM
        with pytest.raises(interrupt.Interrupted) as stopped:
            with interrupt.stop_request():
                pass  # the run's steps: never reached
        assert stopped.value.signum == signal.SIGTERM
    finally:
        interrupt.handled()
    with interrupt.stop_request() as stop:  # handled: the next run is not stopped
        assert not stop()


def test_a_quick_second_signal_counts_once_and_a_later_one_stops_at_once(monkeypatch):
    import signal

    from trainer.runtime import signals as interrupt

    request = interrupt.StopRequest()
    with request.deferred():
        request._handle(signal.SIGINT, None)  # the first: training stops after its step
        assert request()
        request._handle(signal.SIGINT, None)  # 0 s later (a double press): not raised, the clean-up goes on
        monkeypatch.setattr(interrupt, "_stopping_at", interrupt._stopping_at - interrupt.REPEAT_S)
        with pytest.raises(interrupt.Interrupted, match="stopped at once"):
            request._handle(signal.SIGINT, None)  # the user insists: stop now
    interrupt.handled()
    with pytest.raises(interrupt.Interrupted):  # handled: the next signal outside training raises again
        interrupt.interrupt(signal.SIGTERM, None)
    interrupt.handled()


def test_a_signal_between_two_jobs_stops_the_sweep_at_the_next_job_not_inside_hydra(tmp_path):
    """A SIGINT 20 ms after a job's launch line landed inside OmegaConf while Hydra composed the next job's config:
    the half-built node's clean-up failed with AttributeError and the sweep exited 1 (2 of 4 tries). Between jobs
    the signal is now held until the next job starts, which it stops: exit 130, the unrun jobs listed."""
    from mlflow.tracking import MlflowClient

    marker = tmp_path / "marker.txt"
    proc = train_cli("-m", "seed=0,1,2", "trainer.epochs=1", "eval.figures=off",
                     "+hydra.callbacks.probe._target_=signal_between_jobs.SignalBetweenJobs",
                     f"+hydra.callbacks.probe.marker={marker}", cwd=tmp_path,
                     env={"PYTHONPATH": str(ROOT / "tests")})
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert marker.read_text() == "the composition was not interrupted"  # held, not raised there
    assert "interrupted by SIGINT" in proc.stderr and "Traceback" not in proc.stderr
    assert "2 of 3 jobs of the sweep did not finish (2 never ran)" in proc.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id])
    assert sorted((r.data.tags.get("sweep") == "parent", r.info.status) for r in runs) == [(False, "FINISHED"),
                                                                                            (True, "FAILED")]


def test_a_held_signal_is_raised_when_released_and_not_before():
    import os
    import signal

    from trainer.runtime import signals as interrupt

    previous = signal.signal(signal.SIGTERM, interrupt.interrupt)
    try:
        interrupt.hold()
        os.kill(os.getpid(), signal.SIGTERM)  # recorded, not raised
        assert interrupt.pending() == signal.SIGTERM
        with pytest.raises(interrupt.Interrupted) as stopped:
            interrupt.release()
        assert stopped.value.exit_code == 143
        interrupt.handled()
        interrupt.release()  # nothing pending: nothing raised
        with pytest.raises(interrupt.Interrupted):
            os.kill(os.getpid(), signal.SIGTERM)  # released: raised as it arrives
    finally:
        interrupt.handled()
        signal.signal(signal.SIGTERM, previous)


HELD_AT_EXIT_SCRIPT = """
import atexit, os, signal, sys, time
sys.path.insert(0, {root!r})
from trainer.runtime import signals
from trainer.runtime.shutdown import run_then_exit

def wait_for_figures():  # as figure_worker.drain waits at exit for the figures drawn in the background
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
        open({marker!r}, "w").write("not interrupted")
    except KeyboardInterrupt:
        open({marker!r}, "w").write("interrupted")

def main():
    atexit.register(wait_for_figures)
    signals.hold()  # the sweep's last job ended: held until a next job that never comes

run_then_exit(main)
"""


def test_the_exit_handlers_of_a_sweep_stop_at_a_signal_although_the_last_job_held_them():
    """Held after the last job (signals.hold), a Ctrl-C during the wait for the background figures at exit was
    ignored: the process waited for every figure and exited 0 (4 of 4 tries). The exit handlers run unheld."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "marker.txt"
        script = textwrap.dedent(HELD_AT_EXIT_SCRIPT).format(root=str(ROOT), marker=str(marker))
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert marker.read_text() == "interrupted", proc.stderr


def test_a_signal_after_the_last_check_of_training_is_not_forgotten(tmp_path):
    """A Ctrl-C in the last epoch after the loop's last look at the stop request: training ended anyway, the run
    finished, and the process went on (a sweep ran its next jobs) and exited 0 (3 of 5 tries 0-10 ms after the
    last epoch's line). The run still finishes; the process then stops with 130."""
    script = textwrap.dedent(LAST_EPOCH_SCRIPT).format(root=str(ROOT), folder=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert "interrupted by SIGINT" in proc.stderr and "Traceback" not in proc.stderr
    assert "status FINISHED" in proc.stdout


LAST_EPOCH_SCRIPT = """
import logging, signal, sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {root!r} + "/tests")
from unittest import mock
from mlflow.tracking import MlflowClient
from helpers import make_cfg
from trainer.runtime.shutdown import run_then_exit
from trainer.run import run
from trainer.train import loop

def main():
    logging.basicConfig(level=logging.INFO)  # the epoch lines, as Hydra's logging config has them
    cfg = make_cfg("trainer.epochs=1", "eval.figures=off", "tracking.uri=sqlite:///{folder}/mlflow.db")
    calls = []

    def late(*args, **kwargs):  # the signal comes as the last epoch is saved: after the loop looked at stop()
        if not calls:
            calls.append(1)
            signal.raise_signal(signal.SIGINT)
    with mock.patch.object(loop.progress, "epoch_line", side_effect=lambda *a, **k: late() or "epoch line"):
        result = run(cfg)
    print("status", MlflowClient("sqlite:///{folder}/mlflow.db").get_run(result.run_id).info.status)

run_then_exit(main)
"""
