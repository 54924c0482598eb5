"""Whole runs, in process: every user-facing option trains, and MLflow holds what DESIGN.md promises."""
from __future__ import annotations

import json
from unittest import mock

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from helpers import make_cfg, train_cli
from trainer.errors import UserError
from trainer.run import run
from trainer.tracking.params import flatten
from trainer.tracking.store import default_uri, resolve_uri
from trainer.train import loop

EPOCH_METRICS = ["train/ce", "train/loss", "train/steps", "val/ce", "val/balanced_ce", "val/loss", "val/accuracy",
                 "val/balanced_accuracy", "val/macro_f1", "val/ece", "lr"]
TEST_METRICS = ["test/ce", "test/balanced_ce", "test/loss", "test/accuracy", "test/balanced_accuracy",
                "test/macro_f1", "test/ece"]

ISSUE_OVERRIDES = [
    [], ["loss=weighted"], ["loss=weighted", "loss.scheme=effective_number"],
    ["loss=label_smoothed", "loss.smoothing=0.2"], ["loss=focal", "loss.gamma=1"],
    ["loss=focal", "loss.alpha=balanced"], ["resampling=smote"], ["resampling=undersample"],
    ["regularization=dropout"], ["regularization=l1"], ["regularization=l2", "regularization.l2=1e-4"],
    ["imbalance=none"], ["imbalance=step"], ["imbalance.ratio=10"], ["dataset=breast_cancer"],
    ["dataset=synthetic"], ["model=logreg"], ["model=cnn"], ["optim=sgd"], ["optim=adamw"], ["seed=3"],
    ["noise=symmetric"], ["noise=pairflip"], ["dataset=breast_cancer", "model=cnn", "loss=focal", "loss.alpha=0.25"],
]


@pytest.mark.parametrize("overrides", ISSUE_OVERRIDES, ids=lambda o: " ".join(o) or "defaults")
def test_each_option_trains_and_logs_a_finished_run(run_cfg, store, overrides):
    result = run(run_cfg(*overrides))
    client = MlflowClient(store)
    r = client.get_run(result.run_id)
    assert r.info.status == "FINISHED"
    for key in EPOCH_METRICS:
        history = client.get_metric_history(result.run_id, key)
        assert [m.step for m in history] == [1, 2], key
    for key in TEST_METRICS:
        assert key in r.data.metrics, key
    cfg = run_cfg(*overrides)
    num_classes = len(result.test) - len(TEST_METRICS)
    assert num_classes == {"breast_cancer": 2, "synthetic": 5}.get(cfg.dataset.name, 10)
    assert sum(k.startswith("test/recall/") for k in r.data.metrics) == num_classes
    for group in ("dataset", "imbalance", "noise", "model", "loss", "resampling", "regularization", "optim"):
        assert r.data.tags[group] == cfg[group].name
    assert r.data.params["seed"] == str(cfg.seed)
    assert 0.0 <= result.test["balanced_accuracy"] <= 1.0


def test_run_records_params_artifacts_and_class_counts(run_cfg, store):
    result = run(run_cfg("loss=weighted", "resampling=smote"))
    client = MlflowClient(store)
    r = client.get_run(result.run_id)
    assert r.data.params["loss.scheme"] == "inverse" and r.data.params["resampling.sampler.k_neighbors"] == "5"
    assert r.data.params["resampling.used.k_neighbors"] == "1"
    assert "torch.threads" in r.data.params and "loss.used.weight" in r.data.params
    names = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config.yaml", "class_counts.json", "loss_weights.json"} <= names
    counts = json.loads(open(client.download_artifacts(result.run_id, "class_counts.json")).read())
    assert counts["train_resampled"] == [max(counts["train_imbalanced"])] * 10
    weights = json.loads(open(client.download_artifacts(result.run_id, "loss_weights.json")).read())
    assert weights["weight"] == pytest.approx([1.0] * 10)  # balanced counts after SMOTE: uniform weights
    assert r.data.metrics["time/resample_s"] > 0


