"""The bigstore case: compare on a store of a whole benchmark study, as the KEEL studies of imbalanced learning run
it (every remedy on every table, k-fold CV and seeds): T tables x 10 losses x 5 folds x 2 seeds, one sweep per
table, 100 runs each (10,000 runs for T=100). Timed in a fresh process each: `scripts/compare.py` on the latest
sweep (one table: it should not grow with the store) and `scripts/compare.py --experiment NAME --across dataset`
(every run: ranks over the tables), wall time and peak memory.

The runs are written through MLflow's client as the harness writes them (its params, the tags compare reads, the
final metrics and a val/ce curve of 20 epochs), without training: building 10,000 takes minutes, training them hours.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from benchmarks.config import compose
from benchmarks.repo import ROOT, measured
from benchmarks.table import Row
from trainer.tracking.params import flatten

LOSSES = ("plain", "weighted", "label_smoothed", "focal", "class_balanced", "logit_adjusted", "balanced_softmax",
          "ldam", "poly", "gce")
FOLDS, SEEDS, EPOCHS = 5, 2, 20
FINAL = ("test/ce", "test/accuracy", "test/balanced_accuracy", "test/macro_f1", "test/ece", "test/auroc",
         "test/gmean", "test/loss", "best/val/ce", "best/epoch", "time/train_s", "val/balanced_accuracy")
EXPERIMENT = "bench-study"


def build_store(db: Path, tables: int) -> int:
    """Write the study's runs into the sqlite file db (experiment bench-study): one parent run per table, 100 children
    each; return the number of child runs. The first table is written through MLflow's client; the others are copies
    of its rows (new run ids, their own table path, parent and scores), made in one transaction: through the client,
    10,000 runs took over 20 minutes here."""
    uri = f"sqlite:///{db}"
    client = MlflowClient(uri)
    experiment = client.create_experiment(EXPERIMENT)
    rng = np.random.default_rng(0)
    base = flatten(compose(["dataset=csv", "dataset.path=/data/keel/t.csv", "dataset.target=Class", "split.folds=5",
                            "split.fold=0", "imbalance=none"]))
    now = int(time.time() * 1000)
    parent = client.create_run(experiment, run_name="sweep table000", tags={"sweep": "parent"}).info.run_id
    for loss_i, loss in enumerate(LOSSES):
        for fold in range(FOLDS):
            for seed in range(SEEDS):
                params = base | {"dataset.path": _table(0), "loss.name": loss, "split.fold": str(fold),
                                 "seed": str(seed)}
                tags = {"mlflow.parentRunId": parent, "sweep_id": parent, "dataset": "csv", "loss": loss,
                        "imbalance": "none", "noise": "none", "seed": str(seed), "split.fold": str(fold),
                        "split.folds": str(FOLDS), "data.fingerprint": f"table000-{fold}-{seed}"}
                name = f"loss={loss},seed={seed},split.fold={fold}"
                run_id = client.create_run(experiment, run_name=name, tags=tags, start_time=now).info.run_id
                score = float(np.clip(0.75 + 0.01 * loss_i + rng.normal(0, 0.03), 0, 1))
                curve = 1.2 * np.exp(-np.arange(1, EPOCHS + 1) / 6) + 0.3 + rng.normal(0, 0.02, EPOCHS)
                metrics = ([Metric(k, score if k in SCORES else 0.5, now, EPOCHS) for k in FINAL]
                           + [Metric("val/ce", float(v), now + e, e + 1) for e, v in enumerate(curve)])
                items = [Param(k, str(v)) for k, v in params.items()]
                client.log_batch(run_id, metrics=metrics, params=items[:100], tags=[RunTag("mlflow.runName", name)])
                for i in range(100, len(items), 100):
                    client.log_batch(run_id, params=items[i:i + 100])
                client.set_terminated(run_id, "FINISHED", end_time=now + 1000)
    client.set_terminated(parent, "FINISHED")
    _copy_table(db, parent, tables, rng)
    return tables * len(LOSSES) * FOLDS * SEEDS


SCORES = ("test/accuracy", "test/balanced_accuracy", "test/macro_f1", "test/auroc", "test/gmean",
          "val/balanced_accuracy")


def _table(t: int) -> str:
    return f"/data/keel/table{t:03d}.dat"


def _copy_table(db: Path, parent: str, tables: int, rng: np.random.Generator) -> None:
    """Copy the rows of the first table's sweep (parent and children) as tables 1 .. tables-1 of the study."""
    import sqlite3
    import uuid

    con = sqlite3.connect(db)
    children = [r for (r,) in con.execute("select run_uuid from tags where key = 'mlflow.parentRunId' and value = ?",
                                          (parent,))]
    rows = {table: (_columns(con, table), con.execute(
        f"select * from {table} where run_uuid in ({','.join('?' * (len(children) + 1))})",  # noqa: S608
        [parent, *children]).fetchall()) for table in ("runs", "tags", "params", "metrics", "latest_metrics")}
    with con:
        for t in range(1, tables):
            new = {old: uuid.uuid4().hex for old in [parent, *children]}
            skill = float(rng.uniform(-0.15, 0.15))  # how much harder or easier than the first table
            for table, (columns, values) in rows.items():
                out = []
                for row in values:
                    row = dict(zip(columns, row))
                    old_id = row["run_uuid"]
                    row["run_uuid"] = new[old_id]
                    if table == "runs":
                        row["artifact_uri"] = row["artifact_uri"].replace(old_id, new[old_id])
                        row["name"] = row["name"].replace("table000", f"table{t:03d}")
                    elif row.get("key") in ("mlflow.parentRunId", "sweep_id"):
                        row["value"] = new[parent]
                    elif row.get("key") == "data.fingerprint":
                        row["value"] = row["value"].replace("table000", f"table{t:03d}")
                    elif row.get("key") == "dataset.path":
                        row["value"] = _table(t)
                    elif row.get("key") == "mlflow.runName" and old_id == parent:
                        row["value"] = f"sweep table{t:03d}"
                    elif table in ("metrics", "latest_metrics") and row["key"] in SCORES:
                        row["value"] = min(1.0, max(0.0, row["value"] + skill + float(rng.normal(0, 0.02))))
                    out.append(tuple(row[c] for c in columns))
                con.executemany(f"insert into {table} values ({','.join('?' * len(columns))})", out)  # noqa: S608
    con.close()


