"""Hydra's submitit local launcher, plus: a sweep stopped early (SIGINT, SIGTERM, a failed job) stops its job
processes (without it they outlived the launching process and trained on into runs already ended KILLED). A job
that fails is the sweeper's to list (hydra_plugins/ce_basic_sweeper).

submitit starts each job under a controller process (submitit.local._local) that forwards SIGTERM to its task;
the launcher keeps the Job objects in a local variable, so the controllers are recorded as they start.
"""
from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from typing import Any

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher as _SubmititLocalLauncher
except ImportError:  # no cluster extra: Hydra imports every hydra_plugins module at start-up and would warn each run
    _SubmititLocalLauncher = object  # then this launcher is no plugin, and hydra/launcher=submitit_* asks for the extra

STOP_WAIT_S = 30.0


class LocalLauncher(_SubmititLocalLauncher):
    """hydra_submitit_launcher's LocalLauncher that stops its job processes when the sweep stops early."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        import submitit.local.local as local

        started: list[Any] = []
        original = local.start_controller

        def recording(*args: Any, **kwargs: Any) -> Any:
            process = original(*args, **kwargs)
            started.append(process)
            return process

        local.start_controller = recording
        try:
            results = super().launch(job_overrides, initial_job_idx)
        except BaseException:
            stop(started)
            raise
        finally:
            local.start_controller = original
        return results


def stop(processes: list[Any], wait_s: float = STOP_WAIT_S) -> None:
    """SIGTERM each controller still running (it forwards the signal to its job, which ends its run KILLED), wait
    up to wait_s, then SIGKILL what is left."""
    alive = [p for p in processes if p.poll() is None]
    for p in alive:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while any(p.poll() is None for p in alive) and time.monotonic() < deadline:
        time.sleep(0.2)
    for p in alive:
        if p.poll() is None:
            p.kill()
