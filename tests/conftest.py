"""Shared fixtures: configs composed with Hydra's compose API, and a throwaway MLflow store."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
FAST = ["trainer.epochs=2"]


def make_cfg(*overrides: str):
    """The config `python train.py <overrides>` would run (without the hydra node)."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> str:
    """One sqlite MLflow store for the in-process runs of the whole session (each test reads its own run)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def run_cfg(store):
    """Compose a fast config that logs to the session store."""
    def _make(*overrides: str):
        return make_cfg(*FAST, f"tracking.uri={store}", *overrides)
    return _make


def train_cli(*args: str, cwd: Path, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python train.py ARGS` as a user would, in folder cwd, capturing its output."""
    full_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | (env or {})
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    """Each test in its own working directory (runs outside Hydra write their checkpoints under ./outputs) and
    without MLFLOW_TRACKING_URI, as in a fresh shell: mlflow.set_tracking_uri, called by every in-process run,
    also sets that variable, and a later test's subprocess would inherit another test's store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from trainer.runtime import signals as interrupt

    interrupt.handled()  # a signal an earlier in-process test raised is not pending, nor a repeat, here
