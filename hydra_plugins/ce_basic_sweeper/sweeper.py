"""Hydra's basic sweeper (every combination of the swept values, in the same order and batches) that runs every job
it can and says which did not finish.

- A job that fails (a diverging loss, a setting refused at run time, a bug) is recorded and the next one runs; Hydra's
  own sweeper stopped at the end of the batch with the first failure's traceback, and the basic launcher's jobs
  ended the whole sweep at the first setting error.
- At the end, the jobs that failed, were stopped or never ran are listed, each with the command that reruns it
  (trainer.sweep.outcome), and the sweep exits 2 (only setting errors) or 1; a signal lists them too, then exits as
  it would (128 + the signal).
- The jobs' overrides are recorded on the sweep's parent run (jobs.json), so that the jobs are known even after a
  kill -9 of this process (trainer.sweep.orphans lists those that never ran).
- Hydra composed every job's config before launching a batch to catch composition errors early: 0.05 to 0.1 s a
  job, minutes for thousands of jobs, before the first one started. The sweep's callback already composes each
  distinct swept value once (trainer.sweep.check), which finds the same errors.

Imported by Hydra on every command: nothing heavy at import time.
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


class CeBasicSweeper(BasicSweeper):
    def validate_batch_is_legal(self, batch: Any) -> None:
        """Nothing to do: SweepCallback composed each distinct value of the sweep before its first job."""

    def sweep(self, arguments: list[str]) -> Any:
        from trainer.sweep import outcome

        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        self.overrides = self.split_arguments(parser.parse_overrides(self._parse_config() + list(arguments)),
                                              self.max_batch_size or _batch_size(self.launcher))
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        jobs = outcome.jobs_of([job for batch in self.overrides for job in batch])
        uri, parent = _handed_over(self.config)
        if parent is not None:
            outcome.log_jobs(uri, parent, jobs)
        returns, first, launched = [], 0, time.time()
        try:
            while not self.is_done():
                batch = self.get_job_batch()
                launched = time.time()
                results = self.launcher.launch(batch, initial_job_idx=first)
                outcome.returned(jobs, first, results)  # each failed job logged its error as it failed
                first += len(batch)
                for r in results:  # a job's composed configs: not needed once its outcome is recorded
                    r.cfg = r.hydra_cfg = None
                returns.append(results)
        except BaseException as e:  # a signal, a launcher that failed: the jobs of this batch and the next are unknown
            refused = isinstance(e, SystemExit) and isinstance(e.code, str)  # a launcher's one-line refusal (sbatch)
            if not (refused and not first):  # refused before any job ran: its line says all, no job list to add
                _report(jobs, uri, parent, sweep_dir, unknown=set(range(first, len(jobs))), since=launched)
            raise
        if any(j.status != outcome.FINISHED for j in jobs):
            _report(jobs, uri, parent, sweep_dir, unknown=set())
            sys.exit(outcome.exit_code(jobs))  # SweepCallback's exit handler ends the parent run FAILED
        return returns


def _batch_size(launcher: Any) -> int | None:
    """Jobs handed to the launcher at once when hydra.sweeper.max_batch_size is null: all of them (a parallel
    launcher runs a batch at once), but SEQUENTIAL_BATCH for Hydra's basic launcher, which runs them one by one
    anyway and holds every job's result, composed configs included, until its batch ends (a 300-job study peaked at
    1,101 MB in one batch, 1,074 MB in batches of 50; what else grows, about 0.2 MB a job, is mostly the prepared
    data kept for later jobs of the same seed: docs/performance.md)."""
    from hydra._internal.core_plugins.basic_launcher import BasicLauncher

    return SEQUENTIAL_BATCH if isinstance(launcher, BasicLauncher) else None


SEQUENTIAL_BATCH = 50


def _handed_over(config: Any) -> tuple[str | None, str | None]:
    """The store and the parent run SweepCallback handed to the jobs (None, None without the callback)."""
    from trainer.sweep.callback import handed_over

    return handed_over(config, "tracking.uri"), handed_over(config, "tracking.parent_run_id")


def _report(jobs: list, uri: str | None, parent: str | None, sweep_dir: Path, unknown: set[int],
            since: float | None = None) -> None:
    """Print the jobs that did not finish, after asking the store about those whose launcher said nothing: the jobs
    in unknown, launched at or after the time since (s since 1970)."""
    from trainer.sweep import outcome

    if parent is not None and uri is not None:
        try:
            outcome.from_runs(jobs, _children(uri, parent, since), unknown)
        except Exception as e:  # noqa: BLE001 - the store may be what failed: list what the launcher said
            log.warning("could not read the sweep's runs (%s: %s)", type(e).__name__, e)
    text = outcome.report(jobs, parent or "", sweep_dir)
    if text:
        print(text, file=sys.stderr, flush=True)


def _children(uri: str, parent: str, since: float | None) -> list:
    """The sweep's child runs that did not finish, and those started since the time since (s since 1970, less
    CLOCK_SKEW_S for runs started on other hosts): the others' jobs finished, as their launcher said. A search
    builds each run whole (4 s for 2,000 runs): a signal at job 1,990 reads the last batch, not all 2,000."""
    from mlflow.tracking import MlflowClient

    from trainer.tracking.store import search_all

    client = MlflowClient(uri)
    experiment = client.get_run(parent).info.experiment_id
    mine = f"tags.mlflow.parentRunId = '{parent}'"
    runs = {r.info.run_id: r for r in search_all(client, [experiment], f"{mine} and attributes.status != 'FINISHED'")}
    if since is not None:
        started = int((since - CLOCK_SKEW_S) * 1000)
        runs.update((r.info.run_id, r) for r in search_all(client, [experiment],
                                                           f"{mine} and attributes.start_time >= {started}"))
    return list(runs.values())


CLOCK_SKEW_S = 600  # how far a worker host's clock (which stamps its run's start) may lag this one's
