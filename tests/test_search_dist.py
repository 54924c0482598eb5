"""Two worker commands sharing one Optuna study on PostgreSQL ($CE_PG_URI), as on two machines."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import optuna
import pytest
from mlflow.tracking import MlflowClient

from helpers import ROOT
from trainer.tracking.store import setup_experiment

pytestmark = pytest.mark.dist


@pytest.fixture
def pg_url():
    """A fresh database on the server at $CE_PG_URI (dropped afterwards), as a postgresql+psycopg2:// URL."""
    server = os.environ.get("CE_PG_URI")
    if not server:
        if os.environ.get("CI") == "true":
            pytest.fail("CE_PG_URI is unset in CI: .ci/run must start PostgreSQL and export "
                        "CE_PG_URI=postgresql+psycopg2://postgres@127.0.0.1:PORT/postgres")
        pytest.skip("CE_PG_URI is unset: set it to a PostgreSQL server, e.g. "
                    "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"ce_search_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(server).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_two_workers_share_one_study_on_postgresql(tmp_path, pg_url):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    setup_experiment(store, "ce-harness")  # a fresh sqlite store is created once, before parallel writers
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    workers = [subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), "-m", "hparams_search=lr", "trainer.epochs=8", "trainer.threads=1",
         f"tracking.uri={store}", f"hydra.sweeper.storage={pg_url}", "hydra.sweeper.study_name=shared",
         "hydra.sweeper.n_trials=6", f"hydra.sweeper.sampler.seed={i}", f"hydra.sweep.dir=worker{i}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        for i in (1, 2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (_, err) in zip(workers, outputs):
        assert w.returncode == 0, err[-3000:]

    study = optuna.load_study(study_name="shared", storage=pg_url)
    states = [t.state.name for t in study.trials]
    assert 6 <= len(states) <= 7 and "RUNNING" not in states and "FAIL" not in states, states  # one batch may overshoot
    assert all(t.intermediate_values for t in study.trials)  # every job reported its epochs to the shared study

    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id])
    assert not [r for r in runs if r.info.status == "RUNNING"]
    parents = [r for r in runs if r.data.tags.get("sweep") == "parent"]
    assert len(parents) == 2 and {p.data.tags["optuna.study_id"] for p in parents} == {str(study._study_id)}
    by_parent = {p.info.run_id: sorted(int(r.data.tags["optuna.trial"]) for r in runs
                                       if r.data.tags.get("mlflow.parentRunId") == p.info.run_id) for p in parents}
    assert all(by_parent.values()), by_parent  # both workers ran trials of the one study
    numbers = sorted(n for ns in by_parent.values() for n in ns)
    assert numbers == [t.number for t in study.trials]  # each trial ran once, by one of them
    best = {p.data.tags["optuna.best_trial"] for p in client.search_runs(
        [parents[0].info.experiment_id], "tags.sweep = 'parent'")}
    assert str(study.best_trial.number) in best  # the worker that ended last saw the study's best
