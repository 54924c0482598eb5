"""MLflow tracking: where runs go, what a run records, and the parent run of a Hydra sweep.

mlflow is imported inside the functions: Hydra instantiates SweepCallback for every command, and the
import costs about two seconds.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from trainer.config import UserError
from trainer.search import Pruned

log = logging.getLogger(__name__)

PARENT_RUN_FILE = "mlflow_parent_run_id"
GROUPS = ("dataset", "imbalance", "noise", "model", "loss", "resampling", "regularization", "optim", "ssl",
          "remedy")  # remedy: only in the study presets (conf/experiment/), which choose one remedy per run
MAX_PARAM_CHARS = 6000
_SECRET = re.compile(r"password|passwd|token|secret|credential|api_?key|access_?key|private_?key"
                     r"|(?:^|[_\-])keys?(?:$|[_\-])", re.I)
_OVERRIDE = re.compile(r"([\w.+~@/\-]+)=([^,\s]*)")
MASK = "***"
# MLflow 3 declares an experiment's kind in this tag ("Machine learning", not GenAI); the 3.17 UI still opens on
# GenAI pages unless the URL says ?workflowType=machine_learning, which trainer.compare.sweep_hint prints.
KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"


def resolve_uri(uri: str | None) -> str:
    """tracking.uri if given, else $MLFLOW_TRACKING_URI, else sqlite:///<absolute cwd>/mlflow.db."""
    if uri:
        return str(uri)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return default_uri()


def default_uri() -> str:
    """MLflow's own default store, made absolute so every job of a sweep writes to the same database."""
    return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def ui_command(uri: str) -> str:
    """The command that opens the MLflow UI on this store."""
    if uri == default_uri():
        return "mlflow ui"
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


def _probe_http(uri: str) -> None:
    # MLflow's client retries an unreachable server with backoff for minutes; one short probe says it now.
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).close()
    except urllib.error.HTTPError:
        pass  # it answered: reachable (auth and routing problems surface with a clear MLflow message)
    except (urllib.error.URLError, OSError) as e:
        raise UserError(f"tracking.uri={uri} cannot be reached ({getattr(e, 'reason', e)}). Start the server "
                        "(mlflow server --host 127.0.0.1 --port 5000), fix tracking.uri or $MLFLOW_TRACKING_URI, "
                        "or unset both to log to ./mlflow.db.") from e


def setup_experiment(uri: str, name: str) -> str:
    """Point MLflow at uri, create the experiment if needed and return its id; UserError if the store fails."""
    import mlflow

    if uri.startswith(("http://", "https://")):
        _probe_http(uri)
    if uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///"):]).parent
        if not folder.is_dir():
            raise UserError(f"tracking.uri={uri}: the folder {folder} does not exist. Create it or fix tracking.uri.")
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is None:
            return mlflow.create_experiment(name, tags={KIND_TAG: TRAINING_KIND})
        if KIND_TAG not in experiment.tags:  # made before the harness set it, or by hand: a kind a user chose stays
            mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, KIND_TAG, TRAINING_KIND)
        return experiment.experiment_id
    except mlflow.exceptions.MlflowException as e:
        if "already exists" in str(e):  # another job created it between our two calls
            return mlflow.get_experiment_by_name(name).experiment_id
        hint = (" The server asks for a login: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD."
                if "401" in str(e) else "")
        raise UserError(f"tracking.uri={uri}: MLflow could not open experiment {name!r}: {e}{hint}") from e
    except Exception as e:  # database drivers raise their own errors for an unreachable server
        raise UserError(f"tracking.uri={uri} could not be used ({type(e).__name__}: {e}). Check that the "
                        "server is up and the URI is right, or unset it to log to ./mlflow.db.") from e


def is_secret(key: str) -> bool:
    """True when the last part of a dotted key looks like it holds a secret (password, token, secret, key, ...)."""
    return bool(_SECRET.search(str(key).rsplit(".", 1)[-1]))


def mask_overrides(text: str) -> str:
    """Command-line overrides (`a.token=x`, `k=v,k2=v2`) with the values of secret-looking keys as ***."""
    return _OVERRIDE.sub(lambda m: f"{m[1]}={MASK}" if is_secret(m[1]) else m[0], text)


def mask(node: Any) -> Any:
    """A plain config tree with the values of secret-looking keys, and of such overrides in strings, as ***."""
    if isinstance(node, dict):  # an unset secret (null, "") stays visible: nothing to hide, nothing to ask for
        return {k: MASK if is_secret(k) and v not in (None, "") else mask(v) for k, v in node.items()}
    if isinstance(node, list):
        return [mask(v) for v in node]
    return mask_overrides(node) if isinstance(node, str) else node


def flatten(cfg: DictConfig) -> dict[str, str]:
    """The resolved config as MLflow params: dotted keys, values cut to MLflow's limit, secrets masked."""
    out: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
            return
        key = re.sub(r"[^\w\-. :/]", "_", prefix)
        value = json.dumps(node) if isinstance(node, (list, dict)) else str(node)
        out[key] = value[:MAX_PARAM_CHARS]

    walk(mask(OmegaConf.to_container(cfg, resolve=True)), "")
    return out


