"""What became of each job of a sweep, and the list of those that did not finish.

A sweep runs every job it can: a job that fails (a diverging loss, a setting refused at run time) does not stop the
others (hydra_plugins/ce_basic_sweeper). When the sweep ends, or a signal stops it, or a later command finds it
killed (trainer.sweep.orphans), the jobs that failed, were stopped or never ran are listed, each with the command
that reruns it (or continues it, for a stopped run), also written to rerun.sh in the sweep's folder.

A job is known by its number (hydra.job.num, from 0 in the order of the sweep): its child run carries it as the tag
`sweep.job`, and the sweep's parent run holds the list of every job's overrides (the artifact jobs.json), so that the
jobs are known even after the sweep's process was killed.

mlflow is imported inside the functions: the sweeper that uses this module is imported by Hydra on every command.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.errors import UserError
from trainer.tracking.artifacts import download
from trainer.tracking.provenance import resume_command, train_command
from trainer.tracking.tags import SWEEP_JOB
from trainer.words import counted

log = logging.getLogger(__name__)

JOBS_ARTIFACT = "jobs.json"  # on the parent run: [[override, ...], ...], the overrides of job 0, 1, ...
RERUN_FILE = "rerun.sh"  # in the sweep's folder: the command of each job that did not finish
FINISHED, FAILED, STOPPED, NOT_RUN = "finished", "failed", "stopped", "never ran"
SHOWN = 10  # jobs listed on the terminal; every one is in rerun.sh
MAX_LABEL, MAX_ERROR = 120, 300  # characters of a job's overrides and of its error shown in the list
MAX_SHOWN_COMMAND = 1000  # characters of a command shown on the terminal (rerun.sh has every one whole)


@dataclass
class Job:
    """One job of a sweep and what became of it."""

    num: int
    overrides: list[str]
    status: str = NOT_RUN
    error: str = ""  # a failed job's error (its first line)
    user_error: bool = False  # the error is one the user fixes by a setting (trainer.errors.UserError)
    run_id: str | None = None

    @property
    def label(self) -> str:
        text = " ".join(self.overrides)
        return text if len(text) <= MAX_LABEL else text[:MAX_LABEL - 3] + "..."


def jobs_of(overrides: Sequence[Sequence[str]]) -> list[Job]:
    """The jobs of a sweep, numbered in order, from each job's overrides."""
    return [Job(num, list(o)) for num, o in enumerate(overrides)]


def log_jobs(uri: str, parent_run_id: str, jobs: list[Job]) -> None:
    """Record every job's overrides on the parent run (jobs.json), for a later command to list those that never ran
    after the sweep's process was killed. Each job holds one override per axis of the sweep, in the same order:
    an axis every job shares is written once ({"template": [shared or null], "jobs": [[the others], ...]}), so that a
    40 KB setting is not written once per job."""
    from mlflow.tracking import MlflowClient

    first = jobs[0].overrides if jobs else []
    template = [o if all(j.overrides[i] == o for j in jobs) else None for i, o in enumerate(first)]
    varying = [i for i, o in enumerate(template) if o is None]
    text = json.dumps({"template": template, "jobs": [[j.overrides[i] for i in varying] for j in jobs]})
    MlflowClient(uri).log_text(parent_run_id, text, JOBS_ARTIFACT)


def logged_jobs(client: Any, parent_run_id: str) -> list[Job] | None:
    """The jobs a parent run recorded (log_jobs); None if it recorded none (a search's parent, an older sweep)."""
    import tempfile

    try:
        with tempfile.TemporaryDirectory() as tmp:
            logged = json.loads(download(client, parent_run_id, JOBS_ARTIFACT, tmp).read_text())
    except Exception:  # noqa: BLE001 - no such artifact: the stores raise their own errors
        return None
    template = logged["template"]
    return jobs_of([_filled(template, values) for values in logged["jobs"]])


def _filled(template: list[str | None], values: list[str]) -> list[str]:
    """A job's overrides: the template's shared ones, its own values in the template's gaps."""
    own = iter(values)
    return [o if o is not None else next(own) for o in template]


