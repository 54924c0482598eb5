"""Runs left RUNNING by a process that died without a word (kill -9, a lost node): the next command that opens the
store, or scripts/orphans.py, ends them KILLED and lists a killed sweep's jobs that never ran; runs whose process is
alive, or ran on another host, are left alone unless the user names them."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

from mlflow.tracking import MlflowClient

from helpers import ROOT
from trainer.run import run
from trainer.tracking.tags import PROCESS


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)


def _orphans(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "orphans.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_a_run_ends_the_runs_a_dead_process_of_this_host_left_running_and_no_other(run_cfg, store, caplog):
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("ce-harness") or client.get_experiment(
        client.create_experiment("ce-harness"))
    host = socket.gethostname()

    def running(owner: str) -> str:
        return client.create_run(experiment.experiment_id, tags={PROCESS: owner}).info.run_id

    dead = running(f"{_dead_pid()}@{host}/1")
    alive = running(f"{os.getppid()}@{host}/")  # pytest's parent process
    elsewhere = running("123@another-host/456")
    untagged = running("")  # logged by something else: nothing to check it by
    run(run_cfg("trainer.epochs=1"))
    status = {r: client.get_run(r).info.status for r in (dead, alive, elsewhere, untagged)}
    assert status == {dead: "KILLED", alive: "RUNNING", elsewhere: "RUNNING", untagged: "RUNNING"}
    assert "its process (pid" in client.get_run(dead).data.tags["error"]
    assert f"run {dead}" in caplog.text and "ended KILLED" in caplog.text
    # the user's word ends the others: a host known to be gone, or a run named
    proc = _orphans("--tracking-uri", store, "--host", "another-host", "--run", untagged, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert client.get_run(elsewhere).info.status == client.get_run(untagged).info.status == "KILLED"
    assert client.get_run(alive).info.status == "RUNNING"
    client.set_terminated(alive, "KILLED")


def test_after_kill_9_of_a_sweep_orphans_ends_its_runs_and_lists_the_jobs_that_never_ran(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)  # creates the store (MLflow does it here): not at the same time as the sweep does
    client.search_experiments()
    log = (tmp_path / "sweep.log").open("w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "-m", "seed=0,1,2", "trainer.epochs=100000",
                             "trainer.patience=null"], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        training = []
        while time.monotonic() < deadline and proc.poll() is None and not training:
            time.sleep(0.5)
            experiment = client.get_experiment_by_name("ce-harness")
            if experiment is not None:
                training = client.search_runs([experiment.experiment_id], "metrics.`val/ce` > 0")
        assert training, f"the first job did not start training (exit {proc.poll()}): {log.name}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its figure process: nothing can end a run now
        proc.wait()
        log.close()
    runs = {r.info.run_id: r for r in client.search_runs([training[0].info.experiment_id])}
    assert sorted(r.info.status for r in runs.values()) == ["RUNNING", "RUNNING"]  # the parent and job 0
    listed = _orphans("--dry-run", cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout.count("would end KILLED") == 2, listed.stdout + listed.stderr
    assert all(client.get_run(r).info.status == "RUNNING" for r in runs)
    ended = _orphans(cwd=tmp_path)
    assert ended.returncode == 0, ended.stderr
    assert "Downloading artifacts" not in ended.stderr  # MLflow's progress bar for the sweep's jobs.json
    assert all(client.get_run(r).info.status == "KILLED" for r in runs)
    out = ended.stdout
    job0 = training[0].info.run_id
    assert f"run {job0} ('seed=0,trainer.epochs=100000,trainer.patience=null') was RUNNING" in out
    assert f"trainer.resume={job0}" in out  # it has a checkpoint: continue it
    assert "3 of 3 jobs of the sweep did not finish (1 stopped, 2 never ran)" in out
    assert "job 1 (never ran) seed=1 trainer.epochs=100000 trainer.patience=null" in out
    rerun = next(tmp_path.glob("outputs/sweeps/*/*/rerun.sh")).read_text()
    assert "seed=2" in rerun and f"trainer.resume={job0}" in rerun
    again = _orphans(cwd=tmp_path)
    assert "no RUNNING run whose process is gone" in again.stdout