def test_ce_and_loss_differ_only_where_the_objective_differs(run_cfg, store):
    client = MlflowClient(store)
    plain = client.get_run(run(run_cfg("loss=plain")).run_id).data.metrics
    assert plain["val/ce"] == pytest.approx(plain["val/loss"], rel=1e-5)
    smoothed = client.get_run(run(run_cfg("loss=label_smoothed", "loss.smoothing=0.3")).run_id).data.metrics
    assert smoothed["val/loss"] > smoothed["val/ce"]


def test_early_stopping_restores_the_best_epoch(run_cfg, store):
    result = run(run_cfg("trainer.epochs=60", "trainer.patience=2", "optim.lr=0.05"))
    client = MlflowClient(store)
    history = {m.step: m.value for m in client.get_metric_history(result.run_id, "val/ce")}
    assert result.epochs_run < 60 and result.epochs_run == result.best_epoch + 2
    assert min(history.values()) == pytest.approx(history[result.best_epoch])
    assert result.val["ce"] == pytest.approx(history[result.best_epoch], rel=1e-5)


def test_monitor_picks_the_best_epoch_by_another_metric(run_cfg, store):
    result = run(run_cfg("trainer.epochs=12", "trainer.patience=3", "trainer.monitor=val/balanced_accuracy"))
    client = MlflowClient(store)
    history = {m.step: m.value for m in client.get_metric_history(result.run_id, "val/balanced_accuracy")}
    best = max(history.values())
    assert history[result.best_epoch] == best and min(e for e, v in history.items() if v == best) == result.best_epoch
    assert result.val["balanced_accuracy"] == pytest.approx(best)
    ce = {m.step: m.value for m in client.get_metric_history(result.run_id, "val/ce")}
    assert client.get_run(result.run_id).data.metrics["best/val/ce"] == pytest.approx(ce[result.best_epoch])


def test_same_seed_same_result_other_seed_other_result(run_cfg):
    a, b, c = run(run_cfg("seed=5")), run(run_cfg("seed=5")), run(run_cfg("seed=6"))
    assert a.test == b.test
    assert a.test != c.test


def test_an_error_inside_the_run_ends_it_failed_with_the_reason(run_cfg, store):
    with pytest.raises(UserError):
        run(run_cfg("loss=focal", "loss.alpha=0.25"))  # a scalar alpha on ten classes
    client = MlflowClient(store)
    r = client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id],
                           order_by=["attributes.start_time DESC"], max_results=1)[0]
    assert r.info.status == "FAILED" and "loss.alpha" in r.data.tags["error"]
    assert mlflow.active_run() is None


def test_ctrl_c_ends_the_run_killed(run_cfg, store):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    with mock.patch.object(loop, "train_epoch", interrupt), pytest.raises(KeyboardInterrupt):
        run(run_cfg())
    client = MlflowClient(store)
    r = client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id],
                           order_by=["attributes.start_time DESC"], max_results=1)[0]
    assert r.info.status == "KILLED"
    assert mlflow.active_run() is None


def test_non_finite_loss_stops_the_run_naming_epoch_and_step(run_cfg, store):
    with pytest.raises(loop.NonFiniteLoss, match=r"at epoch 1, step \d+\. Lower optim.lr"):
        run(run_cfg("optim=sgd", "optim.lr=1e30"))
    client = MlflowClient(store)
    r = client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id],
                           order_by=["attributes.start_time DESC"], max_results=1)[0]
    assert r.info.status == "FAILED" and "non-finite" in r.data.tags["error"]