def _columns(con: object, table: str) -> list[str]:
    return [row[1] for row in con.execute(f"pragma table_info({table})")]


def _timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """A command in a fresh process: its wall seconds and peak resident memory in MB."""
    log = cwd / "compare.log"
    with log.open("w") as out:
        code, wall, peak = measured(args, cwd, out, timeout_s=3600)
    if code:
        raise RuntimeError(f"{' '.join(args[1:])} failed ({code}): {log.read_text()[-3000:]}")
    return wall, peak


def case_big_store(workdir: Path, tables: int = 100) -> list[Row]:
    """compare on a store of `tables` x 100 runs: the latest sweep, and every run ranked across the tables."""
    folder = workdir / "bigstore"
    folder.mkdir(exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    start = time.perf_counter()
    runs = build_store(folder / "mlflow.db", tables)
    built = time.perf_counter() - start
    compare = [sys.executable, str(ROOT / "scripts" / "compare.py"), "--tracking-uri", uri]
    sweep_wall, sweep_mb = _timed(compare, folder)
    all_wall, all_mb = _timed(compare + ["--experiment", EXPERIMENT, "--across", "dataset"], folder)
    return [Row("bigstore", f"compare the latest sweep (100 runs) in a store of {runs:,} runs", sweep_wall, None,
                unit="s", goal="<= 20 s", extra={"peak_rss_mb": sweep_mb, "store_build_s": built}),
            Row("bigstore", f"compare --experiment --across dataset: {runs:,} runs, {tables} tables", all_wall, None,
                unit="s", goal="<= 300 s", extra={"peak_rss_mb": all_mb}),
            Row("bigstore", f"compare --experiment: peak memory ({runs:,} runs)", all_mb, None, unit="MB",
                goal="<= 2000 MB")]