def log_config(cfg: DictConfig, hydra_dir: Path | None) -> None:
    """Log the resolved config as config.yaml and Hydra's .hydra/ files (config, overrides), secrets masked."""
    import mlflow

    mlflow.log_text(OmegaConf.to_yaml(mask(OmegaConf.to_container(cfg, resolve=True))), "config.yaml")
    if hydra_dir is None or not hydra_dir.is_dir():
        return
    for path in sorted(hydra_dir.glob("*.yaml")):
        tree = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        mlflow.log_text(OmegaConf.to_yaml(mask(tree)), f".hydra/{path.name}")


def stored_config(client: Any, run_id: str) -> DictConfig:
    """The resolved config a run logged as config.yaml (secret values are *** there)."""
    import tempfile
    from unittest import mock

    # MLflow draws a progress bar on stderr even for one small file.
    with tempfile.TemporaryDirectory() as tmp, mock.patch.dict(os.environ, MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"):
        try:
            path = client.download_artifacts(run_id, "config.yaml", tmp)
        except Exception as e:
            raise UserError(f"run {run_id} has no readable config.yaml artifact ({type(e).__name__}: {e}); "
                            "it was not logged by this harness or its artifacts are gone.") from e
        return OmegaConf.load(path)


def group_tags(cfg: DictConfig) -> dict[str, str]:
    """The chosen option of each config group, as tags (dataset=digits, loss=focal, ...)."""
    return {g: str(cfg[g].name) for g in GROUPS if g in cfg and "name" in cfg[g]}


@contextmanager
def mlflow_run(experiment_id: str, run_name: str, tags: dict[str, str],
               parent_run_id: str | None = None, run_id: str | None = None) -> Iterator[Any]:
    """An MLflow run that ends FINISHED, FAILED (error in the `error` tag) or KILLED (Ctrl-C), never RUNNING;
    a search trial stopped by Optuna's pruner (trainer.search.Pruned) ends FINISHED with a `pruned` tag.

    With run_id, the existing run is continued (resumed) instead of a new one created.
    """
    import mlflow

    new = run_id is None
    with mlflow.start_run(run_id=run_id, experiment_id=experiment_id if new else None,
                          run_name=run_name if new else None, tags=tags,
                          parent_run_id=parent_run_id if new else None) as run:
        try:
            yield run
        except KeyboardInterrupt as e:
            mlflow.set_tag("error", str(e) or "interrupted (KeyboardInterrupt)")
            mlflow.end_run("KILLED")
            raise
        except Pruned as e:  # an Optuna search stopped this trial on purpose: what it logged is a finished run
            mlflow.set_tag("pruned", str(e))
            mlflow.end_run("FINISHED")
            raise
        except BaseException as e:
            mlflow.set_tag("error", f"{type(e).__name__}: {e}"[:MAX_PARAM_CHARS])
            raise  # start_run's context manager ends the run FAILED


def parent_run_id(sweep_dir: str | Path) -> str | None:
    """The sweep's parent run id written by SweepCallback, if this job belongs to such a sweep."""
    path = Path(sweep_dir) / PARENT_RUN_FILE
    return path.read_text().strip() if path.exists() else None


class SweepCallback(Callback):
    """Creates the store, the experiment and a parent run once, before the jobs of a multirun start.

    Several processes creating a fresh sqlite database at once crash in its migrations; creating it here,
    in the launching process, avoids the race. Jobs find the parent run id in the sweep folder.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from mlflow.tracking import MlflowClient

        uri = resolve_uri(config.tracking.uri)
        experiment_id = setup_experiment(uri, config.tracking.experiment)
        overrides = mask_overrides(" ".join(config.hydra.overrides.task))
        client = MlflowClient(uri)
        run = client.create_run(experiment_id, run_name=f"sweep {overrides}".strip(),
                                tags={"sweep": "parent", "sweep.overrides": overrides})
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PARENT_RUN_FILE).write_text(run.info.run_id)
        self._uri, self._run_id, self._experiment_id = uri, run.info.run_id, experiment_id
        # Hydra skips on_multirun_end when a job fails: the parent must not stay RUNNING then either.
        atexit.register(self._end, "FAILED")
        log.info("sweep parent run %s in experiment %r", run.info.run_id, config.tracking.experiment)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from trainer.compare import sweep_hint

        self._end("FINISHED")
        print(sweep_hint(self._uri, self._run_id, self._experiment_id), flush=True)

    def _end(self, status: str) -> None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self._uri)
        if client.get_run(self._run_id).info.status != "RUNNING":
            return
        children = client.search_runs([client.get_run(self._run_id).info.experiment_id],
                                      filter_string=f"tags.mlflow.parentRunId = '{self._run_id}'")
        failed = [c.info.run_name for c in children if c.info.status != "FINISHED"]
        if failed or status != "FINISHED":
            client.set_tag(self._run_id, "error", f"runs not finished: {', '.join(failed) or 'sweep stopped'}")
            status = "FAILED"
        client.set_tag(self._run_id, "sweep.runs", str(len(children)))
        client.set_terminated(self._run_id, status)