def test_tracking_uri_precedence(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_uri(None) == default_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////env.db")
    assert resolve_uri(None) == "sqlite:////env.db"
    assert resolve_uri("sqlite:////cfg.db") == "sqlite:////cfg.db"


def test_unreachable_tracking_server_is_one_clear_error(tmp_path):
    proc = train_cli("tracking.uri=http://127.0.0.1:9", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "tracking.uri=http://127.0.0.1:9 cannot be reached" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_secrets_in_the_config_are_masked_in_params():
    cfg = make_cfg("+tracking.password=hunter2", "+dataset.api_token=abc", "+tracking.key_user=x")
    flat = flatten(cfg)
    assert flat["tracking.password"] == "***" and flat["dataset.api_token"] == "***"
    assert "hunter2" not in json.dumps(flat) and flat["loss.name"] == "plain"


def test_default_cli_run_prints_the_summary_and_writes_mlflow_db_in_the_working_directory(tmp_path):
    proc = train_cli("trainer.epochs=3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "val " in out and "test " in out and "balanced_accuracy" in out and "Compare runs in the UI: mlflow ui" in out
    run_id = out.split("MLflow run id: ")[1].split()[0]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    r = client.get_run(run_id)
    assert r.info.status == "FINISHED" and r.info.run_name == "trainer.epochs=3"
    assert ".hydra" in {a.path for a in client.list_artifacts(run_id)}
    assert (tmp_path / "outputs" / "runs").is_dir()


def test_a_run_logs_the_imbalance_metrics_under_readable_distinct_keys(run_cfg, store, tmp_path):
    import numpy as np
    import pandas as pd

    # "<50K" and ">50K" must stay two keys, and the metrics imbalance needs must be there
    rng = np.random.default_rng(0)
    y = np.array(["<50K"] * 300 + [">50K"] * 60)
    x = rng.normal(size=(360, 3)) + (y == ">50K")[:, None] * 1.5
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "income": y}).to_csv(tmp_path / "adult.csv", index=False)
    result = run(run_cfg("dataset=csv", f"dataset.path={tmp_path / 'adult.csv'}", "dataset.target=income",
                         "imbalance=none"))
    client = MlflowClient(store)
    r = client.get_run(result.run_id)
    keys = json.loads(open(client.download_artifacts(result.run_id, "class_keys.json")).read())
    assert keys == {"lt50K": "<50K", "gt50K": ">50K"}
    assert {"test/recall/lt50K", "test/recall/gt50K"} <= set(r.data.metrics)
    for key in ("auroc", "average_precision", "gmean", "minority_f1", "many_shot_accuracy"):
        assert 0.0 <= r.data.metrics[f"test/{key}"] <= 1.0, key
    assert r.data.metrics["test/auroc"] > 0.7  # the classes are 1.5 standard deviations apart
    assert r.data.tags["eval.minority_class"] == ">50K"
    gmean = (r.data.metrics["test/recall/lt50K"] * r.data.metrics["test/recall/gt50K"]) ** 0.5
    assert r.data.metrics["test/gmean"] == pytest.approx(gmean)


def test_a_long_tailed_run_logs_many_medium_and_few_shot_accuracy(run_cfg, store):
    result = run(run_cfg())  # digits, long-tailed ratio 50: train counts from about 108 down to 2
    client = MlflowClient(store)
    r = client.get_run(result.run_id)
    counts = json.loads(open(client.download_artifacts(result.run_id, "class_counts.json")).read())
    scale = max(counts["train_imbalanced"]) / 500
    many, few = (float(t) for t in r.data.tags["eval.shot_thresholds_used"].split(","))
    assert (many, few) == pytest.approx((100 * scale, 20 * scale), rel=1e-3)
    groups = {"many_shot": [c for c, n in enumerate(counts["train_imbalanced"]) if n > many],
              "few_shot": [c for c, n in enumerate(counts["train_imbalanced"]) if n < few]}
    for group, classes in groups.items():
        mean_recall = sum(r.data.metrics[f"test/recall/{c}"] for c in classes) / len(classes)
        assert r.data.metrics[f"test/{group}_accuracy"] == pytest.approx(mean_recall)
    assert "test/medium_shot_accuracy" in r.data.metrics and "test/auroc" in r.data.metrics
    assert "test/average_precision" not in r.data.metrics  # ten classes: the two-class metrics are absent


def test_unreachable_database_is_one_clear_error_at_once_and_hides_the_password(tmp_path):
    # MLflow alone retries an unreachable PostgreSQL for almost two minutes; the probe answers in seconds
    proc = train_cli("tracking.uri=postgresql+psycopg2://me:s3cret@127.0.0.1:9/lab", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.startswith("error: tracking.uri=postgresql+psycopg2://me:***@127.0.0.1:9/lab cannot be reached")
    assert "s3cret" not in proc.stderr + proc.stdout
