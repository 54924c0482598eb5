"""Hydra multirun in a subprocess, as a user runs it: one parent run, children named after their overrides."""
from __future__ import annotations

import shlex

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


def test_a_diverging_job_does_not_stop_the_sweep_which_lists_it_with_the_command_that_reruns_it(tmp_path):
    proc = train_cli("-m", "optim=sgd", "optim.lr=1e-2,1e6,1e-3", "trainer.epochs=2", cwd=tmp_path)
    # exit 2: what failed is a setting's doing (the learning rate), as a single run's refused setting exits
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    runs = _runs(tmp_path)
    parent = next(r for r in runs if r.data.tags.get("sweep") == "parent")
    children = {r.data.params["optim.lr"]: r for r in runs if r is not parent}
    assert {lr: r.info.status for lr, r in children.items()} == {"0.01": "FINISHED", "1000000.0": "FAILED",
                                                                 "0.001": "FINISHED"}  # the job after it ran
    assert {lr: r.data.tags["sweep.job"] for lr, r in children.items()} == {"0.01": "0", "1000000.0": "1",
                                                                            "0.001": "2"}
    assert parent.info.status == "FAILED"
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "1 of 3 jobs of the sweep did not finish (1 failed)" in errors[0], proc.stderr
    rerun_file = next(tmp_path.glob("outputs/sweeps/*/*/rerun.sh"))
    assert str(rerun_file.relative_to(tmp_path)) in errors[0]
    lines = proc.stderr.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  job 1 (failed) optim=sgd optim.lr=1000000.0"))
    assert "the training loss became non-finite" in lines[at] and "No epoch completed" in lines[at]
    command = lines[at + 1].strip()
    assert command in rerun_file.read_text().splitlines()
    assert command.endswith(f"tracking.parent_run_id={parent.info.run_id}")
    assert "Compare this sweep" in proc.stdout  # the runs that finished can be compared
    # the command reruns that job alone, in the same study: a run of the same name under the sweep's parent
    python, script, *overrides = shlex.split(command)
    assert python == "python"
    again = train_cli(*overrides, cwd=tmp_path)
    assert again.returncode == 2 and "non-finite" in again.stderr
    rerun = [r for r in _runs(tmp_path) if r.info.run_id not in {parent.info.run_id, *(c.info.run_id for c in
                                                                                      children.values())}]
    assert len(rerun) == 1 and rerun[0].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert rerun[0].info.run_name == children["1000000.0"].info.run_name


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
    (["loss=plain,focall"], "loss=focall: loss has no option 'focall'; did you mean loss=focal?"),
    (["loss=plain,weighted", "tracking.uri=http://127.0.0.1:9"], "tracking.uri=http://127.0.0.1:9 cannot be reached"),
    # a launcher whose plugin is not installed (hydra/launcher=joblib without the cluster extra)
    (["seed=0,1", "hydra.launcher._target_=hydra_plugins.hydra_joblib_launcher.gone.JoblibLauncher"],
     'hydra/launcher: hydra_plugins.hydra_joblib_launcher.gone.JoblibLauncher is not installed; install the cluster '
     'extra: pip install -e ".[cluster]"'),
    # joblib.Parallel refused it after the parent run was made: a traceback under a list of never-run jobs
    (["seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0"],
     "hydra.launcher.n_jobs=0: joblib runs that many jobs at once; give 1 or more, or -1 for one per core"),
    pytest.param(["seed=0,1", "trainer.device=cuda"], "trainer.device=cuda, but torch sees no CUDA device",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is there")),
])
def test_a_bad_value_anywhere_in_a_sweep_stops_it_before_any_job(tmp_path, args, says):
    proc = train_cli("-m", *args, "trainer.epochs=1", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.startswith("error: ") and says in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()  # no job ran, no parent run was made


def test_the_checks_before_a_sweep_compose_once_per_option_not_once_per_value(monkeypatch):
    import hydra
    from hydra import initialize_config_dir

    from helpers import CONF
    from trainer.errors import UserError
    from trainer.sweep.check import check_sweep

    calls = []
    real = hydra.compose
    monkeypatch.setattr(hydra, "compose", lambda *a, **k: calls.append(k["overrides"]) or real(*a, **k))
    with initialize_config_dir(str(CONF), version_base="1.3"):
        def sweep(*overrides):  # the config of `python train.py -m OVERRIDES`, as the sweep's callback gets it
            from hydra.core.global_hydra import GlobalHydra
            from hydra.types import RunMode

            return GlobalHydra.instance().hydra.compose_config("config", list(overrides), RunMode.MULTIRUN,
                                                               from_shell=False)

        # 600 jobs: 300 seeds x 2 losses; 2 learning rates
        check_sweep(sweep("seed=range(0,300)", "loss=plain,weighted", "optim.lr=1e-3,1e-2"))
        assert calls == [["seed=0", "loss=plain", "optim.lr=0.001"], ["seed=0", "loss=weighted", "optim.lr=0.001"]]
        calls.clear()
        # a bad plain value is found among them, named as its job's override
        bad = sweep("seed=range(0,300)", "loss=plain,weighted", "optim.lr=1e-3,-1,1e-2")
        with pytest.raises(UserError, match=r"^the job with optim.lr=-1: optim.lr=-1 is not valid"):
            check_sweep(bad)
        with pytest.raises(UserError, match=r"^the job with seed=-3: seed=-3 is not valid"):
            check_sweep(sweep("seed=4,-3", "loss=plain,weighted"))


def test_a_sweep_in_several_batches_numbers_and_records_every_job(tmp_path):
    # the basic launcher gets its jobs in batches (it held every job's composed configs until its one batch ended)
    proc = train_cli("-m", "seed=0,1,2", "trainer.epochs=1", "hydra.sweeper.max_batch_size=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = _runs(tmp_path)
    children = [r for r in runs if r.data.tags.get("sweep") != "parent"]
    assert sorted(r.data.tags["sweep.job"] for r in children) == ["0", "1", "2"]
    assert sorted(r.data.params["seed"] for r in children) == ["0", "1", "2"]
    assert all(r.info.status == "FINISHED" for r in runs)


def test_only_the_sequential_launcher_gets_bounded_batches():
    from hydra._internal.core_plugins.basic_launcher import BasicLauncher

    from hydra_plugins.ce_basic_sweeper.sweeper import SEQUENTIAL_BATCH, _batch_size

    assert _batch_size(BasicLauncher()) == SEQUENTIAL_BATCH
    assert _batch_size(object()) is None  # joblib, submitit: a batch runs at once (a Slurm job array)
