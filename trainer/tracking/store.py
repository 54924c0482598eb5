"""MLflow tracking: where runs go, what a run records, and the parent run of a Hydra sweep.

mlflow is imported inside the functions: Hydra instantiates SweepCallback for every command, and the
import costs about two seconds.

MLflow's telemetry thread deletes `_MLFLOW_TELEMETRY_SESSION_ID` from os.environ while the epoch writer's
`log_batch` reads the environment (one submitit job in four failed so, mlflow 3.17): it is turned off before
mlflow is imported, unless the user chose otherwise. This module is imported before mlflow in the launching
process and in every job, wherever the launcher runs it.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

from trainer.config import UserError
from trainer.sweep.check import BASIC_LAUNCHER
from trainer.sweep.search import Pruned

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
log = logging.getLogger(__name__)

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


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI, else None."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def _probe_database(uri: str) -> None:
    # MLflow retries a database it cannot reach for almost two minutes, printing a warning each time.
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": 5})
        engine.connect().close()
        engine.dispose()
    except Exception as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        shown = sqlalchemy.engine.make_url(uri).render_as_string(hide_password=True)
        raise UserError(f"tracking.uri={shown} cannot be reached ({reason}). Start the database, fix "
                        "tracking.uri or $MLFLOW_TRACKING_URI, or unset both to log to ./mlflow.db.") from e


def setup_experiment(uri: str, name: str) -> str:
    """Point MLflow at uri, create the store and the experiment if needed and return its id; UserError if the
    store fails.

    A fresh sqlite database is created under a lock file beside it (<db>.lock, the filelock package): MLflow's
    schema migrations crash when several processes create the same file at once, and may leave it broken.
    """
    import mlflow
    from filelock import FileLock

    if uri.startswith(("http://", "https://")):
        _probe_http(uri)
    if uri.startswith("postgresql"):
        _probe_database(uri)
    db = sqlite_path(uri)
    if db is not None and not db.parent.is_dir():
        raise UserError(f"tracking.uri={uri}: the folder {db.parent} does not exist. Create it or fix tracking.uri.")
    mlflow.set_tracking_uri(uri)
    try:
        if db is None:
            return _experiment_id(name)
        with FileLock(f"{db}.lock"):  # held while MLflow creates or upgrades the schema and the experiment
            return _experiment_id(name)
    except mlflow.exceptions.MlflowException as e:
        hint = (" The server asks for a login: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD."
                if "401" in str(e) else "")
        raise UserError(f"tracking.uri={uri}: MLflow could not open experiment {name!r}: {e}{hint}") from e
    except Exception as e:  # database drivers raise their own errors
        if db is not None:
            raise UserError(f"tracking.uri={uri}: the MLflow database {db} could not be opened or upgraded "
                            f"({type(e).__name__}: {e}). If it came from a newer MLflow, use that version; if it "
                            "is damaged, move it aside (a new one is created) or log elsewhere with "
                            "tracking.uri.") from e
        raise UserError(f"tracking.uri={uri} could not be used ({type(e).__name__}: {e}). Check that the "
                        "server is up and the URI is right, or unset it to log to ./mlflow.db.") from e


def _experiment_id(name: str) -> str:
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        if KIND_TAG not in experiment.tags:  # made before the harness set it, or by hand: a kind a user chose stays
            mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, KIND_TAG, TRAINING_KIND)
        return experiment.experiment_id
    try:
        return mlflow.create_experiment(name, tags={KIND_TAG: TRAINING_KIND})
    except mlflow.exceptions.MlflowException as e:
        if "already exists" not in str(e):
            raise
        return mlflow.get_experiment_by_name(name).experiment_id  # another process created it meanwhile


def drop_inherited_run_id() -> None:
    """Remove MLFLOW_RUN_ID from the environment, with a warning.

    mlflow.start_run continues the run that variable names: one left in a shell (or set by `mlflow run`) would
    put a new run's params and metrics into an old run, outside its sweep. Every run here is new or resumed
    through trainer.resume.
    """
    run_id = os.environ.pop("MLFLOW_RUN_ID", None)
    if run_id:
        log.warning("MLFLOW_RUN_ID=%s is set in the environment: ignored, a new run is started (continue an "
                    "interrupted run with trainer.resume=<id>)", run_id)


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

    drop_inherited_run_id()
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


def override(key: str, value: str) -> str:
    """A Hydra command-line override that sets key to the string value as it is (quoted: URIs hold ':', '/', '@')."""
    return f"{key}='{value.replace(chr(39), chr(92) + chr(39))}'"


def handed_over(config: DictConfig, key: str) -> str | None:
    """The value SweepCallback handed to the jobs for key (tracking.uri, tracking.parent_run_id), read back from
    the sweep config's hydra overrides by a sweeper that runs after the callback; None before it or outside one."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    found = [o for o in OverridesParser.create().parse_overrides(list(config.hydra.overrides.hydra))
             if o.key_or_group == key]
    return str(found[-1].value()) if found else None


