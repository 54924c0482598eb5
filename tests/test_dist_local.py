"""Many processes on one machine, no services: a fresh sqlite store created by several at once, an inherited
MLFLOW_RUN_ID, a joblib sweep that must exit, a signal between the jobs of a sweep. Each process runs with a
timeout: a hang fails the test."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from filelock import FileLock
from mlflow.tracking import MlflowClient
from services import sweep_runs

from helpers import ROOT, train_cli
from trainer.tracking.store import sqlite_path

FAST = ["trainer.epochs=2", "trainer.threads=1"]
CREATE = ("import sys; sys.path.insert(0, sys.argv[1]); from trainer.tracking.store import setup_experiment; "
          "print(setup_experiment(sys.argv[2], 'race'))")


def test_processes_creating_one_fresh_sqlite_store_at_once_all_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    procs = [subprocess.Popen([sys.executable, "-c", CREATE, str(ROOT), uri], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-2000:] for _, err in outs]
    assert len({out.strip() for out, _ in outs}) == 1  # one experiment, the same id for all
    client = MlflowClient(uri)  # and the store is whole: a run goes in and comes back
    run = client.create_run(outs[0][0].strip())
    assert client.get_run(run.info.run_id).info.status == "RUNNING"


def test_an_inherited_mlflow_run_id_is_ignored_and_the_old_run_left_untouched(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    old = client.create_run(client.create_experiment("ce-harness"), run_name="old")
    client.log_metric(old.info.run_id, "val/ce", 9.0, step=1)
    client.set_terminated(old.info.run_id, "FINISHED")
    proc = train_cli("trainer.epochs=1", "trainer.threads=1", f"tracking.uri={uri}", cwd=tmp_path,
                     env={"MLFLOW_RUN_ID": old.info.run_id}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"MLFLOW_RUN_ID={old.info.run_id} is set in the environment: ignored" in proc.stdout + proc.stderr
    after = client.get_run(old.info.run_id)
    assert after.info.run_name == "old" and after.info.status == "FINISHED"
    assert [m.value for m in client.get_metric_history(old.info.run_id, "val/ce")] == [9.0]
    assert set(after.data.params) == set()
    new = [r for r in client.search_runs([old.info.experiment_id]) if r.info.run_id != old.info.run_id]
    assert len(new) == 1 and new[0].info.status == "FINISHED"


@pytest.mark.dist
def test_four_independent_runs_on_one_fresh_sqlite_file_all_finish(tmp_path):
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    procs = [subprocess.Popen([sys.executable, str(ROOT / "train.py"), f"seed={s}", *FAST, f"tracking.uri={uri}"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for s in range(4)]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [e[-2000:] for e in errors]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id])
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1", "2", "3"]
    assert all(r.info.status == "FINISHED" for r in runs)


@pytest.mark.dist
def test_a_joblib_sweep_finishes_its_runs_and_exits(tmp_path):
    proc = train_cli("-m", "loss=plain,weighted", "seed=0,1", *FAST, "hydra/launcher=joblib",
                     "hydra.launcher.n_jobs=2", cwd=tmp_path, timeout=600)  # it hung here after the last job
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "validated against ConfigStore schema" not in proc.stderr  # Hydra's warning about the preset's name
    parent, children = sweep_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "ce-harness")
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep.runs"] == "4"
    assert sorted(c.info.status for c in children) == ["FINISHED"] * 4


@pytest.mark.dist
def test_sigterm_between_the_jobs_of_a_sweep_leaves_no_run_running(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # the basic launcher runs the jobs one after another in this process; SIGTERM once the first has finished
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "-m", "seed=0,1,2,3", *FAST], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            done = [r for r in _children(uri) if r.info.status == "FINISHED"]
            if done:
                break
            time.sleep(0.2)
        assert done, f"no job finished: {_state(proc)}"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    parent, children = sweep_runs(uri, "ce-harness")
    assert parent.info.status == "FAILED"
    assert "RUNNING" not in {c.info.status for c in children}
    assert len(children) < 4  # it stopped before the last job
    # the jobs that never ran are listed, each with the command that runs it in the same study
    assert "of 4 jobs of the sweep did not finish" in err and "job 3 (never ran) seed=3" in err, err[-3000:]
    assert f"seed=3 trainer.epochs=2 trainer.threads=1 tracking.parent_run_id={parent.info.run_id}" in err


def _state(proc: subprocess.Popen) -> str:
    """'still running', or the exit code and the end of stderr of a process that ended."""
    return "still running" if proc.poll() is None else f"exit {proc.returncode}: {proc.stderr.read()[-3000:]}"


def _children(uri: str) -> list:
    """The sweep's child runs so far; read under the store's lock: a reader would otherwise race the sweep in
    creating a fresh database."""
    db = sqlite_path(uri)
    if not db.exists():
        return []
    with FileLock(f"{db}.lock"):
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("ce-harness")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], filter_string="tags.sweep_id != ''")


def _sigterm_in_training(tmp_path, *launcher: str) -> tuple[str, str]:
    """Start a two-job sweep with the launcher overrides, send SIGTERM once both jobs train; (store uri, stderr)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "-m", "seed=0,1", "trainer.epochs=100000",
                             "trainer.patience=null", "trainer.threads=1", *launcher],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            training = [r for r in _children(uri) if "val/ce" in r.data.metrics]
            if len(training) == 2:
                break
            time.sleep(0.5)
        assert len(training) == 2, f"the two jobs did not start training: {_state(proc)}"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    return uri, err


