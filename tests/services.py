"""The services the dist tests run against, named by environment variables that .ci/services.sh exports."""
from __future__ import annotations

import os

import pytest
from mlflow.tracking import MlflowClient

SERVICES = {"CE_PG_URI": "PostgreSQL (postgresql+psycopg2://...)", "CE_MLFLOW_URI": "an MLflow server (http://...)",
            "SLURM_CONF": "a Slurm cluster's slurm.conf"}


def require(var: str) -> str:
    """The value of var; without it, skip the test with the reason, or fail it under CI (CI=true), where
    .ci/run starts every service and a missing one is a broken CI, not a test to leave out."""
    value = os.environ.get(var)
    if value:
        return value
    reason = (f"${var} is not set: this test needs {SERVICES.get(var, var)}; start them with "
              f"`.ci/services.sh start DIR && source DIR/env` (as root)")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def sweep_runs(uri: str, experiment: str) -> tuple[object, list]:
    """(the one sweep parent run, its child runs) in the experiment; AssertionError unless exactly one parent."""
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    parents = [r for r in runs if r.data.tags.get("sweep") == "parent"]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return parents[0], children
