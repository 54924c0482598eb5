"""The data a run trained on as an MLflow dataset input (mlflow.log_input): what the UI's Dataset column and a run's
Datasets box show, and what MLflow's search can filter on (`dataset.name`, `dataset.digest`).

mlflow is imported inside the function.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

CONTEXT = "training"  # mlflow.data.context: the data the model was trained, validated and tested on
DIGEST_CHARS = 8  # as long as MLflow's own digests; the whole SHA-256 stays in the tag data.source_fingerprint
LOADERS = {"digits": "sklearn.datasets.load_digits", "breast_cancer": "sklearn.datasets.load_breast_cancer",
           "synthetic": "sklearn.datasets.make_classification"}


def data_input(dataset: DictConfig, source_fingerprint: str) -> Any:
    """An mlflow.data MetaDataset for the run's data: named after the dataset option (a file or folder by its own name),
    its digest the first DIGEST_CHARS of data.source_fingerprint (trainer.data.fingerprint: what the loader read,
    before any split: the runs of every seed, fold and remedy on one file share it, and two contents of one path
    never do; data.fingerprint keeps what each run trained on), its source the file or folder read (MLflow's "local"
    source) or, for generated and bundled data, the loader and its settings ("code")."""
    import warnings

    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    name = str(dataset.name)
    where = dataset.get("path") or dataset.get("root")
    if where:
        path = Path(str(where)).expanduser().resolve()
        with warnings.catch_warnings():  # MLflow registers its local source for two schemes, and says so each time
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(str(path))
        label = path.name if dataset.get("path") else name
    else:
        settings = {k: v for k, v in OmegaConf.to_container(dataset, resolve=True).items() if k != "name"}
        source = CodeDatasetSource({"loader": LOADERS.get(name, name), **{k: str(v) for k, v in settings.items()}})
        label = name
    return MetaDataset(source, name=label, digest=source_fingerprint[:DIGEST_CHARS])


def log_data_input(dataset: DictConfig, source_fingerprint: str, attempts: int = 3) -> None:
    """mlflow.log_input of the run's data_input, again when another run created the same dataset entry at the same
    moment: MLflow looks the entry up, then inserts it, so two runs of a parallel sweep on one data source (one entry
    per source) can both insert it, and the second is refused (PostgreSQL: UniqueViolation on "dataset_pk"; seen
    in a joblib sweep on the MLflow server); the next call finds the entry and links the run to it."""
    import mlflow
    from mlflow.exceptions import MlflowException

    entry = data_input(dataset, source_fingerprint)
    for attempt in range(attempts):
        try:
            mlflow.log_input(entry, context=CONTEXT)
            return
        except MlflowException as e:
            if attempt == attempts - 1 or not concurrent_insert(e):
                raise
            time.sleep(0.1 * (attempt + 1))


def concurrent_insert(e: Exception) -> bool:
    """e is a store's refusal of a row another process inserted first (PostgreSQL, MySQL, SQLite wordings)."""
    text = str(e)
    return any(m in text for m in ("UniqueViolation", "duplicate key value", "Duplicate entry",
                                   "UNIQUE constraint failed"))
