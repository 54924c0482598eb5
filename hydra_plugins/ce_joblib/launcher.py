"""Hydra's joblib launcher, plus: a job that a setting stopped (trainer.config.UserError in its worker) ends the
sweep with one `error:` line and exit code 2, as a job of the basic launcher does, not with Hydra's traceback.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher as _JoblibLauncher
except ImportError:  # no cluster extra: Hydra imports every hydra_plugins module at start-up and would warn each run
    _JoblibLauncher = object  # then this launcher is no plugin, and hydra/launcher=joblib asks for the extra


class JoblibLauncher(_JoblibLauncher):
    """hydra_joblib_launcher's JoblibLauncher that reports a job's setting error as one line."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        from trainer.sweep_check import stop_on_user_error

        results = super().launch(job_overrides, initial_job_idx)
        stop_on_user_error(job_overrides, results)
        return results
