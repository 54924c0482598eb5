"""A text run downstream, as any other run: per-epoch and imbalance metrics, figures, its tokenizer saved, two runs of
one config bit-identical on CPU and scripts/reproduce.py exact with the original's tokenizer, resume after a signal
to the result of an uninterrupted run, a sweep compared by scripts/compare.py, an Optuna search, and the joblib and
submitit launchers (dist)."""
from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from formats import write_text_table
from mlflow.tracking import MlflowClient
from services import sweep_runs
from test_checkpoint import _histories, _run_stopped_by_sigterm

from helpers import ROOT, train_cli
from trainer.reproduce import main as reproduce_main
from trainer.run import run

COUNTS = {"ham": 90, "spam": 30, "news": 15}
CPU = ("trainer.threads=1", "trainer.device=cpu")


@pytest.fixture
def mail(tmp_path):
    return write_text_table(tmp_path / "mail.csv", COUNTS)


def _text(mail, *overrides: str) -> tuple[str, ...]:
    return ("dataset=text", f"dataset.path={mail}", *CPU, *overrides)


@pytest.mark.parametrize("model", ["ngram_bag", "text_cnn", "transformer"])
def test_a_text_run_records_what_every_run_records(run_cfg, store, mail, model):
    result = run(run_cfg(*_text(mail, f"model={model}", "loss=weighted")))
    client = MlflowClient(store)
    r = client.get_run(result.run_id)
    for key in ("train/ce", "train/loss", "val/ce", "val/balanced_accuracy", "val/macro_f1", "val/ece", "lr"):
        assert [m.step for m in client.get_metric_history(result.run_id, key)] == [1, 2], key
    metrics = r.data.metrics
    assert {f"test/recall/{c}" for c in COUNTS} <= set(metrics) and "test/auroc" in metrics
    assert {"tokenizer/truncated", "time/tokenize_s"} <= set(metrics)
    assert r.data.tags["dataset"] == "text" and r.data.tags["model"] == model and r.data.tags["tokenizer"] == "bpe"
    assert r.data.params["tokenizer.used.source"] == "trained on the 81 train-split documents"
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"tokenizer", "figures", "class_counts.json", "loss_weights.json", "config.yaml"} <= artifacts
    assert [a.path for a in client.list_artifacts(result.run_id, "tokenizer")] == ["tokenizer/tokenizer.json"]
    assert {a.path for a in client.list_artifacts(result.run_id, "figures")} >= {"figures/confusion_matrix.png"}


def test_two_runs_of_one_config_are_bit_identical_and_reproduce_uses_the_original_s_tokenizer(run_cfg, store, mail,
                                                                                              capsys):
    first = run(run_cfg(*_text(mail, "model=text_cnn", "regularization=dropout")))
    second = run(run_cfg(*_text(mail, "model=text_cnn", "regularization=dropout")))
    client = MlflowClient(store)
    assert _histories(client, first.run_id) == _histories(client, second.run_id)
    assert reproduce_main([first.run_id, "--tracking-uri", store]) == 0
    assert "reproduces run" in capsys.readouterr().out
    copy = next(r for r in client.search_runs([client.get_run(first.run_id).info.experiment_id])
                if r.data.tags.get("reproduces") == first.run_id)
    assert copy.data.params["tokenizer.used.source"].startswith("loaded from ")
    assert copy.data.tags["data.fingerprint"] == client.get_run(first.run_id).data.tags["data.fingerprint"]


def test_a_text_run_stopped_mid_epoch_resumes_with_its_tokenizer_to_the_uninterrupted_result(run_cfg, store, mail,
                                                                                            caplog):
    overrides = _text(mail, "trainer.epochs=3", "trainer.patience=null", "trainer.batch_size=16",
                      "regularization=dropout")
    run_id = _run_stopped_by_sigterm(run_cfg(*overrides), at_call=8).run_id  # 6 steps an epoch: epoch 2, step 2
    with caplog.at_level(logging.INFO, logger="trainer.data.tokenizer"):
        run(run_cfg(*overrides, f"trainer.resume={run_id}"))
    assert "tokenizer=bpe (loaded from " in caplog.text
    fresh = run(run_cfg(*overrides))
    client = MlflowClient(store)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert _histories(client, run_id) == _histories(client, fresh.run_id)


def test_a_text_sweep_shares_its_tokenized_data_and_compares(tmp_path, mail):
    proc = train_cli("-m", *_text(mail, "loss=plain,logit_adjusted", "seed=0,1", "trainer.epochs=2"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent, children = sweep_runs(uri, "ce-harness")
    assert sorted(c.info.status for c in children) == ["FINISHED"] * 4
    logs = "".join(p.read_text() for p in (tmp_path / "outputs").rglob("train.log"))
    assert logs.count("data: prepared by an earlier job of this process, reused") == 2  # one tokenizer per seed
    compare = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare.py"), "--tracking-uri", uri,
                              "--baseline", "plain"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert compare.returncode == 0, compare.stderr[-3000:]
    report = next((tmp_path / "outputs" / "compare").rglob("report.md")).read_text()
    assert "loss=logit_adjusted" in report and "loss=plain" in report


def test_an_optuna_search_on_a_text_run(tmp_path, mail):
    proc = train_cli("-m", "hparams_search=lr", *_text(mail, "trainer.epochs=2"), "hydra.sweeper.n_trials=2",
                     "hydra.sweeper.pruner=null", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parent, children = sweep_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "ce-harness")
    assert sorted(c.data.tags["optuna.state"] for c in children) == ["COMPLETE"] * 2
    assert all(c.data.tags["dataset"] == "text" for c in children) and "best.optim.lr" in parent.data.params


@pytest.mark.dist
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_a_text_sweep_through_the_launchers(tmp_path, mail, launcher):
    settings = (["hydra.launcher.n_jobs=2"] if launcher == "joblib" else
                ["hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10"])
    proc = train_cli("-m", *_text(mail, "model=ngram_bag,text_cnn", "trainer.epochs=2"),
                     f"hydra/launcher={launcher}", *settings, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parent, children = sweep_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "ce-harness")
    assert parent.info.status == "FINISHED" and sorted(c.info.status for c in children) == ["FINISHED"] * 2
    assert all(any(a.path == "tokenizer" for a in MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
                   .list_artifacts(c.info.run_id)) for c in children)
