"""scripts/compare.py: selection, grouping by what differs, aggregation over seeds, ranking, files, messages.

Most tests write runs straight into a throwaway store with MlflowClient (known metric values, no training);
one slow test compares a real sweep made by train.py.
"""
from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from scipy import stats as scipy_stats

from helpers import ROOT, train_cli
from trainer.analysis import compare, grouping, report, stats
from trainer.errors import UserError
from trainer.evaluate.metrics import lower_is_better
from trainer.sweep.callback import sweep_hint

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
    sel = grouping.select(client, store, parent=parent)
    c = grouping.compare(sel.runs)
    assert c.keys == ["loss"]  # not seed, not torch.threads, not loss.gamma (the same wherever it is set)
    assert [row["loss"] for row in c.rows] == ["focal", "plain"]  # higher balanced accuracy first
    for row in c.rows:
        values = [acc for (loss, _), acc in BAL_ACC.items() if loss == row["loss"]]
        assert row["n"] == 3 and row["test/balanced_accuracy n"] == 3
        assert row["test/balanced_accuracy mean"] == pytest.approx(np.mean(values))
        assert row["test/balanced_accuracy std"] == pytest.approx(np.std(values, ddof=1))
        assert row[f"{grouping.WORST_RECALL} mean"] == pytest.approx(np.mean(values) - 0.3)
    assert list(c.groups) == ["loss=focal", "loss=plain"]
    assert {r.info.run_name for r in c.groups["loss=plain"]} == {"loss=plain,seed=0", "loss=plain,seed=1",
                                                                 "loss=plain,seed=2"}


def test_a_lower_is_better_metric_ranks_ascending(store):
    client = MlflowClient(store)
    c = grouping.compare(grouping.select(client, store, parent=loss_sweep(client)).runs, metric="test/ce")
    assert [row["loss"] for row in c.rows] == ["focal", "plain"]
    assert c.rows[0]["test/ce mean"] < c.rows[1]["test/ce mean"]
    assert lower_is_better("best/val/ce") and not lower_is_better("test/macro_f1")


def test_a_setting_that_differs_is_a_grouping_key_and_runs_without_it_are_labelled_without_it(store):
    client = MlflowClient(store)
    # loss._target_ changes with the loss tag: it separates nothing new and is no grouping key
    runs = [(f"g{g}", {"loss": "focal"}, {"loss.gamma": g, "seed": 0, "loss._target_": "Focal"},
             {"test/balanced_accuracy": 0.5 + g / 10}, []) for g in (1, 2)]
    runs.append(("plain", {"loss": "plain"}, {"seed": 0, "loss._target_": "CE"}, {"test/balanced_accuracy": 0.9}, []))
    c = grouping.compare(grouping.select(client, store, parent=make_sweep(client, runs=runs)).runs)
    assert c.keys == ["loss", "loss.gamma"]
    assert list(c.groups) == ["loss=plain", "loss=focal, loss.gamma=2", "loss=focal, loss.gamma=1"]


