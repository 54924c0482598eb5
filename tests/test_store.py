"""Where a run writes, when it cannot: a read-only MLflow database or folder, an output folder Hydra cannot create,
a disk that fills while the store is created or a checkpoint is written. Each is one `error:` line naming the path
or setting, with nothing left RUNNING and no broken file left behind."""
from __future__ import annotations

import os
import resource
import shutil
import signal
import stat
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from helpers import one_error, train_cli
from trainer.tracking.store import setup_experiment

FAST = ("trainer.epochs=1",)


def unprivileged() -> tuple[str, ...]:
    """A command prefix under which permission bits apply: root ignores them unless it drops CAP_DAC_OVERRIDE."""
    if os.geteuid() != 0:
        return ()
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv (util-linux): permission bits cannot be tested")
    return ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")


def read_only(path: Path) -> None:
    path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def runs(db: Path) -> list:
    client = MlflowClient(f"sqlite:///{db}")
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A folder holding an mlflow.db with one finished run."""
    folder = tmp_path_factory.mktemp("made")
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    run = client.create_run(setup_experiment(f"sqlite:///{folder / 'mlflow.db'}", "ce-harness"))
    client.set_terminated(run.info.run_id)
    return folder


def test_a_read_only_database_is_one_line_and_keeps_its_runs(made, tmp_path):
    # 218 lines of traceback ("attempt to write a readonly database") once the run's first write failed
    shutil.copy(made / "mlflow.db", tmp_path / "mlflow.db")
    read_only(tmp_path / "mlflow.db")
    line = one_error(train_cli(*FAST, cwd=tmp_path, prefix=unprivileged()), tmp_path)
    assert line == (f"error: tracking.uri=sqlite:///{tmp_path}/mlflow.db: {tmp_path}/mlflow.db is read-only for this "
                    "user, and MLflow writes every run into the database mlflow.db. Make it writable (chmod u+w "
                    f"{tmp_path}/mlflow.db), or log elsewhere with tracking.uri=sqlite:///<a writable folder>/"
                    "mlflow.db.")
    assert len(runs(tmp_path / "mlflow.db")) == 1


def test_a_read_only_folder_of_the_database_is_named(made, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    shutil.copy(made / "mlflow.db", store / "mlflow.db")
    read_only(store)
    try:
        line = one_error(train_cli(*FAST, f"tracking.uri=sqlite:///{store}/mlflow.db", cwd=tmp_path,
                                   prefix=unprivileged()), tmp_path)
    finally:
        store.chmod(0o755)
    assert f"{store} is read-only for this user, and MLflow writes every run into the database mlflow.db and its " \
           f"folder. Make it writable (chmod u+w {store})" in line


@pytest.mark.parametrize("multirun", [False, True])
def test_an_output_folder_hydra_cannot_create_is_named_before_any_run(tmp_path, multirun):
    # Hydra's PermissionError traceback; a sweep had created its parent run first
    (tmp_path / "outputs").mkdir()
    read_only(tmp_path / "outputs")
    args = ("-m", *FAST, "seed=0,1") if multirun else FAST
    line = one_error(train_cli(*args, cwd=tmp_path, prefix=unprivileged()), tmp_path)
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    assert line.startswith(f"error: {key}=outputs/") and f"{tmp_path}/outputs is not writable by this user" in line
    assert line.endswith(f"or set {key} to one.")
    assert not (tmp_path / "mlflow.db").exists() or not runs(tmp_path / "mlflow.db")


def _disk_fills_at(limit: int):
    """In the child: files may not grow past `limit` bytes (writes then fail as on a full disk: EFBIG, not a kill)."""
    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_files


def test_a_disk_that_fills_while_the_store_is_created_leaves_no_broken_database(tmp_path):
    # the half-migrated mlflow.db stayed, and broke every later command in the folder
    line = one_error(train_cli(*FAST, cwd=tmp_path, preexec_fn=_disk_fills_at(200 * 1024)), tmp_path)
    assert line.startswith(f"error: tracking.uri=sqlite:///{tmp_path}/mlflow.db: a new MLflow database could not be "
                           "created there (sqlite: ")
    assert "Nothing was left behind" in line
    assert not (tmp_path / "mlflow.db").exists() and not list(tmp_path.glob(".mlflow.db*"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # with room again, the store is made whole
    MlflowClient(uri).create_run(setup_experiment(uri, "ce-harness"))
    assert len(runs(tmp_path / "mlflow.db")) == 1


def test_a_disk_that_fills_while_a_checkpoint_is_written_ends_the_run_failed_in_one_line(tmp_path):
    # "[enforce fail at inline_container.cc:672] ..."
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "checkpoint.pt.tmp").symlink_to("/dev/full")  # the checkpoint's temporary file: ENOSPC on write
    line = one_error(train_cli(*FAST, f"hydra.run.dir={folder}", cwd=tmp_path), tmp_path)
    assert line.startswith(f"error: checkpoint {folder}/checkpoint.pt: could not be written (No space left on device")
    assert [(r.info.status, r.data.tags["error"].split(":")[0]) for r in runs(tmp_path / "mlflow.db")] == \
        [("FAILED", "CheckpointError")]


def test_children_are_counted_in_the_database_as_a_search_counts_them(tmp_path):
    """A sweep's end counts its runs instead of reading each back (4 s for 2,000 runs): the count must be the
    search's, deleted runs and other parents' runs left out, and a tag filter applied; a store that is not SQL
    (a tracking server) is searched."""
    from types import SimpleNamespace

    from trainer.tracking.store import count_children, search_all

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = setup_experiment(uri, "counted")
    client = MlflowClient(uri)
    parent, other = (client.create_run(experiment).info.run_id for _ in range(2))
    kids = [client.create_run(experiment, tags={"mlflow.parentRunId": parent, "figures": f}).info.run_id
            for f in ("later", "later", "drawn", "later")]
    client.create_run(experiment, tags={"mlflow.parentRunId": other, "figures": "later"})
    client.delete_run(kids[3])
    searched = len(search_all(client, [experiment], f"tags.mlflow.parentRunId = '{parent}'"))
    assert count_children(client, experiment, parent) == searched == 3
    assert count_children(client, experiment, parent, ("figures", "later")) == 2
    assert count_children(client, experiment, parent, ("figures", "off")) == 0
    server = SimpleNamespace(search_runs=client.search_runs)  # no SQL store behind it: the search path
    assert count_children(server, experiment, parent) == 3
    assert count_children(server, experiment, parent, ("figures", "later")) == 2
