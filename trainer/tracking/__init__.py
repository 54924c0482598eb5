"""Tracking and provenance: the MLflow store (store), what a run records (params, tags, record), secrets kept out
of it (masking), what re-creates a run (provenance), the process training it (process), continuing an interrupted
one (resume) and a run's figures once it has ended (run_figures).

MLflow's telemetry thread deletes `_MLFLOW_TELEMETRY_SESSION_ID` from os.environ while the epoch writer's
`log_batch` reads the environment (one submitit job in four failed so, mlflow 3.17): it is turned off here, before
mlflow is imported, unless the user chose otherwise. This package is imported before mlflow in the launching
process (the sweep's callback) and in every job, wherever the launcher runs it.
"""
import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