def test_runs_lacking_the_metric_are_named_and_left_out_of_its_mean(store):
    client = MlflowClient(store)
    runs = [("a0", {"loss": "a"}, {"seed": 0}, {"test/balanced_accuracy": 0.6}, []),
            ("a1", {"loss": "a"}, {"seed": 1}, {"test/ce": 0.3}, []),
            ("b0", {"loss": "b"}, {"seed": 0}, {"test/ce": 0.2}, [])]
    c = grouping.compare(grouping.select(client, store, parent=make_sweep(client, runs=runs)).runs)
    assert c.warnings == ["2 of 3 runs lack test/balanced_accuracy and are left out of its mean: a1, b0",
                          "loss=b lacks seed 1 (failed, stopped or not run): compared on the 1 pair it has"]
    a, b = c.rows  # a group without the metric at all ranks last
    assert (a["loss"], a["test/balanced_accuracy mean"], a["test/balanced_accuracy n"], a["n"]) == ("a", 0.6, 1, 2)
    assert b["loss"] == "b" and b["test/balanced_accuracy n"] == 0
    header, rows = compare.rows_for_display(c)
    assert rows[0][header.index("test/balanced_accuracy")] == "0.6000 (n=1)"
    assert rows[1][header.index("test/balanced_accuracy")] == "–"
    with pytest.raises(UserError, match=r"--metric test/f2: none of the 3 runs has it\. Metrics they have: "
                                                r"test/balanced_accuracy, test/ce"):
        grouping.compare(c.groups["loss=a"] + c.groups["loss=b"], metric="test/f2")


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
    assert "1 run not finished, left out: loss=plain,seed=3 (FAILED)" in out
    folder = tmp_path / "outputs" / "compare" / f"sweep-{parent[:8]}"
    files = {"report.md", "report.html", "table.csv", "curves.png", "diffs.png"}
    assert {p.name for p in folder.iterdir()} == files
    report_md = (folder / "report.md").read_text()
    assert f"sweep 'sweep test' ({parent}): 6 finished runs" in report_md
    with open(folder / "table.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["rank"], r["loss"], r["n"]) for r in rows] == [("1", "focal", "3"), ("2", "plain", "3")]
    assert float(rows[1]["test/balanced_accuracy mean"]) == pytest.approx(np.mean([0.70, 0.74, 0.69]))
    # the table's numbers are in both reports: plain - focal paired by seed, p of three pairs of one sign
    diff = np.mean([0.70 - 0.80, 0.74 - 0.78, 0.69 - 0.83])
    assert float(rows[1]["diff"]) == pytest.approx(diff) and float(rows[1]["p"]) == pytest.approx(0.25)
    html = (folder / "report.html").read_text()
    for text in (f"{diff:+.4f}", "Wilcoxon, 3 pairs", "0.25", "smallest possible Wilcoxon p is 0.25",
                 "6 pairs with a non-zero difference (seeds) are the least"):
        assert text in report_md and text in html
    assert html.count('src="') == html.count('src="data:image/png;base64,') == 2  # self-contained
    for name in ("curves.png", "diffs.png"):
        assert (folder / name).read_bytes()[:4] == b"\x89PNG"
    logged = {a.path for a in client.list_artifacts(parent, "compare")}
    assert logged == {f"compare/{name}" for name in files}


def test_curves_draw_the_mean_of_each_group_and_the_seed_spread(store):
    client = MlflowClient(store)
    c = grouping.compare(grouping.select(client, store, parent=loss_sweep(client)).runs)
    fig = report.curves_figure(client, c, "title")
    ax = fig.axes[0]
    focal = next(line for line in ax.get_lines() if "loss=focal (n=3)" in line.get_label())
    accs = [acc for (loss, _), acc in BAL_ACC.items() if loss == "focal"]
    assert list(focal.get_xdata()) == [1, 2, 3]
    assert list(focal.get_ydata()) == pytest.approx([2.0 - np.mean(accs), 1.5 - np.mean(accs), 1.0 - np.mean(accs)])
    assert len(ax.collections) == 2  # one band per group


def run_of(name, seed, acc, tags=None, params=None, status="FINISHED"):
    """A (name, tags, params, metrics, curve, status) tuple for make_sweep."""
    return (name, tags or {}, {"seed": seed} | (params or {}), {"test/balanced_accuracy": acc}, [], status)


def test_settings_that_change_no_result_do_not_split_groups_and_equal_values_are_one_group(store):
    client = MlflowClient(store)
    noise = {"trainer.threads": 1, "trainer.device": "cpu", "trainer.persist_every_s": 1.0, "trainer.resume": "x",
             "tracking.uri": "sqlite:///a.db", "torch.threads": 4}
    runs = [run_of("a0", 0, 0.5, {"loss": "focal"}, {"loss.gamma": "1"} | noise),
            run_of("a1", 1, 0.6, {"loss": "focal"}, {"loss.gamma": "1.0", "trainer.threads": 2,
                                                     "trainer.device": "cuda", "trainer.persist_every_s": 0,
                                                     "tracking.uri": "http://x"}),
            run_of("b0", 0, 0.7, {"loss": "focal"}, {"loss.gamma": "2.0"}),
            run_of("b1", 1, 0.8, {"loss": "focal"}, {"loss.gamma": "2"})]
    c = grouping.compare(grouping.select(client, store, parent=make_sweep(client, runs=runs)).runs)
    assert c.keys == ["loss.gamma"]
    assert list(c.groups) == ["loss.gamma=2", "loss.gamma=1"]
    assert [row["n"] for row in c.rows] == [2, 2]
    assert grouping.normalise("1e0") == "1" and grouping.normalise("True") == "true"
    assert grouping.normalise("None") == "null"


def test_a_rerun_of_a_seed_counts_once_the_latest_with_a_note(store):
    client = MlflowClient(store)
    runs = [run_of("p0", 0, 0.50, {"loss": "plain"}), run_of("p1", 1, 0.60, {"loss": "plain"}),
            run_of("p1-again", 1, 0.64, {"loss": "plain"}),
            run_of("w0", 0, 0.70, {"loss": "weighted"}), run_of("w1", 1, 0.80, {"loss": "weighted"})]
    c = grouping.compare(grouping.select(client, store, parent=make_sweep(client, runs=runs)).runs)
    plain = c.rows[list(c.groups).index("loss=plain")]
    assert plain["n"] == 2 and plain["test/balanced_accuracy mean"] == pytest.approx(np.mean([0.50, 0.64]))
    assert "loss=plain: seed 1 ran 2 times; kept the latest, p1-again" in c.warnings
    assert c.diffs["loss=plain"].mean == pytest.approx(np.mean([0.50 - 0.70, 0.64 - 0.80]))


def test_groups_are_paired_by_seed_not_by_position(store):
    client = MlflowClient(store)
    # the runs of b come in another seed order, and seed 3 has no partner
    runs = [run_of(f"a{s}", s, 0.5 + s / 10, {"loss": "a"}) for s in (0, 1, 2)]
    runs += [run_of(f"b{s}", s, 0.9 + s / 100, {"loss": "b"}) for s in (2, 3, 0, 1)]
    c = grouping.compare(grouping.select(client, store, parent=make_sweep(client, runs=runs)).runs, baseline="b")
    d = c.diffs["loss=a"]
    assert d.paired and d.n == 3 and d.unmatched == [("3",)]
    assert d.mean == pytest.approx(np.mean([0.5 - 0.90, 0.6 - 0.91, 0.7 - 0.92]))
    assert d.p == pytest.approx(0.25)
    assert "Left out of the pairs (present in one group only): seed 3" in compare.verdict(c)


def test_k_fold_runs_are_paired_by_seed_and_fold(store):
    client = MlflowClient(store)
    cells = [(seed, fold) for seed in (0, 1) for fold in (0, 1, 2)]
    runs = [run_of(f"a{s}{f}", s, 0.5 + f / 10, {"loss": "a"}, {"split.fold": f}) for s, f in cells]
    runs += [run_of(f"b{s}{f}", s, 0.6 + f / 10 + s / 100, {"loss": "b"}, {"split.fold": f}) for s, f in reversed(cells)]
    c = grouping.compare(grouping.select(client, store, parent=make_sweep(client, runs=runs)).runs)
    assert c.keys == ["loss"] and [row["n"] for row in c.rows] == [6, 6]  # the fold is no grouping key
    d = c.diffs["loss=a"]
    assert d.paired and d.n == 6 and d.mean == pytest.approx(np.mean([-0.1, -0.1, -0.1, -0.11, -0.11, -0.11]))
    assert d.p == pytest.approx(stats.wilcoxon_min_p(6))


def test_groups_without_common_seeds_are_compared_unpaired_and_labelled(store):
    client = MlflowClient(store)
    runs = [run_of(f"a{s}", s, 0.5 + s / 100, {"loss": "a"}) for s in (0, 1, 2)]
    runs += [run_of(f"b{s}", s, 0.8 + s / 100, {"loss": "b"}) for s in (3, 4, 5)]
    c = grouping.compare(grouping.select(client, store, parent=make_sweep(client, runs=runs)).runs)
    d = c.diffs["loss=a"]
    assert not d.paired and d.test == "Mann-Whitney" and d.p == pytest.approx(0.1)
    header, rows = compare.rows_for_display(c)
    assert rows[1][header.index("test")] == "Mann-Whitney, unpaired"


def test_the_baseline_is_the_best_or_the_one_named_and_a_bad_name_is_refused(store):
    client = MlflowClient(store)
    c = grouping.compare(grouping.select(client, store, parent=loss_sweep(client)).runs)
    assert c.baseline == "loss=focal" and list(c.diffs) == ["loss=plain"]
    runs = grouping.select(client, store, parent=loss_sweep(client)).runs
    assert grouping.compare(runs, baseline="plain").baseline == "loss=plain"
    assert grouping.compare(runs, baseline="loss=plain").baseline == "loss=plain"
    with pytest.raises(UserError, match=r"--baseline 'nope' names no group; groups: loss=focal; loss=plain"):
        grouping.compare(runs, baseline="nope")


def test_different_datasets_get_one_table_each_unless_across(store):
    client = MlflowClient(store)
    runs = []
    for ds, shift in (("digits", 0.0), ("yeast4", -0.3), ("ecoli1", -0.1)):
        for loss, gain in (("plain", 0.0), ("weighted", 0.05), ("focal", 0.02)):
            runs += [run_of(f"{ds}-{loss}-{s}", s, 0.8 + shift + gain + s / 1000, {"dataset": ds, "loss": loss},
                            {"dataset.name": ds}) for s in (0, 1)]
    runs.append(run_of("digits-ldam-0", 0, 0.99, {"dataset": "digits", "loss": "ldam"}, {"dataset.name": "digits"}))
    parent = make_sweep(client, runs=runs)
    sel = grouping.select(client, store, parent=parent)
    per = grouping.comparisons_of(sel.runs, grouping.DEFAULT_METRIC)
    assert [c.title for c in per] == ["dataset=digits", "dataset=yeast4", "dataset=ecoli1"]
    assert [list(c.groups)[0] for c in per] == ["loss=ldam", "loss=weighted", "loss=weighted"]  # each its own best
    assert all(c.keys == ["loss"] for c in per)
    blocks = grouping.comparisons_of(sel.runs, grouping.DEFAULT_METRIC, across_key="dataset")
    a = grouping.across(blocks, "dataset")
    assert a.groups == ["loss=weighted", "loss=focal", "loss=plain"] and a.left_out == ["loss=ldam"]
    assert a.friedman.average_ranks.tolist() == [1.0, 2.0, 3.0]
    assert a.friedman.statistic == pytest.approx(6.0)  # full agreement: 12n/(k(k+1)) * sum((R - (k+1)/2)^2) = 3 * 2
    with pytest.raises(UserError, match="--across nope: no run has this option"):
        grouping.comparisons_of(sel.runs, grouping.DEFAULT_METRIC, across_key="nope")


def test_csv_tables_are_told_apart_by_their_file_name(store):
    client = MlflowClient(store)
    runs = [run_of(f"{t}-{loss}", 0, 0.5, {"dataset": "csv", "loss": loss}, {"dataset.path": f"/data/{t}.csv"})
            for t in ("yeast4", "ecoli3") for loss in ("plain", "weighted")]
    runs.append(run_of("other-yeast4", 0, 0.5, {"dataset": "csv", "loss": "plain"}, {"dataset.path": "/x/yeast4.csv"}))
    sel = grouping.select(client, store, parent=make_sweep(client, runs=runs[:4]))
    for across in (None, "dataset"):  # --across dataset: the tables, not the one dataset tag csv
        assert [c.title for c in grouping.comparisons_of(sel.runs, grouping.DEFAULT_METRIC, across)] == [
            "dataset.path=yeast4.csv", "dataset.path=ecoli3.csv"]
    sel = grouping.select(client, store, parent=make_sweep(client, runs=runs))  # two files named yeast4.csv
    assert "dataset.path=/x/yeast4.csv" in [c.title for c in grouping.comparisons_of(sel.runs, grouping.DEFAULT_METRIC)]


def test_across_writes_the_ranks_and_the_cd_diagram(store, tmp_path, capsys):
    client = MlflowClient(store)
    runs = [run_of(f"r{ratio}-{loss}-{s}", s, 0.9 - ratio / 1000 + gain + s / 1000,
                   {"loss": loss, "imbalance": "longtail"}, {"imbalance.ratio": ratio})
            for ratio in (10, 50, 100) for loss, gain in (("plain", 0.0), ("weighted", 0.03)) for s in (0, 1, 2)]
    make_sweep(client, runs=runs)
    assert compare.main(["--tracking-uri", store, "--across", "imbalance.ratio", "--baseline", "plain",
                         "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "## imbalance.ratio=10" in out and "## Across imbalance.ratio: average ranks" in out
    assert "| loss=weighted | " in out and "Friedman over 3 values of imbalance.ratio, 2 groups" in out
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"cd.png", "report.md", "report.html", "diffs-imbalance.ratio_10.png"} <= files
    assert "![cd.png](cd.png)" in (tmp_path / "out" / "report.md").read_text()


def test_the_harness_experiment_declares_model_training_and_keeps_a_kind_a_user_chose(store):
    from trainer.tracking.store import KIND_TAG, setup_experiment

    client = MlflowClient(store)
    new = setup_experiment(store, "fresh")
    old = client.create_experiment("old")  # made before the harness set the kind
    chosen = client.create_experiment("chosen", tags={KIND_TAG: "genai_development"})
    for name in ("old", "chosen"):
        setup_experiment(store, name)
    assert client.get_experiment(new).tags[KIND_TAG] == "custom_model_development"
    assert client.get_experiment(old).tags[KIND_TAG] == "custom_model_development"
    assert client.get_experiment(chosen).tags[KIND_TAG] == "genai_development"


def test_the_end_of_a_sweep_names_the_compare_command_and_the_runs_page():
    hint = sweep_hint("sqlite:////x/mlflow.db", "abc", "3")
    # tests run in a temporary folder (conftest): the script by its path from there
    assert f"python {ROOT / 'scripts' / 'compare.py'} --parent abc --tracking-uri sqlite:////x/mlflow.db" in hint
    assert "#/experiments/3?workflowType=machine_learning" in hint
    assert "open http://h:5000/#/experiments/3?" in sweep_hint("http://h:5000", "abc", "3")


@pytest.mark.parametrize("args,setup,message", [
    ([], None, "no sweep in sqlite:///"),
    (["--parent", "0123abc"], None, "--parent 0123abc: no run with that id"),
    (["--experiment", "nope"], None, "--experiment 'nope': no such experiment in sqlite:///"),
    (["--parent", "{single}"], "single", "has no child runs; give the id of a sweep's parent run"),
    ([], "failed", "has no finished run to compare (1 not finished: x (FAILED))"),
    (["--experiment", "empty"], "empty", "experiment 'empty' has no finished run to compare: it holds no run."),
    ([], "running", "(1 not finished: x (RUNNING)). The sweep is still running: compare when it has finished runs."),
])
def test_nothing_to_compare_is_one_clear_message(store, capsys, args, setup, message):
    client = MlflowClient(store)
    eid = client.create_experiment("ce-harness")
    single = add_run(client, eid, "single", metrics={"test/balanced_accuracy": 0.5})
    if setup == "failed":
        make_sweep(client, runs=[("x", {}, {}, {}, [], "FAILED")])
    if setup == "empty":
        client.create_experiment("empty")
    if setup == "running":
        client.set_terminated(make_sweep(client, runs=[("x", {}, {}, {}, [], "RUNNING")]), "RUNNING")
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


@pytest.mark.parametrize("script", ["compare.py", "figures.py", "orphans.py"])
def test_a_store_address_mlflow_cannot_open_is_one_error_line(tmp_path, script):
    # MLflow's UnsupportedModelRegistryStoreURIException was a 40-line traceback and exit 1
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--tracking-uri", "bogus://x"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: --tracking-uri bogus://x: not a store MLflow can open (its scheme 'bogus'")


def test_an_unreachable_server_is_one_clear_message(capsys):
    assert compare.main(["--tracking-uri", "http://127.0.0.1:9"]) == 2
    assert "tracking.uri=http://127.0.0.1:9 cannot be reached" in capsys.readouterr().err


@pytest.mark.slow
def test_compare_after_a_real_sweep(tmp_path):
    proc = train_cli("-m", "loss=plain,weighted", "seed=0,1", "trainer.epochs=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the UI hint once at the end of the sweep, not after each of its jobs, with the compare command
    assert "Compare runs in the UI" not in proc.stdout and proc.stdout.count("Compare this sweep") == 1
    assert proc.stdout.rstrip().splitlines()[-1].endswith("?workflowType=machine_learning")
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare.py")], cwd=tmp_path, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "4 finished runs" in out.stdout and "4 runs in 2 groups by loss" in out.stdout
    rows = [line.split("|")[2].strip() for line in out.stdout.splitlines() if line.startswith("| ")][1:]
    assert sorted(rows) == ["plain", "weighted"]


def kfold_runs(means: dict[str, float], seeds=(0, 1), folds=5, extra=None):
    """One run per (group, seed, fold) of a 5-fold design (split.folds logged as the trainer does), balanced
    accuracy = the group's mean + a fold effect shared by all groups + a small group-specific wobble."""
    rng = np.random.default_rng(0)
    runs = []
    for loss, mean in means.items():
        for seed in seeds:
            for fold in range(folds):
                value = mean + 0.05 * fold - 0.02 * seed + rng.normal(0, 0.01)
                runs.append(run_of(f"{loss}-{seed}-{fold}", seed, value, {"loss": loss},
                                   {"split.fold": fold, "split.folds": folds, "split.val": 0.2} | (extra or {})))
    return runs


def test_a_5_fold_x_2_seed_comparison_reports_the_corrected_test_and_its_p_values(store):
    client = MlflowClient(store)
    runs = grouping.select(client, store, parent=make_sweep(client, runs=kfold_runs(
        {"plain": 0.60, "weighted": 0.62, "logit_adjusted": 0.61}))).runs
    c = grouping.compare(runs, baseline="plain")
    assert c.design == grouping.KFold(5, 0.2, 2) and c.design.test_train_ratio == pytest.approx(0.2 / 0.6)
    for label, d in c.diffs.items():
        group, base = c.samples(label), c.samples("loss=plain")
        diffs = np.array([group[k] - base[k] for k in sorted(base)])
        se = math.sqrt((1 / 10 + 1 / 3) * diffs.var(ddof=1))
        assert d.test == "corrected t" and d.n == 10 and d.statistic == pytest.approx(diffs.mean() / se)
        assert d.p == pytest.approx(2 * scipy_stats.t.sf(abs(diffs.mean() / se), 9))
    text = compare.summary_line(c)
    assert "2 seeds x 5 folds" in text and "corrected repeated k-fold t-test" in text and "share most" in text
    assert not any("n too small" in line for line in compare.verdict(c))  # a t-test has no floor on its p
    header, rows = compare.rows_for_display(c)
    assert rows[0][header.index("test")].startswith("corrected t = ") and rows[0][header.index("test")].endswith(
        ", 10 pairs")


def test_baseline_plain_names_the_group_whose_other_options_are_the_defaults(store):
    client = MlflowClient(store)
    runs = [run_of(f"{loss}-{res}-{s}", s, 0.5 + 0.1 * i + s / 100, {"loss": loss, "resampling": res})
            for i, (loss, res) in enumerate([("plain", "none"), ("plain", "smote"), ("weighted", "none")])
            for s in range(3)]
    runs = grouping.select(client, store, parent=make_sweep(client, runs=runs)).runs
    for name in ("plain", "loss=plain", "loss=plain, resampling=none"):
        assert grouping.compare(runs, baseline=name).baseline == "loss=plain, resampling=none"
    assert grouping.compare(runs, baseline="smote").baseline == "loss=plain, resampling=smote"
    assert grouping.compare(runs, baseline="none").baseline == "loss=plain, resampling=none"  # weighted is no default
    runs = [run_of(f"{loss}-{res}-{s}", s, 0.5 + 0.1 * i + s / 100, {"loss": loss, "resampling": res})
            for i, (loss, res) in enumerate([("plain", "smote"), ("plain", "undersample"), ("weighted", "none")])
            for s in range(3)]
    runs = grouping.select(client, store, parent=make_sweep(client, runs=runs)).runs
    with pytest.raises(UserError) as err:
        grouping.compare(runs, baseline="plain")  # plain with smote or with undersample: neither is the default
    suggested = str(err.value).split("e.g. --baseline ")[1].strip(".'")
    assert grouping.compare(runs, baseline=suggested).baseline == suggested  # the suggested fix works


def test_groups_that_lack_seeds_or_folds_are_named(store):
    client = MlflowClient(store)
    runs = [r for r in kfold_runs({"plain": 0.6, "naive": 0.5}) if r[0] not in ("naive-1-3", "naive-1-4")]
    c = grouping.compare(grouping.select(client, store, parent=make_sweep(client, runs=runs)).runs)
    assert "loss=naive lacks seed 1 fold 3, seed 1 fold 4 (failed, stopped or not run): compared on the 8 pairs " \
           "it has" in c.warnings
    assert c.diffs["loss=naive"].n == 8


def test_runs_on_two_contents_of_one_file_are_two_data_conditions(store):
    client = MlflowClient(store)
    runs = []
    for version, shift in (("a" * 64, 0.0), ("b" * 64, 0.2)):
        runs += [run_of(f"{loss}-{version[0]}-{s}", s, 0.5 + shift + (loss == "weighted") * 0.05,
                        {"loss": loss, "dataset": "csv", "data.source_fingerprint": version},
                        {"dataset.path": "/data/yeast.csv"}) for loss in ("plain", "weighted") for s in range(3)]
    comparisons = grouping.comparisons_of(grouping.select(client, store, parent=make_sweep(client, runs=runs)).runs,
                                          grouping.DEFAULT_METRIC)
    assert sorted(c.title for c in comparisons) == ["data.source=aaaaaaaaaaaa", "data.source=bbbbbbbbbbbb"]
    assert all(c.diffs["loss=plain"].n == 3 and c.diffs["loss=plain"].mean == pytest.approx(-0.05)
               for c in comparisons)  # each version paired with itself only


def test_curves_carry_an_early_stopped_runs_last_value_forward_and_count_the_runs_still_training(store):
    client = MlflowClient(store)
    runs = [("a0", {"loss": "a"}, {"seed": 0}, {"test/balanced_accuracy": 0.5}, [1.0, 0.8]),  # stopped at epoch 2
            ("a1", {"loss": "a"}, {"seed": 1}, {"test/balanced_accuracy": 0.6}, [2.0, 1.6, 1.2, 0.8])]
    c = grouping.compare(grouping.select(client, store, parent=make_sweep(client, runs=runs)).runs)
    fig = report.curves_figure(client, c, "title")
    mean = next(line for line in fig.axes[0].get_lines() if "all runs (n=2)" in line.get_label())
    assert list(mean.get_ydata()) == pytest.approx([1.5, 1.2, 1.0, 0.8])  # a0's 0.8 carried to epochs 3 and 4
    still = fig.axes[1].get_lines()[0]
    assert list(still.get_ydata()) == [2, 2, 1, 1] and "still training" in fig.axes[1].get_ylabel()
    assert "carried forward" in fig.get_suptitle()


def test_a_very_long_experiment_name_gets_a_bounded_folder(store, tmp_path, monkeypatch):
    client = MlflowClient(store)
    name = "features=[" + ",".join(f"column_{i}" for i in range(40)) + "]"  # 400 characters: over 255 a file name
    eid = client.create_experiment(name)
    for s in range(2):
        add_run(client, eid, f"r{s}", {"loss": "plain"}, {"seed": s}, {"test/balanced_accuracy": 0.5 + s / 10})
    monkeypatch.chdir(tmp_path)
    assert compare.main(["--experiment", name, "--tracking-uri", store]) == 0
    folder, = (tmp_path / "outputs" / "compare").iterdir()
    assert len(folder.name) <= 80 and (folder / "report.md").is_file()


def test_data_made_from_the_seed_stays_one_condition(store):
    client = MlflowClient(store)
    runs = [run_of(f"{loss}-{s}", s, 0.5 + (loss == "weighted") * 0.1 + s / 100,
                   {"loss": loss, "dataset": "synthetic", "data.source_fingerprint": f"{s}" * 64})
            for loss in ("plain", "weighted") for s in range(3)]  # synthetic data: another fingerprint each seed
    comparisons = grouping.comparisons_of(grouping.select(client, store, parent=make_sweep(client, runs=runs)).runs,
                                          grouping.DEFAULT_METRIC)
    assert len(comparisons) == 1 and comparisons[0].diffs["loss=plain"].n == 3


def test_a_sweep_that_still_runs_is_compared_on_its_finished_runs_and_says_so(store, capsys):
    """compare while the sweep runs: its later jobs have no run yet, so the report says it is partial."""
    client = MlflowClient(store)
    parent = loss_sweep(client)
    client.set_terminated(parent, "RUNNING")  # what a sweep's parent is until its last job ends
    assert compare.main(["--parent", parent, "--tracking-uri", store]) == 0
    out = capsys.readouterr().out
    assert "the sweep is still running (its parent run is RUNNING): these are the runs that finished so far" in out
    client.set_terminated(parent, "FINISHED")
    assert compare.main(["--parent", parent, "--tracking-uri", store]) == 0
    assert "still running" not in capsys.readouterr().out
