"""Runs left RUNNING by a process that can no longer end them (kill -9, the OOM killer, a lost node): found by the
`process` tag each run and each sweep's parent records (pid@host/start), and ended KILLED.

Only this machine's processes can be checked: a run whose process is alive, or ran on another host, is left as it
is unless the user names it (`python scripts/orphans.py --run ID`, or `--host NAME` once that host is known to be
gone). A single run, a sweep's start and compare call end_orphans() on the experiment they open; the command
scripts/orphans.py looks at every experiment of the store. An ended sweep's parent lists its jobs that did not
finish, each with the command that reruns it (trainer.sweep.outcome), from the jobs it recorded.

mlflow is imported inside the functions: the sweep's callback, which Hydra builds for every command, uses this module.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from trainer.errors import command_status
from trainer.sweep import outcome
from trainer.tracking.process import Owner
from trainer.tracking.provenance import stopped_run_command
from trainer.tracking.tags import PROCESS

log = logging.getLogger(__name__)

SWEEP_DIR = "sweep.dir"  # tag of a sweep's parent run: its folder (hydra.sweep.dir), where rerun.sh is written


def find(client: Any, experiment_ids: list[str], hosts: Iterable[str] = (), run_ids: Iterable[str] = ()) -> list:
    """The RUNNING runs of experiment_ids whose process is gone from this host, or ran on one of hosts, or whose id
    is in run_ids (the user's word that they are gone), as MLflow Runs."""
    from trainer.tracking.store import search_all

    hosts, run_ids = set(hosts), set(run_ids)
    found = []
    for run in search_all(client, experiment_ids, "attributes.status = 'RUNNING'"):
        owner = Owner.parse(run.data.tags.get(PROCESS, ""))
        if (run.info.run_id in run_ids or (owner.host and owner.host in hosts)
                or (owner.here and not owner.alive())):
            found.append(run)
    return found


def end(client: Any, runs: Sequence[Any]) -> list[str]:
    """End runs KILLED, each with an `error` tag saying why; return what to tell the user: a line per run with the
    command that continues it, and for a sweep's parent the list of its jobs that did not finish."""
    said = []
    for run in runs:
        owner = Owner.parse(run.data.tags.get(PROCESS, ""))
        why = (f"its process ({owner}) is gone" if owner.pid is not None else "it was named as gone") + \
            " (kill -9, a lost machine?)"
        client.set_tag(run.info.run_id, "error", f"ended KILLED by a later command: {why}")
        client.set_terminated(run.info.run_id, "KILLED")
        line = f"run {run.info.run_id} ({run.info.run_name!r}) was RUNNING, but {why}: ended KILLED"
        command = None if run.data.tags.get("sweep") == "parent" else stopped_run_command(run)
        said.append(f"{line}; continue it with:\n  {command}" if command else line)
    for run in runs:
        if run.data.tags.get("sweep") == "parent":
            listed = _sweep_report(client, run)
            if listed:
                said.append(listed)
    return said


def _sweep_report(client: Any, parent: Any) -> str | None:
    """The jobs of a killed sweep that did not finish, from the jobs its parent recorded and its child runs."""
    from trainer.tracking.store import search_all

    jobs = outcome.logged_jobs(client, parent.info.run_id)
    if jobs is None:
        return None
    children = search_all(client, [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    outcome.from_runs(jobs, children)
    folder = parent.data.tags.get(SWEEP_DIR)
    return outcome.report(jobs, parent.info.run_id, Path(folder) if folder and Path(folder).is_dir() else None)


def end_orphans(uri: str, experiment_ids: list[str] | None = None) -> None:
    """End KILLED the runs of the experiments (default: all) a process left RUNNING on this host (find), saying so in
    the log; a failure here is a warning, never the end of the command that opened the store."""
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(uri)
        ids = experiment_ids if experiment_ids is not None else [e.experiment_id for e in client.search_experiments()]
        for line in end(client, find(client, ids)):
            log.warning("%s", line)
    except Exception as e:  # noqa: BLE001 - tidying up after another process must not stop this one
        log.warning("could not look for runs left RUNNING by a killed process (%s: %s)", type(e).__name__, e)


def main(argv: list[str] | None = None) -> int:
    """scripts/orphans.py: end KILLED the runs left RUNNING by a process that is gone; 2 with one error line."""
    p = argparse.ArgumentParser(description="End KILLED the MLflow runs left RUNNING by a process that is gone "
                                "(kill -9, a lost machine): those of this host whose process is not alive, and "
                                "those you name. Lists the jobs of an ended sweep that did not finish.")
    p.add_argument("--tracking-uri", default=None, help="the store (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    p.add_argument("--experiment", default=None, help="only this experiment (default: every experiment)")
    p.add_argument("--host", action="append", default=[], help="also end the RUNNING runs trained on this host: "
                   "say so only once you know its processes are gone (repeatable)")
    p.add_argument("--run", action="append", default=[], help="also end this RUNNING run, wherever it ran "
                   "(repeatable)")
    p.add_argument("--dry-run", action="store_true", help="list them, change nothing")
    a = p.parse_args(argv)
    return command_status(lambda: _main(a))


def _main(a: argparse.Namespace) -> int:
    from trainer.tracking.store import experiment_ids, opened

    uri, client = opened(a.tracking_uri)
    ids = experiment_ids(client, uri, a.experiment)
    runs = find(client, ids, a.host, a.run) if ids else []
    missing = set(a.run) - {r.info.run_id for r in runs}
    for run_id in sorted(missing):
        print(f"run {run_id} is not a RUNNING run of {uri}: nothing to end", file=sys.stderr)
    if not runs:
        print("no RUNNING run whose process is gone")
        return 0
    if a.dry_run:
        for r in runs:
            print(f"would end KILLED: run {r.info.run_id} ({r.info.run_name!r}), process "
                  f"{Owner.parse(r.data.tags.get(PROCESS, ''))}")
        return 0
    for line in end(client, runs):
        print(line)
    return 0
