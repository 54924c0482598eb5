"""Where runs go: the MLflow store (tracking.uri), checked and created before any run, and its experiment.

mlflow is imported inside the functions: the sweep's callback, which Hydra builds for every command, uses this
module, and the import costs about two seconds.
"""
from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from trainer.errors import UserError
from trainer.runtime.writable import blocker, free_space
from trainer.tracking.masking import hide_password

log = logging.getLogger(__name__)

SQLITE = "sqlite:///"
# MLflow 3 declares an experiment's kind in this tag ("Machine learning", not GenAI); the 3.17 UI still opens on
# GenAI pages unless the URL says ?workflowType=machine_learning, which trainer.sweep.callback.sweep_hint prints.
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


def probe_http(uri: str) -> None:
    """UserError unless the tracking server at uri answers within 5 s: MLflow's client retries an unreachable
    server with backoff for minutes."""
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
    return Path(uri[len(SQLITE):]) if uri.startswith(SQLITE) else None


def _probe_database(uri: str) -> None:
    # MLflow retries a database it cannot reach for almost two minutes, printing a warning each time.
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": 5})
        engine.connect().close()
        engine.dispose()
    except Exception as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        shown = hide_password(uri)
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
        probe_http(uri)
    if uri.startswith("postgresql"):
        _probe_database(uri)
    db = sqlite_path(uri)
    if db is not None:
        _require_writable(db, uri)
    mlflow.set_tracking_uri(uri)
    try:
        if db is None:
            return _experiment_id(name)
        with FileLock(f"{db}.lock"):  # held while MLflow creates or upgrades the schema and the experiment
            if not db.exists():
                _create_sqlite(db, uri)
            return _experiment_id(name)
    except UserError:
        raise
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


def _require_writable(db: Path, uri: str) -> None:
    """UserError unless the sqlite database db (or its folder, where sqlite writes its journal and the lock file
    goes) can be written: MLflow would read the experiment, then fail on the run's first write with a traceback of
    some 200 lines."""
    if not db.parent.is_dir():
        raise UserError(f"tracking.uri={uri}: the folder {db.parent} does not exist. Create it or fix tracking.uri.")
    stuck = db if db.exists() and not os.access(db, os.W_OK) else blocker(db.parent)
    if stuck is not None:
        raise UserError(f"tracking.uri={uri}: {stuck} is read-only for this user, and MLflow writes every run into "
                        f"the database {db.name}{' and its folder' if stuck != db else ''}. Make it writable "
                        f"(chmod u+w {stuck}), or log elsewhere with tracking.uri=sqlite:///<a writable folder>/"
                        "mlflow.db.")


def _create_sqlite(db: Path, uri: str) -> None:
    """A new MLflow database at db: its schema made under a temporary name beside it, then renamed into place, so
    that a failure part-way (a full disk, a kill) never leaves a half-migrated mlflow.db that later runs cannot
    open. Called under the database's lock file."""
    from mlflow.tracking import MlflowClient

    for stale in db.parent.glob(f".{db.name}.new-*"):  # left by a process killed while creating it
        stale.unlink(missing_ok=True)
    tmp = db.with_name(f".{db.name}.new-{os.getpid()}")
    try:
        MlflowClient(f"{SQLITE}{tmp}").search_experiments(max_results=1)  # MLflow builds the schema on first use
        _dispose(f"{SQLITE}{tmp}")
        os.replace(tmp, db)
    except Exception as e:  # sqlite's, SQLAlchemy's and MLflow's errors
        _dispose(f"{SQLITE}{tmp}")
        for part in (tmp, tmp.with_name(tmp.name + "-journal")):
            part.unlink(missing_ok=True)
        room = free_space(db.parent)
        raise UserError(f"tracking.uri={uri}: a new MLflow database could not be created there ({_reason(e)}"
                        f"{'; ' + room if room else ''}). Nothing was left behind: free some space (or fix the "
                        "folder) and run again, or log elsewhere with tracking.uri.") from e


def _dispose(uri: str) -> None:
    """Close MLflow's cached connections to the sqlite file at uri (best effort: MLflow keeps one engine per URI)."""
    import contextlib

    with contextlib.suppress(Exception):
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        SqlAlchemyStore._engine_map.pop(uri).dispose()


def _reason(e: BaseException) -> str:
    """The first line of the database driver's message under e (sqlite's 'database or disk is full'), else e's."""
    seen = e
    while seen is not None:
        driver = getattr(seen, "orig", None)
        if driver is not None:
            return f"sqlite: {str(driver).strip().splitlines()[0]}"
        seen = seen.__cause__ or seen.__context__
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


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


# the schemes of a store address MLflow 3 opens (a database's driver after '+': postgresql+psycopg2); '' a path
STORE_SCHEMES = ("", "file", "sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks", "databricks-uc")


