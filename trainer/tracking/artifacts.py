"""One artifact of a run, downloaded without MLflow's progress bar (it draws one on stderr even for a small file,
so scripts/figures.py, orphans.py and a resume printed a bar per run among their own lines).

mlflow is not imported here: the client passed in is.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from unittest import mock


def download(client: Any, run_id: str, path: str, folder: str | Path) -> Path:
    """MlflowClient.download_artifacts(run_id, path, folder) without its progress bar: the local path of the
    artifact. Raises what the store raises for a missing artifact (its own exception types)."""
    with mock.patch.dict(os.environ, MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"):
        return Path(client.download_artifacts(run_id, path, str(folder)))
