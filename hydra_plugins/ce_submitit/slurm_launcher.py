"""Hydra's submitit Slurm launcher, plus two things it leaves out.

- A sweep stopped early (SIGINT or SIGTERM in the launching process, or a job failed) cancels the Slurm jobs it
  submitted (scancel) and waits until Slurm has them gone, before the sweep's atexit handler
  (trainer.sweep.callback.SweepCallback) ends the runs still RUNNING KILLED. Without it the jobs trained on, logging
  into runs already ended KILLED, and finished FINISHED under a FAILED parent.
- sbatch refusing the jobs (a memory, partition or CPU request the cluster cannot meet) is one `error:` line
  naming the hydra.launcher setting, after sbatch's own lines, instead of a traceback; the parent run ends FAILED.

The job ids come from submitit's watcher (SlurmJob.watcher), where every Slurm job this process submitted is
registered: the launcher keeps its Job objects in a local variable.
"""
from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Sequence
from typing import Any

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _SubmititSlurmLauncher
except ImportError:  # no cluster extra: Hydra imports every hydra_plugins module at start-up and would warn each run
    _SubmititSlurmLauncher = object  # then this launcher is no plugin, and hydra/launcher=submitit_* asks for the extra

log = logging.getLogger(__name__)
CANCEL_WAIT_S = 30.0
# what sbatch says -> the settings that ask for it
_SETTINGS = (("memory", ("mem_gb", "mem_per_cpu", "mem_per_gpu")), ("partition", ("partition",)),
             ("cpu", ("cpus_per_task", "cpus_per_gpu")), ("gres", ("gpus_per_node", "gpus_per_task", "gres")),
             ("gpu", ("gpus_per_node", "gpus_per_task", "gres")), ("time limit", ("timeout_min",)),
             ("account", ("account",)), ("qos", ("qos",)), ("constraint", ("constraint",)),
             ("node", ("nodes", "tasks_per_node", "constraint", "exclude")))


class SlurmLauncher(_SubmititSlurmLauncher):
    """hydra_submitit_launcher's SlurmLauncher that cancels its jobs when the sweep stops early."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        import submitit

        watcher = submitit.SlurmJob.watcher
        before = set(watcher._registered)
        try:
            results = super().launch(job_overrides, initial_job_idx)
        except BaseException as e:
            cancel(sorted(set(watcher._registered) - before - watcher._finished))
            refusal = sbatch_refusal(e)
            if refusal is not None:
                # SystemExit passes Hydra's error report (a traceback, or a footer about HYDRA_FULL_ERROR): the
                # message alone goes to stderr, exit status 1, and the sweep's atexit handler ends the parent FAILED
                raise SystemExit(refusal_message(refusal, self.params)) from None
            raise
        return results


def cancel(job_ids: list[str], wait_s: float = CANCEL_WAIT_S) -> None:
    """scancel job_ids, then wait up to wait_s until squeue lists none of them (each job ends its run KILLED on
    Slurm's SIGTERM); jobs already gone are fine."""
    if not job_ids:
        return
    log.warning("sweep stopped: cancelling its Slurm jobs %s", " ".join(job_ids))
    subprocess.run(["scancel", *job_ids], capture_output=True, text=True, check=False)
    left, deadline = set(job_ids), time.monotonic() + wait_s
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return
        if out.returncode != 0:
            return
        left &= set(out.stdout.split())  # -r: array tasks one a line (12_0), pending ones too
    if left:
        log.warning("Slurm jobs %s still in the queue %.0f s after scancel", " ".join(sorted(left)), wait_s)


def sbatch_refusal(e: BaseException) -> str | None:
    """What sbatch said when it refused a submission (submitit's FailedJobError from the sbatch command), else None."""
    cause = e.__cause__
    if isinstance(cause, subprocess.CalledProcessError) and cause.cmd and str(cause.cmd[0]).endswith("sbatch"):
        lines = [ln.strip() for ln in str(cause.stderr or e).splitlines() if ln.strip()]
        return "; ".join(ln.removeprefix("sbatch: error: ") for ln in lines) or f"exit status {cause.returncode}"
    return None


def refusal_message(refusal: str, params: dict[str, Any]) -> str:
    """One line: what Slurm said, the hydra.launcher settings it is about (with their values), what to do."""
    low = refusal.lower()
    keys = next((keys for word, keys in _SETTINGS if word in low), ())
    named = ", ".join(f"hydra.launcher.{k}={_value(params.get(k))}" for k in keys if params.get(k) is not None)
    if not named:
        named = ", ".join(f"hydra.launcher.{k}" for k in keys) or "the hydra.launcher settings"
    return (f"error: Slurm refused the sweep's jobs (sbatch: {refusal}). Check {named} against the cluster "
            "(sinfo -o '%P %c %m %G'); null takes the cluster's default.")


def _value(v: Any) -> str:
    return "null" if v is None else str(v)
