"""The sweep's side in MLflow: the store, the experiment and one parent run created once before the jobs of a
multirun start, handed to every job through its config, and every run the sweep owns ended when it ends.

Hydra builds this callback for every command (conf/config.yaml): this module imports no torch, mlflow or
matplotlib at import time.
"""
from __future__ import annotations

import atexit
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, read_write

from trainer.errors import UserError
from trainer.runtime import signals
from trainer.runtime.writable import require_folder
from trainer.sweep.check import check_sweep
from trainer.sweep.job import BASIC_LAUNCHER, BASIC_SWEEPERS
from trainer.sweep.orphans import SWEEP_DIR, end_orphans
from trainer.tracking.masking import mask_overrides
from trainer.tracking.params import MAX_TAG_CHARS, bounded
from trainer.tracking.process import this_process
from trainer.tracking.provenance import script, stopped_run_command
from trainer.tracking.store import (default_uri, drop_inherited_run_id, refresh_statistics, resolve_uri,
                                    setup_experiment, ui_command)
from trainer.tracking.tags import PROCESS
from trainer.words import counted

log = logging.getLogger(__name__)

DIVERGED_SHOWN = 10  # diverged runs named at the end of a sweep
UI_RUNS = "#/experiments/{}?workflowType=machine_learning"  # MLflow 3.17 opens experiments on GenAI pages otherwise


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
    _in_process = False  # set by _start: the jobs run in the sweep's own process (Hydra's basic launcher)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A single run's output folder must be writable: Hydra creates it next, with a PermissionError's traceback."""
        try:
            require_folder(config.hydra.run.dir, "hydra.run.dir")
        except UserError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check the sweep's folder, values and store before any job: a user error ends the sweep with one `error:`
        line and exit code 2, as it ends a single run, with no parent run created."""

        try:
            require_folder(config.hydra.sweep.dir, "hydra.sweep.dir")
            check_sweep(config)
            self._start(config)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)
        except Exception:  # Hydra would turn it into a warning and run the jobs without their parent run
            log.exception("the sweep could not start")
            sys.exit(1)

    def _start(self, config: DictConfig) -> None:
        from mlflow.tracking import MlflowClient

        drop_inherited_run_id()
        uri = resolve_uri(config.tracking.uri)
        experiment_id = setup_experiment(uri, config.tracking.experiment)
        end_orphans(uri, [experiment_id])
        overrides = mask_overrides(" ".join(config.hydra.overrides.task))
        run = MlflowClient(uri).create_run(experiment_id, run_name=bounded(f"sweep {overrides}".strip()),
                                           tags={"sweep": "parent", "sweep.overrides": bounded(overrides, MAX_TAG_CHARS),
                                                 PROCESS: this_process(),
                                                 SWEEP_DIR: str(Path(config.hydra.sweep.dir).resolve())})
        self._uri, self._run_id, self._experiment_id = uri, run.info.run_id, experiment_id
        # jobs in a launcher's worker processes: a stopped one may end its run KILLED where its output is not seen
        self._workers = config.hydra.launcher.get("_target_") != BASIC_LAUNCHER
        self._in_process = not self._workers  # the jobs run in this process, between stretches of Hydra's code
        if self._in_process:  # until the first job starts (trainer.runtime.signals.hold)
            signals.hold()
        # the harness's sweeper lists every job that did not finish, the stopped ones with their resume command
        self._listed = config.hydra.sweeper.get("_target_") == BASIC_SWEEPERS[1]
        # Hydra skips on_multirun_end when a job fails or a signal stops the sweep: the runs must not stay RUNNING.
        atexit.register(self._end, "FAILED")
        with read_write(config.hydra.overrides):
            config.hydra.overrides.hydra.extend([override("tracking.uri", uri),
                                                 override("tracking.parent_run_id", run.info.run_id)])
        log.info("sweep parent run %s in experiment %r (store %s)", run.info.run_id, config.tracking.experiment, uri)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A signal held since the last job (trainer.runtime.signals.hold) stops the sweep here, before this job."""
        if self._in_process:
            signals.release()

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Until the next job starts, Hydra composes its config: a signal is held, not raised inside OmegaConf."""
        if self._in_process:
            signals.hold()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._end("FINISHED")

    def _end(self, status: str) -> None:
        """End the parent run (and any child left RUNNING); name the compare command when a run finished. Only the
        children that did not finish are read back (a search builds each run whole: 4 s for 2,000 runs); the others
        are counted."""
        from mlflow.tracking import MlflowClient

        from trainer.evaluate import deferred
        from trainer.tracking.store import count_children, search_all
        from trainer.train import divergence

        client = MlflowClient(self._uri)
        parent = client.get_run(self._run_id)
        if parent.info.status != "RUNNING":
            return
        experiment = parent.info.experiment_id
        unfinished = search_all(client, [experiment], f"tags.mlflow.parentRunId = '{self._run_id}' "
                                                      "and attributes.status != 'FINISHED'")
        stopped = []
        for child in unfinished:
            if child.info.status == "RUNNING":  # its process was killed before it could end the run
                client.set_tag(child.info.run_id, "error", "the sweep stopped while this run was running")
                client.set_terminated(child.info.run_id, "KILLED")
                stopped.append(child)
            elif child.info.status == "KILLED" and self._workers:
                stopped.append(child)  # its worker ended it (Ctrl-C reaches the whole process group)
        commands = [] if self._listed else [c for c in map(stopped_run_command, stopped) if c]
        if commands:  # a launcher's worker was stopped with its job: it could not print this itself
            print(f"{counted(len(commands), 'run')} of the sweep stopped (KILLED); continue each with:\n  "
                  + "\n  ".join(commands), file=sys.stderr, flush=True)
        if unfinished or status != "FINISHED":
            failed = ", ".join(c.info.run_name for c in unfinished) or "sweep stopped"
            client.set_tag(self._run_id, "error", bounded(f"runs not finished: {failed}", MAX_TAG_CHARS))
            status = "FAILED"
        runs = count_children(client, experiment, self._run_id)
        client.set_tag(self._run_id, "sweep.runs", str(runs))
        client.set_terminated(self._run_id, status)
        refresh_statistics(self._uri)  # the store grew: keep its queries on their indexes
        if runs > len(unfinished):
            print(sweep_hint(self._uri, self._run_id, self._experiment_id), flush=True)
        diverged = search_all(client, [experiment], f"tags.mlflow.parentRunId = '{self._run_id}' "
                                                    f"and tags.{divergence.TAG} != ''")
        if diverged:  # FINISHED, with chance-level scores: they would pull their group's mean down unsaid
            names = ", ".join(r.info.run_name for r in diverged[:DIVERGED_SHOWN])
            more = f" and {len(diverged) - DIVERGED_SHOWN} more" if len(diverged) > DIVERGED_SHOWN else ""
            print(f"warning: {counted(len(diverged), 'run')} of the sweep finished but diverged in training (tag "
                  f"{divergence.TAG}; chance-level scores): {names}{more}. Lower optim.lr or set trainer.grad_clip "
                  f"for {'it' if len(diverged) == 1 else 'them'}.", file=sys.stderr, flush=True)
        waiting = count_children(client, experiment, self._run_id, (deferred.TAG, deferred.LATER))
        if waiting:  # eval.figures=later, or a signal stopped their drawing
            store = "" if self._uri == default_uri() else f" --tracking-uri {self._uri}"
            print(f"The figures of {counted(waiting, 'run')} wait to be drawn: python {script('scripts/figures.py')} "
                  f"--parent {self._run_id}{store}", flush=True)

def sweep_hint(uri: str, parent_run_id: str, experiment_id: str) -> str:
    """What the end of a sweep prints, once: the compare command for this sweep and where the UI shows its runs."""
    store = "" if uri == default_uri() else f" --tracking-uri {uri}"
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    ui = "open" if uri.startswith(("http://", "https://")) else f"{ui_command(uri)}, then open"
    return (f"Compare this sweep (paired tests, report): python {script('scripts/compare.py')} --parent "
            f"{parent_run_id}{store}\n"
            f"Its runs in the UI: {ui} {base}/{UI_RUNS.format(experiment_id)}")
