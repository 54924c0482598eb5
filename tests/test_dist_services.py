"""Sweeps through real launchers against real services (.ci/services.sh): an MLflow server on PostgreSQL and a
one-node Slurm cluster. Read back with MlflowClient: every run ends, under one parent, with all its epochs and
artifacts. Without the services these tests skip (and fail under CI=true)."""
from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest
from mlflow.tracking import MlflowClient
from services import require, sweep_runs

from helpers import ROOT, train_cli

pytestmark = pytest.mark.dist

EPOCHS = 3
PER_EPOCH = ("train/ce", "train/loss", "val/ce", "val/loss", "val/accuracy", "val/balanced_accuracy",
             "val/macro_f1", "val/ece", "lr")
# submitit runs each job with the launching interpreter; `unset` shows that the job needs nothing from the shell
SLURM = ["hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=null",
         "hydra.launcher.timeout_min=20", "hydra.launcher.setup=['unset MLFLOW_TRACKING_URI']"]
JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


@pytest.mark.parametrize("launcher", [JOBLIB, SLURM], ids=["joblib", "submitit_slurm"])
def test_a_four_job_sweep_against_the_mlflow_server_records_every_run(tmp_path, launcher):
    uri = require("CE_MLFLOW_URI")
    if launcher is SLURM:
        require("SLURM_CONF")
    experiment = _experiment()
    proc = train_cli("-m", "loss=plain,weighted", "seed=0,1", f"trainer.epochs={EPOCHS}", "trainer.patience=null",
                     "trainer.threads=1", f"tracking.experiment={experiment}", *launcher, cwd=tmp_path, timeout=900,
                     env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    parent, children = sweep_runs(uri, experiment)
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep.runs"] == "4"
    assert sorted(c.info.run_name for c in children) == sorted(
        f"loss={loss},seed={seed},trainer.epochs={EPOCHS},trainer.patience=null,trainer.threads=1"
        for loss in ("plain", "weighted") for seed in (0, 1))
    client = MlflowClient(uri)
    for child in children:
        assert child.info.status == "FINISHED"
        for name in PER_EPOCH:
            assert [m.step for m in client.get_metric_history(child.info.run_id, name)] == list(
                range(1, EPOCHS + 1)), (child.info.run_name, name)
        assert "test/balanced_accuracy" in child.data.metrics
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"config.yaml", "class_counts.json", ".hydra"} <= artifacts, artifacts
        assert client.list_artifacts(child.info.run_id, "figures"), "no figures"


def test_a_slurm_job_cancelled_mid_training_ends_killed_and_fails_the_parent(tmp_path):
    uri = require("CE_MLFLOW_URI")
    require("SLURM_CONF")
    experiment = _experiment()
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "-m", "trainer.epochs=2,100000",
                             "trainer.patience=null", "trainer.threads=1", f"tracking.uri={uri}",
                             f"tracking.experiment={experiment}", *SLURM], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = MlflowClient(uri)
    try:
        long_run = _wait_for_training(client, experiment, "trainer.epochs=100000", proc)
        subprocess.run(["scancel", _only_job()], check=True)
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode != 0
    parent, children = sweep_runs(uri, experiment)
    status = {c.info.run_name.split(",")[0]: c.info.status for c in children}
    assert status == {"trainer.epochs=2": "FINISHED", "trainer.epochs=100000": "KILLED"}, err[-3000:]
    assert parent.info.status == "FAILED"
    assert "interrupted by SIGTERM" in client.get_run(long_run).data.tags["error"]


