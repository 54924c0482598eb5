"""What the MLflow UI shows of a run: its data as a dataset input (the Dataset column), its description linking the
learning curves on MLflow's metric page, one-value metrics at step 0 (bars, not lone dots), and the printed link to
its page in the Model training layout."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from mlflow.tracking import MlflowClient

from helpers import make_cfg
from trainer.run import run
from trainer.tracking import data_input as data_inputs, ui_links
from trainer.tracking.data_input import data_input


def test_a_run_logs_its_data_its_curve_links_and_its_one_value_metrics_at_step_0(run_cfg, store):
    result = run(run_cfg("trainer.epochs=3", "trainer.patience=null"))
    client = MlflowClient(store)
    r = client.get_run(result.run_id)
    (given,) = r.inputs.dataset_inputs  # the UI's Dataset column: "digits (<digest>)"
    assert (given.dataset.name, given.dataset.digest) == ("digits", r.data.tags["data.source_fingerprint"][:8])
    assert given.dataset.source_type == "code" and "sklearn.datasets.load_digits" in given.dataset.source
    assert {t.key: t.value for t in given.tags} == {"mlflow.data.context": "training"}
    for key in ("test/balanced_accuracy", "best/val/ce", "time/train_s", "time/figures_s"):
        assert [m.step for m in client.get_metric_history(result.run_id, key)] == [0], key  # a bar in the UI
    assert [m.step for m in client.get_metric_history(result.run_id, "val/ce")] == [1, 2, 3]  # a curve
    links = [part.split("](", 1)[1].split(")", 1)[0] for part in r.data.tags["mlflow.note.content"].split("[")[1:]]
    plotted = []
    for link in links:  # each opens MLflow's metric page on this run's curves, in the Model training layout
        path, query = link.split("?", 1)
        params = {k: v[0] for k, v in parse_qs(query).items()}
        assert path == "#/metric/" and json.loads(params["runs"]) == [result.run_id]
        assert json.loads(params["experiments"]) == [r.info.experiment_id]
        assert params["workflowType"] == "machine_learning"
        assert not set(link) & set('"[] ')  # MLflow's markdown would end the link there
        plotted += json.loads(params["plot_metric_keys"])
    assert plotted == ["train/ce", "val/ce", "train/loss", "val/loss", "val/balanced_accuracy"]
    assert all(client.get_metric_history(result.run_id, key) for key in plotted)


def test_a_table_is_named_by_its_file_and_sourced_from_its_path(tmp_path):
    (tmp_path / "yeast4.dat").write_text("")
    cfg = make_cfg("dataset=csv", f"dataset.path={tmp_path / 'yeast4.dat'}").dataset
    given = data_input(cfg, "ab" * 32)
    assert (given.name, given.digest) == ("yeast4.dat", "abababab")
    assert given.source._get_source_type() == "local" and json.loads(given.source.to_json())["uri"].endswith(
        f"{tmp_path.name}/yeast4.dat")
    other = data_input(cfg, "cd" * 32)  # other contents of the same path: another digest
    assert other.digest != given.digest


def test_the_printed_run_page_opens_in_the_model_training_layout():
    page = ui_links.run_page("3", "abc")
    assert page == "#/experiments/3/runs/abc?workflowType=machine_learning"
    assert ui_links.address("http://mlflow.lab:5000/") == ("open", "http://mlflow.lab:5000")
    how, where = ui_links.address("sqlite:////somewhere/mlflow.db")
    assert how == "mlflow ui --backend-store-uri sqlite:////somewhere/mlflow.db, then open"
    assert where == ui_links.LOCAL_UI
    assert urlsplit(where + "/" + page).fragment == page[1:]


def test_a_dataset_entry_another_run_inserted_first_is_linked_on_the_next_try(monkeypatch, tmp_path):
    # two jobs of a joblib sweep on the MLflow server (PostgreSQL) inserted the same dataset entry at once
    import mlflow
    from mlflow.exceptions import MlflowException

    calls = []

    def log_input(entry, context):
        calls.append((entry.digest, context))
        if len(calls) == 1:
            raise MlflowException('(psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint '
                                  '"dataset_pk"')

    monkeypatch.setattr(mlflow, "log_input", log_input)
    cfg = make_cfg("dataset=csv", f"dataset.path={tmp_path / 'a.csv'}").dataset
    data_inputs.log_data_input(cfg, "ab" * 32)
    assert calls == [("abababab", "training")] * 2
    monkeypatch.setattr(mlflow, "log_input", lambda entry, context: (_ for _ in ()).throw(MlflowException("other")))
    with pytest.raises(MlflowException, match="^other$"):  # any other refusal is not retried
        data_inputs.log_data_input(cfg, "ab" * 32)

