"""Helpers the tests share: the repository's paths, configs composed as `python train.py` composes them, and the
command line run as a user runs it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
FAST = ["trainer.epochs=2"]


def make_cfg(*overrides: str):
    """The config `python train.py <overrides>` would run (without the hydra node)."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def train_cli(*args: str, cwd: Path, timeout: int = 600, env: dict | None = None, prefix: tuple[str, ...] = (),
              preexec_fn=None) -> subprocess.CompletedProcess:
    """Run `python train.py ARGS` as a user would, in folder cwd, capturing its output (after the command `prefix`,
    e.g. setpriv's, and preexec_fn, e.g. a resource limit, when given)."""
    full_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | (env or {})
    return subprocess.run([*prefix, sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          preexec_fn=preexec_fn)


def one_error(proc: subprocess.CompletedProcess, cwd: Path) -> str:
    """The one `error:` line of a command that stopped on a user's mistake (exit 2, no traceback); asserts that it
    left no MLflow run RUNNING in cwd's mlflow.db, if there is one."""
    from mlflow.tracking import MlflowClient

    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    db = cwd / "mlflow.db"
    if db.exists():
        client = MlflowClient(f"sqlite:///{db}")
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    return errors[0]
