"""Names bounded whatever the overrides: a 40 KB setting (the feature list of a wide table) makes no 40,000-character
run name, tag or file name, a param cut at MLflow's 6,000 characters is said, and the whole value is kept."""
from __future__ import annotations

import csv

import yaml
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from trainer.analysis.grouping import safe_name
from trainer.run import run
from trainer.sweep import outcome
from trainer.tracking.params import MAX_NAME_CHARS, bounded


def test_a_40_kb_setting_makes_a_bounded_run_name_a_said_cut_and_keeps_the_whole_value(run_cfg, store, tmp_path,
                                                                                       caplog):
    names = [f"measurement_{i:03d}_" + "x" * 1000 for i in range(40)]  # 40 KB of column names
    with open(tmp_path / "wide.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*names, "label"])
        w.writerows([[str((r * 7 + c) % 5) for c in range(40)] + [f"c{r % 3}"] for r in range(150)])
    features = "[" + ",".join(names) + "]"
    result = run(run_cfg("dataset=csv", f"dataset.path={tmp_path / 'wide.csv'}", "dataset.target=label",
                         f"dataset.features={features}", "trainer.epochs=1", f"tracking.run_name='run {features}'"))
    client = MlflowClient(store)
    r = client.get_run(result.run_id)
    assert len(r.info.run_name) == MAX_NAME_CHARS and r.info.run_name.startswith("run [measurement_000_xxx")
    assert len(r.data.params["dataset.features"]) == 6000
    assert r.data.tags["params.cut"] == "dataset.features, tracking.run_name"
    assert "MLflow keeps 6000 characters of a param: dataset.features, tracking.run_name cut" in caplog.text
    stored = yaml.safe_load(open(client.download_artifacts(result.run_id, "config.yaml", str(tmp_path))))
    assert stored["dataset"]["features"] == names


def test_long_names_are_cut_with_a_hash_that_keeps_them_apart():
    a, b = "x" * 40_000 + "a", "x" * 40_000 + "b"
    assert bounded("short") == "short"
    assert len(bounded(a)) == MAX_NAME_CHARS and bounded(a) != bounded(b)
    assert len(safe_name(a)) <= 100 and safe_name(a) != safe_name(b)  # compare's file names


def test_a_sweep_records_a_setting_every_job_shares_once(store):
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("ce-harness") or client.get_experiment(
        client.create_experiment("ce-harness"))
    parent = client.create_run(experiment.experiment_id).info.run_id
    wide = "dataset.features=[" + "f" * 40_000 + "]"
    jobs = outcome.jobs_of([[f"seed={s}", wide, f"loss={loss}"] for loss in ("plain", "weighted") for s in range(50)])
    outcome.log_jobs(store, parent, jobs)
    logged = outcome.logged_jobs(client, parent)
    assert [j.overrides for j in logged] == [j.overrides for j in jobs]
    size = sum(f.file_size for f in client.list_artifacts(parent) if f.path == outcome.JOBS_ARTIFACT)
    assert size < 50_000  # the 40 KB setting once, not once per job


def test_a_sqlite_store_reads_metric_histories_through_its_run_index_once_refreshed(tmp_path):
    import sqlite3

    from trainer.tracking.store import refresh_statistics

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("e")
    for _ in range(20):
        run_id = client.create_run(experiment).info.run_id
        client.log_batch(run_id, metrics=[Metric("val/ce", 1.0, 0, step) for step in range(5)])
    query = "explain query plan select * from metrics where run_uuid = 'x' and key = 'val/ce'"
    with sqlite3.connect(tmp_path / "mlflow.db") as con:
        assert "index_metrics_run_uuid" not in str(con.execute(query).fetchall())  # the (key, ...) primary key
    refresh_statistics(uri)
    with sqlite3.connect(tmp_path / "mlflow.db") as con:
        assert "index_metrics_run_uuid_key_step" in str(con.execute(query).fetchall())
    refresh_statistics("http://127.0.0.1:1")  # not a sqlite store: nothing to do
