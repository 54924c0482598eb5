"""Hydra's joblib launcher, plus: a job that a setting stopped (trainer.config.UserError in its worker) ends the
sweep with one `error:` line and exit code 2, as a job of the basic launcher does, not with Hydra's traceback;
and its workers do not print Hydra's five-line deprecation warning about the preset's name (train.py silences it
in the sweep's own process; a worker composes its job's config before any of our code runs, so it is told
through PYTHONWARNINGS, which the workers inherit).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

try:
    from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher as _JoblibLauncher
except ImportError:  # no cluster extra: Hydra imports every hydra_plugins module at start-up and would warn each run
    _JoblibLauncher = object  # then this launcher is no plugin, and hydra/launcher=joblib asks for the extra


# Python's -W syntax (action:message:category:module). The message cannot be matched (its text starts with a
# newline, which -W strips); Hydra attributes it to the worker's entry frame, multiprocessing.process, where
# nothing else warns.
PRESET_WARNING = "ignore::UserWarning:multiprocessing.process"


class JoblibLauncher(_JoblibLauncher):
    """hydra_joblib_launcher's JoblibLauncher that reports a job's setting error as one line."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        from trainer.sweep.check import stop_on_user_error

        before = os.environ.get("PYTHONWARNINGS")
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, (before, PRESET_WARNING)))  # for the workers it starts
        try:
            results = super().launch(job_overrides, initial_job_idx)
        finally:
            if before is None:
                os.environ.pop("PYTHONWARNINGS", None)
            else:
                os.environ["PYTHONWARNINGS"] = before
        stop_on_user_error(job_overrides, results)
        return results
