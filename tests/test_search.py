"""Hyper-parameter search (hydra/sweeper=ce_optuna): presets, the search space, bad input, a real search on
sqlite with its MLflow record and a reproducible best trial, pruning, and a stopped search continued."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from helpers import CONF, ROOT, train_cli
from trainer.config import validate
from trainer.errors import UserError
from trainer.sweep.search import METRICS
from trainer.sweep.search_space import as_override, bounds, parse

PRESETS = sorted(p.stem for p in (CONF / "hparams_search").glob("*.yaml"))


def _compose(*overrides: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def test_the_four_presets_of_the_issue_are_there():
    assert {"focal_gamma", "logit_adjusted_tau", "smote_k", "lr"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_composes_into_a_search_the_trainer_accepts_at_both_ends(preset):
    cfg = _compose(f"hparams_search={preset}")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.ce_optuna_sweeper.sweeper.CeOptunaSweeper"
    assert sweeper.metric in METRICS and sweeper.direction in ("maximize", "minimize")
    assert sweeper.study_name == preset and sweeper.n_trials >= 1
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed is not None
    space = parse(OmegaConf.to_container(sweeper.params), [])
    for key in space.distributions:  # every searched setting exists in the composed experiment
        assert OmegaConf.select(cfg, key, default="<missing>") != "<missing>", key
    for ends in bounds(space.distributions):
        validate(_compose(f"hparams_search={preset}", *ends))


def test_the_presets_choose_the_option_whose_knob_they_search():
    assert _compose("hparams_search=focal_gamma").loss.name == "focal"
    assert _compose("hparams_search=logit_adjusted_tau").loss.name == "logit_adjusted"
    assert _compose("hparams_search=smote_k").resampling.name == "smote"
    assert _compose("hparams_search=lr", "loss=weighted").loss.name == "weighted"  # lr keeps the chosen loss


def test_hydra_sweep_syntax_becomes_optuna_distributions():
    space = parse({"loss.gamma": "interval(0, 5)", "optim.lr": "tag(log, interval(1e-4, 1e-1))",
                   "resampling.sampler.k_neighbors": "range(1, 11)", "optim.weight_decay": "range(0, 0.3, 0.1)"},
                  ["loss=focal", "seed=3", "model=mlp,logreg"])
    d = space.distributions
    assert d["loss.gamma"] == FloatDistribution(0.0, 5.0)
    assert d["optim.lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert d["resampling.sampler.k_neighbors"] == IntDistribution(1, 10)  # Python's range: 11 excluded
    assert isinstance(d["optim.weight_decay"], FloatDistribution) and d["optim.weight_decay"].step == pytest.approx(0.1)
    assert d["model"] == CategoricalDistribution(["mlp", "logreg"])  # a command-line sweep joins the space
    assert space.fixed == ["loss=focal", "seed=3"]


def test_a_command_line_range_replaces_the_presets():
    space = parse({"loss.gamma": "interval(0, 5)"}, ["loss.gamma=interval(1, 2)"])
    assert space.distributions == {"loss.gamma": FloatDistribution(1.0, 2.0)}


@pytest.mark.parametrize("text, says", [
    ("interval(3, 1)", "empty range"), ("interval(2, 2)", "empty range"), ("range(5, 5)", "empty range"),
    ("tag(log, interval(0, 1))", "lower bound > 0"), ("tag(grid, interval(0, 1))", "only tag understood")])
def test_a_bad_range_is_refused_with_the_setting_named(text, says):
    with pytest.raises(UserError, match=re.escape(says)) as e:
        parse({"loss.gamma": text}, [])
    assert "loss.gamma" in str(e.value)


def test_an_empty_space_is_refused():
    with pytest.raises(UserError, match="hydra.sweeper.params is empty"):
        parse({}, ["seed=1"])


def test_a_trial_value_goes_back_as_an_override_that_reproduces_it_exactly():
    x = 0.1 + 0.2
    assert as_override("loss.gamma", x) == f"loss.gamma={x!r}"
    assert float(as_override("loss.gamma", x).split("=")[1]) == x
    assert as_override("a", None) == "a=null" and as_override("a", True) == "a=true" and as_override("k", 3) == "k=3"


# --- through train.py, as a user runs it -------------------------------------------------------------------------

def _store(tmp_path: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")


def _runs(tmp_path: Path):
    client = _store(tmp_path)
    experiment = client.get_experiment_by_name("ce-harness")
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


@pytest.mark.parametrize("args, says", [
    (["hparams_search=focal_gamma", "loss=plain"], "loss.gamma is not a setting of this config"),
    (["hparams_search=lr", "hydra.sweeper.metric=val/auc"], "hydra.sweeper.metric=val/auc"),
    (["hparams_search=lr", "hydra.sweeper.storage=postgresql+psycopg2://nobody@127.0.0.1:9/none"],
     "hydra.sweeper.storage=postgresql+psycopg2://nobody@127.0.0.1:9/none cannot be used"),
    (["hparams_search=focal_gamma", "loss.gamma=interval(-1, 2)"], "loss.gamma=-1.0"),
])
def test_bad_input_gets_one_message_before_any_trial(tmp_path, args, says):
    proc = train_cli("-m", *args, "trainer.epochs=1", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert says in proc.stderr and "error:" in proc.stderr
    assert "Traceback" not in proc.stderr
    runs = _runs(tmp_path)
    assert [r.data.tags.get("sweep") for r in runs] == ["parent"]  # no trial ran
    assert runs[0].info.status == "FAILED"


def _search_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["-m", "hparams_search=lr", "trainer.epochs=3", "trainer.threads=1",
            f"hydra.sweeper.storage=sqlite:///{tmp_path / 'optuna.db'}", *extra]


def _summary_val(stdout: str, column: int) -> float:
    """A column of the `val` row of the run summary (ce, accuracy, balanced_accuracy)."""
    row = next(line for line in stdout.splitlines() if line.startswith("val "))
    return float(row.split()[1 + column])


def test_a_search_on_sqlite_records_the_study_and_its_best_trial_reproduces(tmp_path):
    # three trials, then the same command with n_trials=4: the stopped search continues with one more
    first = train_cli(*_search_args(tmp_path, "hydra.sweeper.n_trials=3", "hydra.sweeper.pruner=null",
                                    "hydra.sweep.dir=sweep1"), cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    second = train_cli(*_search_args(tmp_path, "hydra.sweeper.n_trials=4", "hydra.sweeper.pruner=null",
                                     "hydra.sweep.dir=sweep2"), cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]

    study = optuna.load_study(study_name="lr", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    runs = _runs(tmp_path)
    assert not [r for r in runs if r.info.status != "FINISHED"]
    parents = {r.info.run_id: r for r in runs if r.data.tags.get("sweep") == "parent"}
    assert len(parents) == 2
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in parents]
    assert sorted(int(r.data.tags["optuna.trial"]) for r in children) == [0, 1, 2, 3]
    assert {r.data.tags["optuna.state"] for r in children} == {"COMPLETE"}
    for r in children:
        assert r.data.metrics["optuna/value"] == pytest.approx(study.trials[int(r.data.tags["optuna.trial"])].value)
    last = next(p for p in parents.values() if len([c for c in children if
                                                     c.data.tags["mlflow.parentRunId"] == p.info.run_id]) == 1)
    tags = last.data.tags
    assert tags["optuna.study"] == "lr" and tags["optuna.storage"].startswith("sqlite:///")
    assert tags["optuna.best_trial"] == str(study.best_trial.number)
    assert last.data.params["best.optim.lr"] == str(study.best_params["optim.lr"])
    assert last.data.metrics["best/val/balanced_accuracy"] == pytest.approx(study.best_value)
    artifacts = {a.path for a in _store(tmp_path).list_artifacts(last.info.run_id, "optuna")}
    assert {"optuna/optimization_history.png", "optuna/param_importances.png", "optuna/slice.png"} <= artifacts
    best_run = next(r for r in children if r.info.run_id == tags["optuna.best_run"])
    assert best_run.data.tags["optuna.trial"] == tags["optuna.best_trial"]

    command = shlex.split(tags["optuna.best_command"])
    assert command[:2] == ["python", str(ROOT / "train.py")] and f"optim.lr={study.best_params['optim.lr']!r}" in command
    again = train_cli(*command[2:], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _summary_val(again.stdout, 2) == pytest.approx(study.best_value, abs=5e-5)
    rerun = next(r for r in _runs(tmp_path) if "mlflow.parentRunId" not in r.data.tags
                 and r.data.tags.get("sweep") != "parent")
    assert rerun.data.metrics["test/balanced_accuracy"] == best_run.data.metrics["test/balanced_accuracy"]


def test_pruned_trials_end_finished_with_a_pruned_tag_and_stop_early(tmp_path):
    # in memory (no storage): the jobs of the basic launcher report to the sweeper's own study
    proc = train_cli("-m", "hparams_search=lr", "trainer.epochs=6", "trainer.threads=1", "hydra.sweeper.n_trials=6",
                     "hydra.sweeper.pruner.n_startup_trials=1", "hydra.sweeper.pruner.n_warmup_steps=0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = _runs(tmp_path)
    assert not [r for r in runs if r.info.status != "FINISHED"]
    parent = next(r for r in runs if r.data.tags.get("sweep") == "parent")
    children = [r for r in runs if "optuna.trial" in r.data.tags]
    assert len(children) == 6 and parent.data.tags["optuna.storage"] == "memory"
    pruned = [r for r in children if r.data.tags["optuna.state"] == "PRUNED"]
    assert pruned and parent.data.metrics["optuna/trials/pruned"] == len(pruned)
    for run in children:
        steps = [m.step for m in _store(tmp_path).get_metric_history(run.info.run_id, "val/balanced_accuracy")]
        if run in pruned:
            epoch = int(re.match(r"pruned at epoch (\d+): val/balanced_accuracy=", run.data.tags["pruned"])[1])
            assert epoch < 6 and steps == list(range(1, epoch + 1))  # stopped early, every epoch it ran logged
            assert "test/balanced_accuracy" not in run.data.metrics
        else:
            assert run.data.tags["optuna.state"] == "COMPLETE" and steps == list(range(1, 7))


@pytest.mark.slow
def test_failing_trials_are_told_to_optuna_and_a_search_without_any_complete_trial_exits_2(tmp_path):
    # the missing file passes the config check (it names a file) and fails inside each job
    proc = train_cli(*_search_args(tmp_path, "hydra.sweeper.n_trials=2", "dataset=csv", "dataset.path=missing.csv",
                                   "dataset.target=label"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "study lr: no trial completed; the first failure: trial 0:" in proc.stderr and "missing.csv" in proc.stderr
    study = optuna.load_study(study_name="lr", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]
    runs = _runs(tmp_path)
    assert {r.info.status for r in runs} == {"FAILED"}  # the trials' runs and the parent: none left RUNNING
    assert sorted(r.data.tags.get("optuna.state", "") for r in runs) == ["", "FAIL", "FAIL"]


def test_a_storage_holding_another_application_s_tables_is_refused_before_optuna_touches_it(tmp_path):
    # the MLflow store itself (made by the sweep's parent run) given as Optuna's storage
    proc = train_cli("-m", "hparams_search=lr", "trainer.epochs=1",
                     f"hydra.sweeper.storage=sqlite:///{tmp_path / 'mlflow.db'}", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "the database holds another application's tables (mlflow's?)" in proc.stderr
    assert "Traceback" not in proc.stderr and "no longer compatible" not in proc.stderr
    import sqlalchemy

    tables = sqlalchemy.inspect(sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'mlflow.db'}")).get_table_names()
    assert "runs" in tables and "studies" not in tables and "version_info" not in tables
