"""Fixtures: a throwaway MLflow store, fast configs that log to it, and each test in its own working folder.
Shared helpers (paths, composing configs, the command line) are in helpers.py."""
from __future__ import annotations

import pytest

from helpers import FAST, make_cfg


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


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    """Each test in its own working directory (runs outside Hydra write their checkpoints under ./outputs) and
    without MLFLOW_TRACKING_URI, as in a fresh shell: mlflow.set_tracking_uri, called by every in-process run,
    also sets that variable, and a later test's subprocess would inherit another test's store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from trainer.runtime import signals as interrupt

    interrupt.handled()  # a signal an earlier in-process test raised is not pending, nor a repeat, here
