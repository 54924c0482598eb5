"""scripts/figures.py: draw the figures of runs that deferred them (eval.figures=later, or a sweep stopped while its
figures were being drawn), from what each run logged (trainer.evaluate.deferred), into the run's output folder and
its MLflow record, as if they had been drawn when it ended."""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from trainer.errors import UserError, command_status
from trainer.words import counted


def main(argv: list[str] | None = None) -> int:
    """The command: draw, log, say where; exit 2 with one error line for a bad store, run or selection."""
    p = argparse.ArgumentParser(description="Draw the figures of runs that deferred them (eval.figures=later).")
    p.add_argument("runs", nargs="*", metavar="RUN_ID", help="these runs (default: every run whose figures wait)")
    p.add_argument("--parent", metavar="RUN_ID", help="the runs of this sweep whose figures wait")
    p.add_argument("--experiment", metavar="NAME", help="the runs of this experiment whose figures wait")
    p.add_argument("--tracking-uri", default=None, help="the store (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    a = p.parse_args(argv)
    return command_status(lambda: _main(a))


def _main(a: argparse.Namespace) -> int:
    from trainer.evaluate import deferred
    from trainer.tracking.artifacts import download
    from trainer.tracking.store import opened

    uri, client = opened(a.tracking_uri)
    runs = _selected(client, uri, a)
    if not runs:
        print("no run's figures wait to be drawn (runs with eval.figures=later have the tag figures=later)")
        return 0
    start, failed = time.perf_counter(), 0
    for i, run in enumerate(runs, 1):
        if deferred.ARTIFACT not in {f.path for f in client.list_artifacts(run.info.run_id)}:
            print(f"run {run.info.run_id}: nothing to draw from (no {deferred.ARTIFACT}: its figures were drawn "
                  f"when it ended, or eval.figures=off)", file=sys.stderr)
            failed += 1
            continue
        folder = _output_folder(run)
        with tempfile.TemporaryDirectory() as tmp:
            logged = download(client, run.info.run_id, deferred.ARTIFACT, tmp)
            seconds = deferred.draw_logged(client, uri, run.info.run_id, logged, folder)
        print(f"[{i}/{len(runs)}] run {run.info.run_id} ({run.info.run_name}): figures drawn in {seconds:.1f} s, "
              f"in {folder / 'figures'} and the run's figures/", flush=True)
    print(f"drew the figures of {counted(len(runs) - failed, 'run')} in {time.perf_counter() - start:.0f} s")
    return 1 if failed else 0


def _selected(client: Any, uri: str, a: argparse.Namespace) -> list:
    """The runs named, or those of --parent, --experiment or the whole store whose figures wait (figures=later)."""
    from mlflow.exceptions import MlflowException

    from trainer.evaluate import deferred
    from trainer.tracking.store import experiment_ids, search_all

    if a.runs:
        try:
            return [client.get_run(r) for r in a.runs]
        except MlflowException as e:
            raise UserError(f"{e.message.splitlines()[0]}: give the ids of runs in {uri}.") from e
    waiting = f"tags.{deferred.TAG} = '{deferred.LATER}'"
    if a.parent:
        try:
            experiment = client.get_run(a.parent).info.experiment_id
        except MlflowException as e:
            raise UserError(f"--parent {a.parent}: no run with that id in {uri}.") from e
        return search_all(client, [experiment], f"tags.mlflow.parentRunId = '{a.parent}' and {waiting}")
    ids = experiment_ids(client, uri, a.experiment)
    return search_all(client, ids, waiting) if ids else []


def _output_folder(run: Any) -> Path:
    """The run's own output folder when it is on this machine (beside its checkpoint), else outputs/runs/<id>."""
    from trainer.tracking.tags import CHECKPOINT

    ckpt = run.data.tags.get(CHECKPOINT)
    if ckpt and Path(ckpt).parent.is_dir():
        return Path(ckpt).parent
    return Path.cwd() / "outputs" / "runs" / run.info.run_id
