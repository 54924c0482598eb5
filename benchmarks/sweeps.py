"""The sweep case: the loss zoo as `python train.py -m`, sequential and through joblib on 2 workers, against the
summed training time of its runs and a researcher's bare script doing the same runs (benchmarks.bare_sweep)."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from benchmarks.repo import ROOT, module_command, module_env
from benchmarks.table import Row

ZOO = ("plain", "weighted", "label_smoothed", "focal", "class_balanced", "logit_adjusted", "balanced_softmax", "ldam",
       "poly", "gce", "sce", "naive")


@dataclass
class SweepTimes:
    """One `python train.py -m ...` in a subprocess: its wall time and what its runs logged."""

    wall: float  # seconds from the start of the process to its exit (or to the end of its last run, if it hung)
    to_first_run: float  # seconds from the start of the process to the start of its first run
    train_s: list[float]  # each run's time/train_s
    epochs: list[int]  # each run's epochs run (the last step of its per-epoch val/ce)
    hung: bool = False  # the process did not exit within the timeout after its last run


def _runs(uri: str) -> list[Run]:
    """The child runs in the store (not the sweep's parent)."""
    client = MlflowClient(uri)
    return [r for r in client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
            if r.data.tags.get("sweep") != "parent"]


def run_sweep(workdir: Path, name: str, overrides: list[str], runs: int, grace_s: float | None = None,
              timeout_s: float = 3600.0) -> SweepTimes:
    """Run train.py as a multirun of `runs` jobs in a subprocess into its own store and read back the runs' times.

    With grace_s, a process still alive grace_s after its last run finished is killed and timed to that run's
    end: a guard for a process that would not exit (a joblib sweep hung there before trainer/shutdown.py ran
    Python's thread shutdown first)."""
    folder = workdir / name
    folder.mkdir(exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    MlflowClient(uri).search_experiments()  # creates the store: a user's next sweep logs to an existing one
    start_ms, start = time.time() * 1000, time.perf_counter()
    log = (folder / "sweep.log").open("w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "-m", *overrides, f"tracking.uri={uri}"],
                            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    all_done, hung = None, False
    try:
        while proc.poll() is None and time.perf_counter() - start < timeout_s:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.5)  # returns at its exit: the wall time is not rounded up to the polling step
            if grace_s is not None and all_done is None and (folder / "mlflow.db").exists():
                try:
                    done = sum(r.info.status == "FINISHED" for r in _runs(uri))
                except Exception:  # noqa: BLE001 - the store is being created: ask again later
                    done = 0
                all_done = time.perf_counter() if done >= runs else None
            if all_done is not None and time.perf_counter() - all_done > grace_s:
                hung = True
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()
    wall = time.perf_counter() - start
    found = _runs(uri)
    if (proc.returncode and not hung) or len(found) != runs or any(r.info.status != "FINISHED" for r in found):
        raise RuntimeError(f"sweep {name} failed ({proc.returncode}, {len(found)} of {runs} runs): "
                           f"{(folder / 'sweep.log').read_text()[-3000:]}")
    if hung:
        wall = (max(r.info.end_time for r in found) - start_ms) / 1000
    client = MlflowClient(uri)
    return SweepTimes(wall, (min(r.info.start_time for r in found) - start_ms) / 1000,
                      [r.data.metrics["time/train_s"] for r in found],
                      [max(m.step for m in client.get_metric_history(r.info.run_id, "val/ce")) for r in found],
                      hung)


def bare_sweep(epochs: list[int], overrides: list[str]) -> tuple[float, float]:
    """The researcher's script doing len(epochs) runs of the bare loop one after another: its wall seconds (imports
    included) and the summed seconds of its epochs."""
    proc = subprocess.run(module_command("bare_sweep", ",".join(map(str, epochs)), *overrides), env=module_env(),
                          capture_output=True, text=True, check=True)
    wall, train = proc.stdout.split()[-2:]
    return float(wall), float(train)


def case_sweep(device: str, runs: int, workdir: Path, epochs: int | None = None) -> list[Row]:
    """Case 4: the loss zoo (`experiment=loss_zoo`, seed 0: `runs` losses) as a sequential multirun and through
    joblib on 2 workers, against the summed training time of its runs and the bare loops run one after another."""
    losses = ",".join(ZOO[:runs])
    base = ["experiment=loss_zoo", f"hydra.sweeper.params.loss='{losses}'", "hydra.sweeper.params.seed=0",
            f"trainer.device={device}"] + ([f"trainer.epochs={epochs}"] if epochs else [])
    seq = run_sweep(workdir, "sweep_sequential", base, runs)
    par = run_sweep(workdir, "sweep_joblib", base + ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], runs,
                    grace_s=30.0)
    data = [o for o in base if not o.startswith(("experiment=", "hydra."))]
    bare, bare_train = bare_sweep(seq.epochs, data)
    n, train = len(seq.train_s), sum(seq.train_s)
    hung = " (hung at exit: timed to its last run)" if par.hung else ""
    return [Row("sweep", f"loss zoo, {n} runs, sequential: wall / summed time/train_s", seq.wall, train,
                unit="s in all", goal="<= 1.50"),
            Row("sweep", "the bare script alone: wall / its epochs (floor of the ratio above)", bare, bare_train,
                unit="s in all"),
            Row("sweep", "outside training per run (figures included, from run 1)", (
                seq.wall - seq.to_first_run - train) / n, None, unit="s/run", goal="<= 0.5 s",
                extra={"to_first_run_s": seq.to_first_run}),
            Row("sweep", f"{n} runs, joblib 2 workers vs {n} bare loops in a row{hung}", par.wall, bare,
                unit="s in all", goal="< 1.00", extra={"summed_train_s": sum(par.train_s)})]