def require_store(uri: str) -> None:
    """UserError for a sqlite store that does not exist (MLflow would create an empty one and find nothing in it) and
    for an unreachable server (MLflow's client would retry it for minutes): for commands that read runs."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0] if "://" in uri else ""
    if scheme not in STORE_SCHEMES:
        raise UserError(f"--tracking-uri {uri}: not a store MLflow can open (its scheme {scheme!r} is none of "
                        f"{', '.join(s for s in STORE_SCHEMES if s)}); e.g. --tracking-uri sqlite:///mlflow.db or "
                        "http://127.0.0.1:5000.")
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise UserError(f"there is no MLflow store at {uri}. Run the command in the folder you trained in, or "
                        "pass --tracking-uri (the trainer's tracking.uri).")
    if uri.startswith(("http://", "https://")):
        probe_http(uri)


def search_all(client: Any, experiment_ids: list[str], filter_string: str = "") -> list[Any]:
    """Every run of experiment_ids that filter_string matches: MlflowClient.search_runs returns one page (1,000 runs
    by default), and a sweep may hold thousands."""
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string, max_results=PAGE, page_token=token)
        runs += page
        token = page.token
        if not token:
            return runs


PAGE = 5000  # runs per search_runs call: MLflow's own limit is 50,000 (its default page, 1,000)


def count_children(client: Any, experiment_id: str, parent_run_id: str, tag: tuple[str, str] | None = None) -> int:
    """The number of active runs of experiment_id under parent_run_id (its tag mlflow.parentRunId), and with the tag
    key = value when tag is given. MLflow's SQL stores (sqlite, PostgreSQL, MySQL) count in the database: a search
    builds every run's params, tags and metrics (4 s for 2,000 runs of a sweep, 1.6 ms here); any other store (a
    tracking server) is searched."""
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    try:
        from mlflow.store.tracking.dbmodels.models import SqlRun, SqlTag
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    except ImportError:  # a later MLflow moved them: a search gives the same number
        SqlAlchemyStore = None  # noqa: N806
    if SqlAlchemyStore is None or not isinstance(store, SqlAlchemyStore):
        extra = f" and tags.`{tag[0]}` = '{tag[1]}'" if tag else ""
        return len(search_all(client, [experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'{extra}"))
    from sqlalchemy import func, select

    def tagged(key: str, value: str) -> Any:
        return SqlRun.run_uuid.in_(select(SqlTag.run_uuid).where(SqlTag.key == key, SqlTag.value == value))

    query = select(func.count()).select_from(SqlRun).where(
        SqlRun.experiment_id == int(experiment_id), SqlRun.lifecycle_stage == "active",
        tagged("mlflow.parentRunId", parent_run_id), *([tagged(*tag)] if tag else []))
    with store.ManagedSessionMaker() as session:
        return int(session.execute(query).scalar_one())


def refresh_statistics(uri: str) -> None:
    """For a sqlite store, (re)compute the statistics SQLite's query planner reads (ANALYZE) when there are none or
    the store has more than doubled in runs since: without them SQLite reads a run's metric history through the
    metrics table's primary key (key, ...), scanning that metric's rows of every run (70 ms a run in a store of
    10,000 runs, so compare's curves took minutes), instead of MLflow's (run_uuid, key, step) index (under 1 ms).
    ANALYZE takes about 0.7 s for 10,000 runs. Nothing for other stores; a busy or read-only file is left as it is."""
    import contextlib
    import sqlite3

    db = sqlite_path(uri)
    if db is None or not db.is_file():
        return
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=5)) as con:
            runs = con.execute("select count(*) from runs").fetchone()[0]
            known = con.execute("select stat from sqlite_stat1 where tbl = 'runs' limit 1").fetchone() if \
                con.execute("select 1 from sqlite_master where name = 'sqlite_stat1'").fetchone() else None
            if known is None or runs > 2 * int(str(known[0]).split()[0]):
                con.execute("ANALYZE")
                con.commit()
    except (sqlite3.Error, ValueError, IndexError) as e:  # busy, read-only, not MLflow's: the store works without
        log.info("sqlite statistics of %s not refreshed: %s", db, e)


def opened(uri: str | None) -> tuple[str, Any]:
    """The store a command reads (resolve_uri; refused when it does not exist, require_store) and a client on it."""
    from mlflow.tracking import MlflowClient

    uri = resolve_uri(uri)
    require_store(uri)
    return uri, MlflowClient(uri)


def experiment_ids(client: Any, uri: str, name: str | None) -> list[str]:
    """The id of the experiment called name (UserError naming the store if there is none), or every experiment's."""
    if name is None:
        return [e.experiment_id for e in client.search_experiments()]
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise UserError(f"--experiment {name}: no such experiment in {uri}.")
    return [experiment.experiment_id]
