"""Hydra multirun in a subprocess, as a user runs it: one parent run, children named after their overrides."""
from __future__ import annotations

import pytest
import torch
from mlflow.tracking import MlflowClient

from helpers import train_cli


def _runs(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ce-harness")
    return client.search_runs([experiment.experiment_id])


def test_sweep_makes_child_runs_of_one_parent_named_after_their_overrides(tmp_path):
    proc = train_cli("-m", "loss=plain,weighted", "seed=0,1", "trainer.epochs=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = _runs(tmp_path)
    parents = [r for r in runs if r.data.tags.get("sweep") == "parent"]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == [
        "loss=plain,seed=0,trainer.epochs=2", "loss=plain,seed=1,trainer.epochs=2",
        "loss=weighted,seed=0,trainer.epochs=2", "loss=weighted,seed=1,trainer.epochs=2"]
    assert len(runs) == 5
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.tags["sweep_id"] == parent.info.run_id for r in children)
    assert {r.data.tags["loss"] for r in children} == {"plain", "weighted"}
    assert parent.data.tags["sweep.runs"] == "4"


def test_a_failing_job_fails_the_parent_and_leaves_nothing_running(tmp_path):
    # focal with a scalar alpha is refused on ten classes: that job fails inside its run, the other finishes
    proc = train_cli("-m", "loss=plain,focal", "+loss.alpha=0.25", "trainer.epochs=1", cwd=tmp_path)
    # one line and exit 2, as a single run reports it, not Hydra's traceback of the job
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "error: the job with +loss.alpha=0.25,loss=focal,trainer.epochs=1: loss.alpha" in proc.stderr
    runs = _runs(tmp_path)
    status = {r.info.run_name: r.info.status for r in runs}
    assert not [s for s in status.values() if s == "RUNNING"], status
    parent = next(r for r in runs if r.data.tags.get("sweep") == "parent")
    assert parent.info.status == "FAILED"
    assert status["+loss.alpha=0.25,loss=focal,trainer.epochs=1"] == "FAILED"
    assert status["+loss.alpha=0.25,loss=plain,trainer.epochs=1"] == "FINISHED"


@pytest.mark.slow
def test_the_readme_sweep_makes_eight_runs(tmp_path):
    proc = train_cli("-m", "loss=plain,weighted,label_smoothed,focal", "seed=0,1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = _runs(tmp_path)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 8 and all(r.info.status == "FINISHED" for r in children)
    assert "loss=weighted,seed=1" in {r.info.run_name for r in children}


@pytest.mark.parametrize("args, says", [
    (["loss=plain,weighted", "seed=0,-1"], "the job with seed=-1: seed=-1 is not valid"),
    (["loss=plain,focal", "+loss.gama=2"], "did you mean loss.gamma?"),
    (["loss=plain,focall"], "the job with loss=focall"),
    (["loss=plain,weighted", "tracking.uri=http://127.0.0.1:9"], "tracking.uri=http://127.0.0.1:9 cannot be reached"),
    # a launcher whose plugin is not installed (hydra/launcher=joblib without the cluster extra)
    (["seed=0,1", "hydra.launcher._target_=hydra_plugins.hydra_joblib_launcher.gone.JoblibLauncher"],
     'hydra/launcher: hydra_plugins.hydra_joblib_launcher.gone.JoblibLauncher is not installed; install the cluster '
     'extra: pip install -e ".[cluster]"'),
    pytest.param(["seed=0,1", "trainer.device=cuda"], "trainer.device=cuda, but torch sees no CUDA device",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is there")),
])
def test_a_bad_value_anywhere_in_a_sweep_stops_it_before_any_job(tmp_path, args, says):
    proc = train_cli("-m", *args, "trainer.epochs=1", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.startswith("error: ") and says in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()  # no job ran, no parent run was made
