"""scripts/compare.py: selection, grouping by what differs, aggregation over seeds, ranking, files, messages.

Most tests write runs straight into a throwaway store with MlflowClient (known metric values, no training);
one slow test compares a real sweep made by train.py.
"""
from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, train_cli
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from trainer import compare

GROUP_TAGS = {"dataset": "digits", "imbalance": "longtail", "noise": "none", "model": "mlp", "loss": "plain",
              "resampling": "none", "regularization": "none", "optim": "adam"}


@pytest.fixture(scope="session")
def empty_db(tmp_path_factory):
    """A migrated, empty sqlite store, copied by each test (creating one costs seconds)."""
    path = tmp_path_factory.mktemp("empty") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path, empty_db):
    shutil.copy(empty_db, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def add_run(client, experiment_id, name, tags=None, params=None, metrics=None, curve=(), parent=None,
            status="FINISHED"):
    """A run as the trainer leaves it: group tags, params, final metrics and a val/ce history."""
    all_tags = GROUP_TAGS | (tags or {}) | ({"mlflow.parentRunId": parent} if parent else {})
    run = client.create_run(experiment_id, run_name=name, tags=all_tags)
    rid = run.info.run_id
    client.log_batch(rid, metrics=[Metric(k, v, 0, 1) for k, v in (metrics or {}).items()]
                     + [Metric("val/ce", v, 0, step) for step, v in enumerate(curve, 1)],
                     params=[Param(k, str(v)) for k, v in (params or {}).items()])
    client.set_terminated(rid, status)
    return rid


def make_sweep(client, experiment="ce-harness", runs=()):
    """A parent run and its children: runs is a list of (name, tags, params, metrics, curve[, status])."""
    exp = client.get_experiment_by_name(experiment)
    eid = exp.experiment_id if exp else client.create_experiment(experiment)
    parent = client.create_run(eid, run_name="sweep test", tags={"sweep": "parent"}).info.run_id
    for name, tags, params, metrics, curve, *status in runs:
        add_run(client, eid, name, tags, params, metrics, curve, parent, *status)
    client.set_terminated(parent, "FINISHED")
    return parent


BAL_ACC = {("plain", 0): 0.70, ("plain", 1): 0.74, ("plain", 2): 0.69,
           ("focal", 0): 0.80, ("focal", 1): 0.78, ("focal", 2): 0.83}


def loss_sweep(client):
    """2 losses x 3 seeds; focal carries loss.gamma=2 (a setting plain does not have)."""
    runs = []
    for (loss, seed), acc in BAL_ACC.items():
        params = {"seed": seed, "loss.name": loss, "trainer.epochs": 3, "torch.threads": 2 + seed}
        if loss == "focal":
            params["loss.gamma"] = 2
        metrics = {"test/balanced_accuracy": acc, "test/ce": 1 - acc, "test/recall/0": 0.9,
                   "test/recall/1": acc - 0.3}
        runs.append((f"loss={loss},seed={seed}", {"loss": loss}, params, metrics, [2.0 - acc, 1.5 - acc, 1.0 - acc]))
    return make_sweep(client, runs=runs)


def test_groups_by_the_options_that_differ_and_aggregates_over_seeds(store):
    client = MlflowClient(store)
    parent = loss_sweep(client)
    sel = compare.select(client, store, parent=parent)
    c = compare.compare(sel.runs)
    assert c.keys == ["loss"]  # not seed, not torch.threads, not loss.gamma (the same wherever it is set)
    assert [row["loss"] for row in c.rows] == ["focal", "plain"]  # higher balanced accuracy first
    for row in c.rows:
        values = [acc for (loss, _), acc in BAL_ACC.items() if loss == row["loss"]]
        assert row["n"] == 3 and row["test/balanced_accuracy n"] == 3
        assert row["test/balanced_accuracy mean"] == pytest.approx(np.mean(values))
        assert row["test/balanced_accuracy std"] == pytest.approx(np.std(values, ddof=1))
        assert row[f"{compare.WORST_RECALL} mean"] == pytest.approx(np.mean(values) - 0.3)
    assert list(c.groups) == ["loss=focal", "loss=plain"]
    assert {r.info.run_name for r in c.groups["loss=plain"]} == {"loss=plain,seed=0", "loss=plain,seed=1",
                                                                 "loss=plain,seed=2"}


def test_a_lower_is_better_metric_ranks_ascending(store):
    client = MlflowClient(store)
    c = compare.compare(compare.select(client, store, parent=loss_sweep(client)).runs, metric="test/ce")
    assert [row["loss"] for row in c.rows] == ["focal", "plain"]
    assert c.rows[0]["test/ce mean"] < c.rows[1]["test/ce mean"]
    assert compare.lower_is_better("best/val/ce") and not compare.lower_is_better("test/macro_f1")


def test_a_setting_that_differs_is_a_grouping_key_and_runs_without_it_are_labelled_without_it(store):
    client = MlflowClient(store)
    # loss._target_ changes with the loss tag: it separates nothing new and is no grouping key
    runs = [(f"g{g}", {"loss": "focal"}, {"loss.gamma": g, "seed": 0, "loss._target_": "Focal"},
             {"test/balanced_accuracy": 0.5 + g / 10}, []) for g in (1, 2)]
    runs.append(("plain", {"loss": "plain"}, {"seed": 0, "loss._target_": "CE"}, {"test/balanced_accuracy": 0.9}, []))
    c = compare.compare(compare.select(client, store, parent=make_sweep(client, runs=runs)).runs)
    assert c.keys == ["loss", "loss.gamma"]
    assert list(c.groups) == ["loss=plain", "loss=focal, loss.gamma=2", "loss=focal, loss.gamma=1"]


def test_runs_lacking_the_metric_are_named_and_left_out_of_its_mean(store):
    client = MlflowClient(store)
    runs = [("a0", {"loss": "a"}, {"seed": 0}, {"test/balanced_accuracy": 0.6}, []),
            ("a1", {"loss": "a"}, {"seed": 1}, {"test/ce": 0.3}, []),
            ("b0", {"loss": "b"}, {"seed": 0}, {"test/ce": 0.2}, [])]
    c = compare.compare(compare.select(client, store, parent=make_sweep(client, runs=runs)).runs)
    assert c.warnings == ["2 of 3 runs lack test/balanced_accuracy and are left out of its mean: a1, b0"]
    a, b = c.rows  # a group without the metric at all ranks last
    assert (a["loss"], a["test/balanced_accuracy mean"], a["test/balanced_accuracy n"], a["n"]) == ("a", 0.6, 1, 2)
    assert b["loss"] == "b" and b["test/balanced_accuracy n"] == 0
    header, rows = compare.rows_for_display(c)
    assert rows[0][header.index("test/balanced_accuracy")] == "0.6000 (n=1)"
    assert rows[1][header.index("test/balanced_accuracy")] == "–"
    with pytest.raises(compare.UserError, match=r"--metric test/f2: none of the 3 runs has it\. Metrics they have: "
                                                r"test/balanced_accuracy, test/ce"):
        compare.compare(c.groups["loss=a"] + c.groups["loss=b"], metric="test/f2")


def test_the_command_prints_writes_and_logs_the_latest_sweep(store, tmp_path, monkeypatch, capsys):
    client = MlflowClient(store)
    make_sweep(client, runs=[("old", {"loss": "old"}, {}, {"test/balanced_accuracy": 0.1}, [])])
    parent = loss_sweep(client)  # the latest sweep: the default selection
    add_run(client, client.get_experiment_by_name("ce-harness").experiment_id, "loss=plain,seed=3",
            {"loss": "plain"}, {"seed": 3}, {"test/balanced_accuracy": 0.99}, parent=parent, status="FAILED")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)  # resolved as the trainer resolves it
    assert compare.main([]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    assert lines[0].split("|")[1:4] == [" rank ", " loss  ", " n "]
    assert [line.split("|")[2].strip() for line in lines[1:]] == ["focal", "plain"]  # "old" is another sweep
    assert "1 runs not finished, left out: loss=plain,seed=3 (FAILED)" in out
    folder = tmp_path / "outputs" / "compare" / f"sweep-{parent[:8]}"
    assert {p.name for p in folder.iterdir()} == set(compare.FILES)
    assert (folder / "table.md").read_text().startswith(f"sweep 'sweep test' ({parent}): 6 finished runs in 2 groups")
    with open(folder / "table.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["rank"], r["loss"], r["n"]) for r in rows] == [("1", "focal", "3"), ("2", "plain", "3")]
    assert float(rows[1]["test/balanced_accuracy mean"]) == pytest.approx(np.mean([0.70, 0.74, 0.69]))
    assert (folder / "curves.png").read_bytes()[:4] == b"\x89PNG"
    logged = {a.path for a in client.list_artifacts(parent, "compare")}
    assert logged == {f"compare/{name}" for name in compare.FILES}


def test_curves_draw_the_mean_of_each_group_and_the_seed_spread(store):
    client = MlflowClient(store)
    c = compare.compare(compare.select(client, store, parent=loss_sweep(client)).runs)
    fig = compare.curves_figure(client, c, "title")
    ax = fig.axes[0]
    focal = next(line for line in ax.get_lines() if "loss=focal (n=3)" in line.get_label())
    accs = [acc for (loss, _), acc in BAL_ACC.items() if loss == "focal"]
    assert list(focal.get_xdata()) == [1, 2, 3]
    assert list(focal.get_ydata()) == pytest.approx([2.0 - np.mean(accs), 1.5 - np.mean(accs), 1.0 - np.mean(accs)])
    assert len(ax.collections) == 2  # one band per group


@pytest.mark.parametrize("args,setup,message", [
    ([], None, "no sweep in sqlite:///"),
    (["--parent", "0123abc"], None, "--parent 0123abc: no run with that id"),
    (["--experiment", "nope"], None, "--experiment 'nope': no such experiment in sqlite:///"),
    (["--parent", "{single}"], "single", "has no child runs; give the id of a sweep's parent run"),
    ([], "failed", "has no finished run to compare (1 not finished: x (FAILED))"),
])
def test_nothing_to_compare_is_one_clear_message(store, capsys, args, setup, message):
    client = MlflowClient(store)
    eid = client.create_experiment("ce-harness")
    single = add_run(client, eid, "single", metrics={"test/balanced_accuracy": 0.5})
    if setup == "failed":
        make_sweep(client, runs=[("x", {}, {}, {}, [], "FAILED")])
    args = [a.format(single=single) for a in args]
    assert compare.main([*args, "--tracking-uri", store]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_a_missing_store_is_refused_without_creating_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare.py")], cwd=tmp_path, capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert f"error: there is no MLflow store at sqlite:///{tmp_path.resolve()}/mlflow.db" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "mlflow.db").exists()


def test_an_unreachable_server_is_one_clear_message(capsys):
    assert compare.main(["--tracking-uri", "http://127.0.0.1:9"]) == 2
    assert "tracking.uri=http://127.0.0.1:9 cannot be reached" in capsys.readouterr().err


@pytest.mark.slow
def test_compare_after_a_real_sweep(tmp_path):
    proc = train_cli("-m", "loss=plain,weighted", "seed=0,1", "trainer.epochs=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare.py")], cwd=tmp_path, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "4 finished runs in 2 groups by loss" in out.stdout
    rows = [line.split("|")[2].strip() for line in out.stdout.splitlines() if line.startswith("| ")][1:]
    assert sorted(rows) == ["plain", "weighted"]
