"""The cold-start case: `python train.py` in a fresh process, to its first epoch logged and to its end, beside the
floor any script using the same libraries pays."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from benchmarks.repo import ROOT
from benchmarks.table import Row

# Python with the libraries every run needs (MLflow's SQL store is the default one), and the first torch.optim
# call (it imports torch._dynamo); it prints the time when all that is done.
IMPORT_FLOOR = ("import time, torch, mlflow, mlflow.store.tracking.sqlalchemy_store, hydra, sklearn.datasets, "
                "sklearn.model_selection; torch.optim.Adam([torch.zeros(1, requires_grad=True)]); print(time.time())")


def case_cold_start(device: str, workdir: Path, runs: int = 3) -> list[Row]:
    """Case 5: `python train.py` in a fresh process: wall time to the first epoch logged, and to the end."""
    folder = workdir / "cold"
    folder.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    subprocess.run([sys.executable, str(ROOT / "train.py"), "trainer.epochs=1"], cwd=folder, env=env,
                   capture_output=True, check=True)  # creates the store: a user's second run is the common one
    rows, floors = [], []
    for _ in range(runs):
        start_s = time.time()  # the libraries alone: what any script using them pays before its first step
        floor = subprocess.run([sys.executable, "-c", IMPORT_FLOOR], check=True, capture_output=True, text=True)
        floors.append(float(floor.stdout.split()[-1]) - start_s)  # to the end of the imports, not of the process
        start_ms = time.time() * 1000
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(ROOT / "train.py"), f"trainer.device={device}"], cwd=folder,
                              env=env, capture_output=True, text=True, check=True)
        end = time.perf_counter() - start
        run_id = proc.stdout.split("MLflow run id: ")[1].split()[0]
        client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        first = client.get_metric_history(run_id, "val/ce")[0].timestamp
        rows.append(((first - start_ms) / 1000, end))
    first_epoch = statistics.median(r[0] for r in rows)
    total = statistics.median(r[1] for r in rows)
    return [Row("cold start", "python train.py: to the first epoch logged", first_epoch, None, unit="s",
                goal="<= 5 s"),
            Row("cold start", "python train.py: to the end", total, None, unit="s", goal="<= 10 s"),
            Row("cold start", "floor: import torch, mlflow, sklearn, hydra; torch.optim", statistics.median(floors),
                None, unit="s")]