def test_stopping_a_slurm_sweep_cancels_its_jobs_and_ends_their_runs_killed(tmp_path):
    uri = require("CE_MLFLOW_URI")
    require("SLURM_CONF")
    experiment = _experiment()
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "-m", "loss=plain,weighted",
                             "trainer.epochs=100000", "trainer.patience=null", "trainer.threads=1",
                             f"tracking.uri={uri}", f"tracking.experiment={experiment}", *SLURM], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = MlflowClient(uri)
    try:
        _wait_for_runs_training(client, experiment, 2, proc)
        jobs = _sweep_jobs(tmp_path)
        assert len(jobs) == 2, jobs
        proc.terminate()  # SIGTERM to the launching process only, not to its Slurm jobs
        _, err = proc.communicate(timeout=120)
        deadline = time.monotonic() + 30
        while set(jobs) & set(_queued()) and time.monotonic() < deadline:
            time.sleep(1)
        assert not set(jobs) & set(_queued()), f"Slurm jobs {jobs} still queued 30 s after the sweep stopped"
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-3000:]
    time.sleep(5)  # a job that went on training would log or finish meanwhile
    parent, children = sweep_runs(uri, experiment)
    assert parent.info.status == "FAILED"
    assert sorted(c.info.status for c in children) == ["KILLED", "KILLED"], err[-3000:]
    for child in children:
        assert client.get_run(child.info.run_id).info.status == "KILLED"


def test_a_slurm_submission_refused_by_sbatch_is_one_error_line_and_fails_the_parent(tmp_path):
    uri = require("CE_MLFLOW_URI")
    require("SLURM_CONF")
    experiment = _experiment()
    proc = train_cli("-m", "loss=plain", "trainer.epochs=1", f"tracking.uri={uri}", f"tracking.experiment={experiment}",
                     *SLURM, "hydra.launcher.mem_gb=100000", cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "hydra.launcher.mem_gb=100000" in errors[0], proc.stderr[-3000:]
    parent, children = sweep_runs(uri, experiment)
    assert parent.info.status == "FAILED" and not children


def _experiment() -> str:
    return f"dist-{uuid.uuid4().hex[:12]}"  # the server outlives the test (and pytest reuses tmp_path names)


def _only_job() -> str:
    """The Slurm id of the one job left of the sweep (the short one's process exits after its run finished)."""
    for _ in range(120):
        jobs = subprocess.run(["squeue", "-h", "-r", "-n", "train", "-t", "PENDING,RUNNING", "-o", "%i"], capture_output=True, text=True,
                              check=True).stdout.split()
        if len(jobs) == 1:
            return jobs[0]
        time.sleep(0.5)
    raise AssertionError(f"Slurm jobs of the sweep: {jobs}")


def _wait_for_training(client: MlflowClient, experiment: str, name: str, proc: subprocess.Popen) -> str:
    """The id of the child run whose name starts with name, once it has logged an epoch and the other child has
    finished."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        found = client.get_experiment_by_name(experiment)
        runs = client.search_runs([found.experiment_id], "tags.sweep_id != ''") if found else []
        target = [r for r in runs if r.info.run_name.startswith(name) and "val/ce" in r.data.metrics]
        others = [r for r in runs if not r.info.run_name.startswith(name) and r.info.status == "FINISHED"]
        if target and others:
            return target[0].info.run_id
        time.sleep(1)
    raise AssertionError(f"{name} did not start training")


def _queued() -> list[str]:
    """Every job and array task in the Slurm queue (12_0, 12_1)."""
    return subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, check=True).stdout.split()


def _sweep_jobs(cwd) -> list[str]:
    """The Slurm ids of the sweep's jobs, from submitit's folders under the sweep dir (<sweep>/.submitit/<id>/)."""
    return sorted(p.name for p in cwd.glob("outputs/sweeps/*/*/.submitit/*_*") if p.is_dir())


def _wait_for_runs_training(client: MlflowClient, experiment: str, n: int, proc: subprocess.Popen) -> None:
    """Until n child runs of the experiment have logged an epoch."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        found = client.get_experiment_by_name(experiment)
        runs = client.search_runs([found.experiment_id], "tags.sweep_id != ''") if found else []
        if sum("val/ce" in r.data.metrics for r in runs) >= n:
            return
        time.sleep(1)
    raise AssertionError(f"{n} runs did not start training")
