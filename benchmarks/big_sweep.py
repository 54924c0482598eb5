"""The bigsweep case: a study of thousands of sub-second runs (`python train.py -m seed=range(0,N/2)
loss=plain,weighted trainer.epochs=1`, Hydra's basic launcher, default figures) beside the same sweep of a few runs:
the time to its first job, the cost per job outside training (flat in the number of jobs, or a study of thousands
pays more per run than a study of ten) and the wait at its end (no backlog of figures)."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mlflow.tracking import MlflowClient

from benchmarks.repo import ROOT, measured
from benchmarks.table import Row
from trainer.tracking.store import search_all


@dataclass
class StudyTimes:
    """One sweep of `jobs` runs in a subprocess, read back from its log and its store."""

    jobs: int
    to_first_job: float  # s from the start of the process to Hydra launching job 0 (its log line)
    to_first_run: float  # s to the start of the first run (job 0's imports, data and MLflow run included)
    per_job: float  # s per job outside training: (last run's end - first run's start - summed time/train_s) / jobs
    exit_wait: float  # s from the end of the last run to the end of the process
    peak_rss_mb: float  # the process's peak resident memory


def _launch_time(log: Path) -> float:
    """The time (s since 1970) of Hydra's `#0 : ...` line, the launch of job 0."""
    for line in log.read_text().splitlines():
        if "[HYDRA]" in line and "#0 : " in line:
            stamp = line[1:line.index("]")]
            return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    raise RuntimeError(f"no launch of job 0 in {log}")


def run_study(workdir: Path, jobs: int, timeout_s: float = 7200.0) -> StudyTimes:
    """`python train.py -m seed=range(0,jobs/2) loss=plain,weighted trainer.epochs=1` in a subprocess, in its own
    folder and existing store; its times read back."""
    folder = workdir / f"study_{jobs}"
    folder.mkdir(exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # creates the store: a study logs to an existing one
    log = folder / "sweep.log"
    start = time.time()
    with log.open("w") as out:
        code, wall, peak = measured([sys.executable, str(ROOT / "train.py"), "-m", f"seed=range(0,{jobs // 2})",
                                  "loss=plain,weighted", "trainer.epochs=1", f"tracking.uri={uri}"], folder, out,
                                 timeout_s)
    end = start + wall
    client = MlflowClient(uri)
    runs = [r for r in search_all(client, [e.experiment_id for e in client.search_experiments()])
            if r.data.tags.get("sweep") != "parent"]
    if code or len(runs) != jobs or any(r.info.status != "FINISHED" for r in runs):
        raise RuntimeError(f"study of {jobs} jobs failed ({code}, {len(runs)} runs): "
                           f"{log.read_text()[-3000:]}")
    first = min(r.info.start_time for r in runs) / 1000
    last = max(r.info.end_time for r in runs) / 1000
    train = sum(r.data.metrics["time/train_s"] for r in runs)
    return StudyTimes(jobs, _launch_time(log) - start, first - start, (last - first - train) / jobs, end - last, peak)


def case_big_sweep(workdir: Path, jobs: int = 2000, small: int = 20) -> list[Row]:
    """The study of `jobs` sub-second runs and the same sweep of `small` runs (at most half as many): time to the
    first job, cost per job outside training, wait at the end."""
    little, big = run_study(workdir, max(2, min(small, jobs // 2))), run_study(workdir, jobs)
    rows = []
    for s in (little, big):
        rows.append(Row("bigsweep", f"{s.jobs:,} runs: to job 0 launched (first run started {s.to_first_run:.1f} s)",
                        s.to_first_job, None, unit="s", goal="<= 5 s",
                        extra={"to_first_run_s": s.to_first_run, "peak_rss_mb": s.peak_rss_mb}))
    rows.append(Row("bigsweep", f"outside training per job: {big.jobs:,} runs / {little.jobs} runs", big.per_job,
                    little.per_job, unit="s/job", goal="<= 1.25"))
    rows.append(Row("bigsweep", f"{big.jobs:,} runs: from the last run's end to the exit (figures included)",
                    big.exit_wait, None, unit="s", goal="<= 3 s", extra={"small_exit_wait_s": little.exit_wait}))
    rows.append(Row("bigsweep", f"{big.jobs:,} runs: peak memory of the sweep's process", big.peak_rss_mb, None,
                    unit="MB"))
    return rows
