"""A multirun's jobs in one process: every run gets its figures (drawn in the run, or in the background process
where cores are idle), the data prepared by one job is reused by the next with the same results as a single run,
and each job's train.log shows its epochs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

from helpers import ROOT, train_cli
from trainer.evaluate import deferred, figure_worker
from trainer.evaluate.figures import FigureInputs
from trainer.run import run

FIGURES = {"figures/confusion_matrix.png", "figures/curves.png", "figures/recall_vs_frequency.png",
           "figures/reliability.png"}


def test_a_sweep_logs_every_runs_figures_and_reuses_its_data(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ("trainer.epochs=2", "trainer.patience=null", f"tracking.uri={uri}")
    proc = train_cli("-m", "loss=plain,weighted", *common, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = train_cli("loss=weighted", *common, cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    client = MlflowClient(uri)
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id])
            if r.data.tags.get("sweep") != "parent"}
    swept = [r for name, r in runs.items() if name.startswith("loss=")]
    assert len(swept) == 2
    for r in swept:
        assert r.info.status == "FINISHED" and r.data.tags["torch.threads"] == "1"
        assert {a.path for a in client.list_artifacts(r.info.run_id, "figures")} == FIGURES
        assert r.data.metrics["time/figures_s"] > 0
    logs = sorted(tmp_path.glob("outputs/sweeps/*/*/*/train.log"))
    assert len(logs) == 2
    first, second = (p.read_text() for p in logs)
    assert "reused" not in first and "data: prepared by an earlier job of this process, reused" in second
    for text in (first, second):
        assert "epoch 1/2  train/ce" in text and "epoch 2/2  train/ce" in text
    # the reused data trains exactly as a single run preparing its own (same thread count: bit-identical)
    weighted = next(r for r in swept if r.data.tags["loss"] == "weighted")
    alone = runs["loss=weighted,trainer.epochs=2,trainer.patience=null"]
    assert weighted.data.tags["data.fingerprint"] == alone.data.tags["data.fingerprint"]
    assert weighted.data.metrics["test/ce"] == alone.data.metrics["test/ce"]


def test_the_background_process_draws_each_run_and_reports_a_failed_one(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("figs")).info.run_id
    inp = _inputs()
    figure_worker.submit(inp, tmp_path / "a", "no-such-run", uri, 1)
    figure_worker.submit(inp, tmp_path / "b", run_id, uri, 1)
    assert figure_worker.drain() == ["no-such-run"]
    assert {a.path for a in client.list_artifacts(run_id, "figures")} == FIGURES
    assert sorted(p.name for p in (tmp_path / "b" / "figures").iterdir()) == sorted(f[8:] for f in FIGURES)


def _inputs() -> FigureInputs:
    rng = np.random.default_rng(0)
    return FigureInputs(rng.dirichlet(np.ones(3), size=30), rng.integers(0, 3, 30), ["a", "b", "c"],
                        {"train_imbalanced": [5, 3, 1], "train_resampled": [5, 3, 1]},
                        [{"epoch": 1, "train/ce": 1.0, "val/ce": 1.1, "train/loss": 1.0, "val/loss": 1.1}], 1, "t")


def test_runs_the_background_process_left_are_drawn_at_exit(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("figs")
    first, second = (client.create_run(experiment).info.run_id for _ in range(2))
    figure_worker.submit(_inputs(), tmp_path / "a", first, uri, 1)
    figure_worker._worker.process.kill()  # killed before or while drawing the first run
    figure_worker._worker.process.wait()
    figure_worker.submit(_inputs(), tmp_path / "b", second, uri, 1)  # the pipe is broken: kept for drain
    assert figure_worker.drain() == []
    for run_id in (first, second):
        assert {a.path for a in client.list_artifacts(run_id, "figures")} == FIGURES
        assert client.get_run(run_id).data.metrics["time/figures_s"] > 0


def test_the_figure_process_imports_neither_torch_nor_mlflow():
    # its 0.5 s of imports instead of 5 s is what makes it pay on 2 cores (docs/performance.md)
    out = subprocess.run([sys.executable, "-c", "import sys, trainer.evaluate.figure_worker, matplotlib.figure; "
                          "print(sorted(m for m in ('torch', 'mlflow', 'hydra', 'sklearn') if m in sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_run_draws_its_own_figures_when_the_background_process_cannot_start(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("figs")).info.run_id

    def refuse(*args, **kwargs):
        raise OSError("no more processes")

    monkeypatch.setattr(figure_worker.subprocess, "Popen", refuse)
    assert figure_worker.start() is False
    figure_worker.submit(_inputs(), tmp_path / "a", run_id, uri, 1)  # drawn here and now
    assert {a.path for a in client.list_artifacts(run_id, "figures")} == FIGURES
    assert figure_worker.drain() == []


def test_a_signal_while_waiting_for_the_figures_stops_the_process_and_sets_the_exit_status(tmp_path, monkeypatch):
    import os
    import signal
    import threading

    from trainer.runtime import shutdown

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("figs")).info.run_id
    assert figure_worker.start()
    child = figure_worker._worker.process
    os.kill(child.pid, signal.SIGSTOP)  # a figure process that does not get on: the sweep's process waits for it
    figure_worker.submit(_inputs(), tmp_path / "a", run_id, uri, 1)  # returns at once all the same
    monkeypatch.setattr(shutdown, "_exit_code_of_handlers", 0)
    # Python's Ctrl-C, even where the shell that started pytest in the background set it to be ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))  # Ctrl-C while drain() waits
    request.start()
    try:
        assert figure_worker.drain() == [run_id]
    finally:
        request.join()
        signal.signal(signal.SIGINT, previous)
    assert child.poll() is not None  # stopped, not left behind
    assert shutdown._exit_code_of_handlers == 128 + signal.SIGINT
    # what the figures need is logged instead, for scripts/figures.py
    assert client.get_run(run_id).data.tags["figures"] == "later"
    assert deferred.ARTIFACT in {a.path for a in client.list_artifacts(run_id)}


def test_a_process_already_exiting_on_a_signal_does_not_wait_for_the_figures(tmp_path, monkeypatch):
    """A Ctrl-C just before the wait (as a sweep's end printed its links) made the exit wait for every figure: a
    second Ctrl-C within 2 s counts as a repeat of the first and is not raised. The wait is skipped instead."""
    import os
    import signal

    from trainer.runtime import shutdown, signals

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("figs")).info.run_id
    assert figure_worker.start()
    child = figure_worker._worker.process
    os.kill(child.pid, signal.SIGSTOP)  # it would never finish: drain() must not wait for it
    figure_worker.submit(_inputs(), tmp_path / "a", run_id, uri, 1)
    monkeypatch.setattr(shutdown, "_exit_code_of_handlers", 0)
    monkeypatch.setattr(signals, "_exiting_on", signal.SIGINT)  # run_then_exit caught the first Ctrl-C
    assert figure_worker.drain() == [run_id]
    assert child.poll() is not None and shutdown._exit_code_of_handlers == 128 + signal.SIGINT
    assert client.get_run(run_id).data.tags["figures"] == "later"


def test_the_figure_process_is_never_more_than_a_few_runs_behind(tmp_path):
    import os
    import signal
    import threading

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("figs")
    runs = [client.create_run(experiment).info.run_id for _ in range(figure_worker.MAX_BACKLOG + 1)]
    assert figure_worker.start()
    child = figure_worker._worker.process
    os.kill(child.pid, signal.SIGSTOP)  # runs outpace the drawing
    for i, run_id in enumerate(runs[:-1]):
        figure_worker.submit(_inputs(), tmp_path / str(i), run_id, uri, 1)  # handed over at once
    last = threading.Thread(target=figure_worker.submit, args=(_inputs(), tmp_path / "last", runs[-1], uri, 1))
    last.start()
    last.join(1.0)
    assert last.is_alive()  # the next run waits for the drawing instead of piling up a backlog
    os.kill(child.pid, signal.SIGCONT)
    last.join(60)
    assert not last.is_alive()
    assert figure_worker.drain() == []  # at exit: at most MAX_BACKLOG runs to wait for
    for run_id in runs:
        assert {a.path for a in client.list_artifacts(run_id, "figures")} == FIGURES


def test_figures_deferred_by_a_sweep_are_drawn_later_by_the_command(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = train_cli("-m", "loss=plain,weighted", "trainer.epochs=2", "eval.figures=later", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id], "tags.sweep_id != ''")
    parent = runs[0].data.tags["sweep_id"]
    assert len(runs) == 2
    for r in runs:  # nothing drawn, what the figures need logged
        assert r.data.tags["figures"] == "later" and "time/figures_s" not in r.data.metrics
        assert not client.list_artifacts(r.info.run_id, "figures")
    assert f"The figures of 2 runs wait to be drawn: python {ROOT / 'scripts' / 'figures.py'} --parent {parent}" \
        in proc.stdout
    drawn = subprocess.run([sys.executable, str(ROOT / "scripts" / "figures.py"), "--parent", parent], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert drawn.returncode == 0, drawn.stderr
    assert "drew the figures of 2 runs" in drawn.stdout and "Downloading artifacts" not in drawn.stderr
    for r in runs:
        after = client.get_run(r.info.run_id)
        assert after.data.tags["figures"] == "drawn" and after.data.metrics["time/figures_s"] > 0
        assert {a.path for a in client.list_artifacts(r.info.run_id, "figures")} == FIGURES
        assert (Path(after.data.tags["checkpoint.path"]).parent / "figures" / "curves.png").is_file()
    again = subprocess.run([sys.executable, str(ROOT / "scripts" / "figures.py"), "--parent", parent], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "no run's figures wait to be drawn" in again.stdout


def test_figures_off_draws_and_logs_none(run_cfg, store):
    result = run(run_cfg("eval.figures=off"))
    client = MlflowClient(store)
    assert client.get_run(result.run_id).data.tags["figures"] == "off"
    assert not client.list_artifacts(result.run_id, "figures")
    assert deferred.ARTIFACT not in {a.path for a in client.list_artifacts(result.run_id)}