CHECKPOINT_TAG = "checkpoint.path"  # where a run writes its checkpoint (trainer.resume reads it back)


def _resume_command(run: Any) -> str | None:
    """The command that continues a sweep's stopped run, from the overrides Hydra wrote beside its checkpoint
    (the job's .hydra/overrides.yaml); None when that folder is not on this machine."""
    from trainer.tracking.provenance import resume_command

    ckpt = run.data.tags.get(CHECKPOINT_TAG)
    overrides = Path(ckpt).parent / ".hydra" / "overrides.yaml" if ckpt else None
    if overrides is None or not overrides.is_file():
        return None
    return resume_command([str(o) for o in OmegaConf.load(overrides)], run.info.run_id)


class SweepCallback(Callback):
    """Creates the store, the experiment and a parent run once, before the jobs of a multirun start, and hands
    the store's URI and the parent's id to every job through the job's own config.

    The hand-over: each launcher (basic, joblib, submitit, ray) builds a job's config with
    `config_loader.load_sweep_config(sweep_config, job_overrides)`, which composes the config again from
    `sweep_config.hydra.overrides.hydra` + the job's overrides. Appending `tracking.uri=...` and
    `tracking.parent_run_id=...` to that list here (the same object the launcher receives afterwards) puts
    them into every job's config, wherever the job runs: nothing is read from the job's environment or from a
    file. Creating the sqlite store here, once, also keeps the jobs from racing to create it.

    Every run the sweep owns ends: on_multirun_end ends the parent FINISHED (FAILED if a child did not finish);
    when the sweep stops early (a job failed, a signal), an atexit handler ends the parent FAILED and any child
    still RUNNING (a worker killed before it could record its end) KILLED.
    """

    _workers = False  # set by _start: whether the jobs run in a launcher's worker processes

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check the sweep's values and its store before any job: a user error ends the sweep with one `error:`
        line and exit code 2, as it ends a single run, with no parent run created."""
        from trainer.sweep.check import check_sweep

        try:
            check_sweep(config)
            self._start(config)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)

    def _start(self, config: DictConfig) -> None:
        from mlflow.tracking import MlflowClient

        drop_inherited_run_id()
        uri = resolve_uri(config.tracking.uri)
        experiment_id = setup_experiment(uri, config.tracking.experiment)
        overrides = mask_overrides(" ".join(config.hydra.overrides.task))
        run = MlflowClient(uri).create_run(experiment_id, run_name=f"sweep {overrides}".strip(),
                                           tags={"sweep": "parent", "sweep.overrides": overrides})
        self._uri, self._run_id, self._experiment_id = uri, run.info.run_id, experiment_id
        # jobs in a launcher's worker processes: a stopped one may end its run KILLED where its output is not seen
        self._workers = config.hydra.launcher.get("_target_") != BASIC_LAUNCHER
        # Hydra skips on_multirun_end when a job fails or a signal stops the sweep: the runs must not stay RUNNING.
        atexit.register(self._end, "FAILED")
        with read_write(config.hydra.overrides):
            config.hydra.overrides.hydra.extend([override("tracking.uri", uri),
                                                 override("tracking.parent_run_id", run.info.run_id)])
        log.info("sweep parent run %s in experiment %r (store %s)", run.info.run_id, config.tracking.experiment, uri)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from trainer.analysis.compare import sweep_hint

        self._end("FINISHED")
        print(sweep_hint(self._uri, self._run_id, self._experiment_id), flush=True)

    def _end(self, status: str) -> None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self._uri)
        parent = client.get_run(self._run_id)
        if parent.info.status != "RUNNING":
            return
        children = client.search_runs([parent.info.experiment_id],
                                      filter_string=f"tags.mlflow.parentRunId = '{self._run_id}'")
        stopped = []
        for child in children:
            if child.info.status == "RUNNING":  # its process was killed before it could end the run
                client.set_tag(child.info.run_id, "error", "the sweep stopped while this run was running")
                client.set_terminated(child.info.run_id, "KILLED")
                stopped.append(child)
            elif child.info.status == "KILLED" and self._workers:
                stopped.append(child)  # its worker ended it (Ctrl-C reaches the whole process group)
        commands = [c for c in map(_resume_command, stopped) if c]
        if commands:  # a launcher's worker was stopped with its job: it could not print this itself
            print(f"{len(commands)} run(s) of the sweep were stopped (KILLED); continue each with:\n  "
                  + "\n  ".join(commands), file=sys.stderr, flush=True)
        failed = [c.info.run_name for c in children if c.info.status != "FINISHED"]
        if failed or status != "FINISHED":
            client.set_tag(self._run_id, "error", f"runs not finished: {', '.join(failed) or 'sweep stopped'}")
            status = "FAILED"
        client.set_tag(self._run_id, "sweep.runs", str(len(children)))
        client.set_terminated(self._run_id, status)