@pytest.mark.dist
def test_sigterm_to_a_joblib_sweep_in_training_ends_every_run(tmp_path):
    uri, err = _sigterm_in_training(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    parent, children = sweep_runs(uri, "ce-harness")
    assert parent.info.status == "FAILED"
    assert sorted(c.info.status for c in children) == ["KILLED", "KILLED"]
    # the workers were stopped with their jobs: the sweep's list of unfinished jobs says how to continue each run
    assert "error: 2 of 2 jobs of the sweep did not finish (2 stopped)" in err, err[-3000:]
    for c in children:
        line = next(x for x in err.splitlines() if x.endswith(f"trainer.resume={c.info.run_id}"))
        assert f"python {ROOT / 'train.py'} " in line and f"seed={c.data.params['seed']}" in line
        assert "parent_run_id" not in line  # the run continues where it is, under its parent


@pytest.mark.dist
def test_sigterm_to_a_submitit_local_sweep_stops_its_job_processes(tmp_path):
    uri, err = _sigterm_in_training(tmp_path, "hydra/launcher=submitit_local")
    jobs = subprocess.run(["pgrep", "-f", f"submitit.*{tmp_path}"], capture_output=True, text=True).stdout.split()
    assert not jobs, f"job processes outlived the sweep: {jobs}"
    time.sleep(3)  # a job that went on training would finish or log meanwhile
    parent, children = sweep_runs(uri, "ce-harness")
    assert parent.info.status == "FAILED"
    assert sorted(c.info.status for c in children) == ["KILLED", "KILLED"]
    assert all("interrupted by SIGTERM" in c.data.tags.get("error", "") for c in children), err[-3000:]


@pytest.mark.dist
def test_a_setting_error_in_a_joblib_worker_is_one_line_and_the_other_jobs_finish(tmp_path):
    # focal with a scalar alpha is refused on ten classes, inside the job's worker process
    proc = train_cli("-m", "loss=plain,focal", "+loss.alpha=0.25", "trainer.epochs=1", "hydra/launcher=joblib",
                     "hydra.launcher.n_jobs=2", cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "BrokenProcessPool" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "1 of 2 jobs of the sweep did not finish (1 failed)" in errors[0], proc.stderr
    listed = next(line for line in proc.stderr.splitlines() if line.startswith("  job "))
    assert "(failed)" in listed and "loss=focal" in listed and "loss.alpha=0.25" in listed
    parent, children = sweep_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "ce-harness")
    assert parent.info.status == "FAILED"
    assert sorted((c.data.tags["loss"], c.info.status) for c in children) == [("focal", "FAILED"),
                                                                               ("plain", "FINISHED")]
