"""Hydra's joblib launcher, whose workers do not print Hydra's five-line deprecation warning about the preset's name
(train.py silences it in the sweep's own process; a worker composes its job's config before any of our code runs, so
it is told through PYTHONWARNINGS, which the workers inherit). A job that fails in a worker is the sweeper's to
list (hydra_plugins/ce_basic_sweeper): the batch's other jobs finish.
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
    """hydra_joblib_launcher's JoblibLauncher whose workers keep Hydra's preset warning to themselves."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        before = os.environ.get("PYTHONWARNINGS")
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, (before, PRESET_WARNING)))  # for the workers it starts
        try:
            results = super().launch(job_overrides, initial_job_idx)
        finally:
            if before is None:
                os.environ.pop("PYTHONWARNINGS", None)
            else:
                os.environ["PYTHONWARNINGS"] = before
        return results