def returned(jobs: list[Job], first: int, results: Sequence[Any]) -> None:
    """Mark the jobs of a launched batch (numbers first, first + 1, ...) from the launcher's JobReturns."""
    from hydra.core.utils import JobStatus

    for job, result in zip(jobs[first:], results):
        value = getattr(result, "_return_value", None)  # JobReturn.return_value would raise a job's error
        if result.status == JobStatus.COMPLETED:
            job.status, job.run_id = FINISHED, getattr(value, "run_id", None)
        else:
            job.status, job.user_error = FAILED, isinstance(value, UserError)
            job.error = f"{type(value).__name__}: {value}" if not job.user_error else str(value)


def from_runs(jobs: list[Job], runs: Sequence[Any], unknown: set[int] | None = None) -> None:
    """Fill in what the sweep's child runs say (their `sweep.job` tag): the run id of every job, and the status of
    the jobs in unknown (all when None), whose launcher said nothing (a signal, a killed process): a RUNNING or
    KILLED run is a stopped job, a job without a run never ran."""
    by_num = {}
    for r in sorted(runs, key=lambda r: r.info.start_time or 0):  # a job's latest run wins
        num = r.data.tags.get(SWEEP_JOB)
        if num is not None and num.isdigit():
            by_num[int(num)] = r
    for job in jobs:
        run = by_num.get(job.num)
        if run is None:
            continue
        job.run_id = run.info.run_id
        status = run.info.status
        if status in ("RUNNING", "KILLED") and (unknown is None or job.num in unknown or job.status == FAILED):
            job.status = STOPPED  # a worker's job stopped by a signal returns a failure; its run says KILLED
        elif unknown is None or job.num in unknown:
            job.status = {"FINISHED": FINISHED, "FAILED": FAILED}.get(status, STOPPED)
            if job.status == FAILED and not job.error:
                job.error = run.data.tags.get("error", "")


def rerun(job: Job, parent_run_id: str) -> str:
    """The command that reruns a job as a single run in the same study (under the sweep's parent run), or continues
    a stopped one from its checkpoint."""
    if job.status == STOPPED and job.run_id:
        return resume_command(job.overrides, job.run_id)
    # an experiment preset may set hydra.mode=MULTIRUN: this one job runs as a single run
    mode = ["hydra.mode=RUN"] if any(o.startswith(("experiment=", "+experiment=")) for o in job.overrides) else []
    parent = [f"tracking.parent_run_id={parent_run_id}"] if parent_run_id else []
    return train_command([*job.overrides, *mode, *parent])


def report(jobs: list[Job], parent_run_id: str, sweep_dir: Path | None) -> str | None:
    """The list of the jobs that did not finish (None when all did), the first SHOWN with their command, every one
    in sweep_dir/rerun.sh (written here)."""
    left = [j for j in jobs if j.status != FINISHED]
    if not left:
        return None
    counts = {s: sum(j.status == s for j in left) for s in (FAILED, STOPPED, NOT_RUN)}
    what = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    where = ""
    if sweep_dir is not None:
        try:
            path = sweep_dir / RERUN_FILE
            path.write_text("".join(f"# job {j.num}: {j.status}{': ' + _first_line(j.error) if j.error else ''}\n"
                                    f"{rerun(j, parent_run_id)}\n" for j in left))
            where = f"; every command is in {path}"
        except OSError as e:  # the list on the terminal is what matters
            log.warning("could not write %s: %s", sweep_dir / RERUN_FILE, e)
    lines = [f"error: {len(left)} of {counted(len(jobs), 'job')} of the sweep did not finish ({what}); rerun each "
             f"with the command below it{where}:"]
    for j in left[:SHOWN]:
        why = f": {_cut(_first_line(j.error), MAX_ERROR)}" if j.error else ""
        command = rerun(j, parent_run_id)
        if len(command) > MAX_SHOWN_COMMAND:
            command = f"{command[:MAX_SHOWN_COMMAND]}... ({len(command):,} characters: see {RERUN_FILE})"
        lines += [f"  job {j.num} ({j.status}) {j.label}{why}", f"    {command}"]
    if len(left) > SHOWN:
        lines.append(f"  ... and {len(left) - SHOWN} more{where and ' (' + where[2:] + ')'}")
    return "\n".join(lines)


def exit_code(jobs: list[Job]) -> int:
    """0 when every job finished; 2 when the only ones that did not are jobs a setting stopped (as a single run's
    setting error exits); 1 otherwise."""
    left = [j for j in jobs if j.status != FINISHED]
    if not left:
        return 0
    return 2 if all(j.status == FAILED and j.user_error for j in left) else 1


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 3] + "..."
