"""The contention case: the default digits run quiet and beside a busy process (benchmarks.busy), with the harness's
thread choice and with torch's default thread count."""
from __future__ import annotations

import contextlib
import io
import os
import statistics
import subprocess
import time
from pathlib import Path

import mlflow

from benchmarks.config import compose
from benchmarks.repo import module_command, module_env
from benchmarks.table import Row
from trainer.run import run


def case_contention(device: str, workdir: Path, repeats: int = 2, epochs: int | None = None) -> list[Row]:
    """Case 7: the default digits run, quiet and beside a busy process (matrix products on every core), with the
    harness's thread choice and with trainer.threads=<all cores> (torch's default): each one's median
    time/train_s beside the busy process against its median quiet time, the runs interleaved."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    uri = f"sqlite:///{workdir / 'contention.db'}"
    settings = {"chosen": [], f"trainer.threads={cores}": [f"trainer.threads={cores}"]}
    extra = [f"tracking.uri={uri}", f"trainer.device={device}"] + ([f"trainer.epochs={epochs}"] if epochs else [])
    times: dict[tuple[str, bool], list[float]] = {}
    threads: dict[str, str] = {}

    def one(name: str, busy: bool) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            result = run(compose(settings[name] + extra))
        r = mlflow.get_run(result.run_id)
        times.setdefault((name, busy), []).append(r.data.metrics["time/train_s"])
        threads[name] = r.data.params["torch.threads"]

    one("chosen", False)  # warm-up: imports, store creation
    for _ in range(repeats):
        for busy in (False, True):
            hog = subprocess.Popen(module_command("busy"), env=module_env()) if busy else None
            try:
                if hog is not None:
                    time.sleep(1.0)  # torch imported and spinning
                for name in settings:
                    one(name, busy)
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
    return [Row("contention", f"digits run beside a busy process, {threads[name]} thread(s)"
                              f"{' (chosen)' if name == 'chosen' else ' (torch default)'}: busy / quiet",
                statistics.median(times[name, True]), statistics.median(times[name, False]), unit="s train",
                goal="<= 2.00" if name == "chosen" else "")
            for name in settings]
