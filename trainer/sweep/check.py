"""Check every value of a basic sweep before its first job starts, as a single run checks its own config.

Without it a bad value (seed=0,-1) or a mistyped key fails its jobs one by one, after the good ones trained, and
Hydra reports each with a traceback. Each swept value is composed once beside the first value of every other
axis (the sum of the axes' lengths, not their product: every check in trainer.config reads one key or one group)
and validated by trainer.config.validate.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig

from trainer.config import validate
from trainer.errors import UserError
from trainer.sweep.job import BASIC_SWEEPER


def job_axes(config: DictConfig) -> OrderedDict[str, list[str]]:
    """{key: ["key=value", ...]} of a basic sweep: the sweeper's params (a preset's) then the command line's, as
    hydra's BasicSweeper.split_arguments builds them; a key given twice keeps the later list."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    axes: OrderedDict[str, list[str]] = OrderedDict()
    for o in OverridesParser.create().parse_overrides(params + list(config.hydra.overrides.task)):
        key = o.get_key_element()
        if o.is_sweep_override():
            if not o.is_discrete_sweep():
                return OrderedDict()  # interval/range sweeps belong to another sweeper, which checks them itself
            axes[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
        else:
            axes[key] = [f"{key}={o.get_value_element_as_str()}"]
    return axes


def check_plugins(config: DictConfig) -> None:
    """UserError when the sweep's launcher or sweeper class is not installed: the presets in conf/hydra/ compose
    without their plugin package, and Hydra would fail after the sweep started, with a traceback."""
    import importlib

    from hydra.plugins.launcher import Launcher
    from hydra.plugins.sweeper import Sweeper

    for group, base in (("launcher", Launcher), ("sweeper", Sweeper)):
        target = str(config.hydra[group].get("_target_", ""))
        module, _, name = target.rpartition(".")
        try:  # Hydra imports it next anyway
            cls = getattr(importlib.import_module(module), name, None) if module else None
        except ImportError:  # the plugin package, or what it needs, is missing
            cls = None
        found = isinstance(cls, type) and issubclass(cls, base)  # hydra_plugins/ce_* stand in without their extra
        if not found:
            extra = next((e for k, e in EXTRAS.items() if k in target), None)
            how = (f'install the {extra} extra: pip install -e ".[{extra}]"' if extra else
                   "install the package that provides it")
            raise UserError(f"hydra/{group}: {target} is not installed; {how}, or drop hydra/{group}= to use "
                            "Hydra's basic one")


# plugin packages of pyproject.toml's extras, by a part of their module name
EXTRAS = {"joblib": "cluster", "submitit": "cluster"}


def check_sweep(config: DictConfig) -> None:
    """UserError naming the job's override and the bad setting, for the first value of a basic sweep that a run
    would refuse, or for a launcher or sweeper that is not installed. Does not check the values of other sweepers
    (the Optuna sweeper checks its space)."""
    from hydra import compose
    from hydra.errors import HydraException

    check_plugins(config)
    if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
        return
    axes = job_axes(config)
    first = [values[0] for values in axes.values()]
    jobs = [(None, first)] + [(value, first[:i] + [value] + first[i + 1:])
                              for i, values in enumerate(axes.values()) for value in values[1:]]
    for value, overrides in jobs:
        which = f"the job with {value}: " if value else ""  # the first job: its error names the bad setting itself
        try:
            validate(compose(config_name=config.hydra.job.config_name, overrides=overrides))
        except UserError as e:
            raise UserError(f"{which}{e}") from e
        except HydraException as e:
            raise UserError(f"{which}{' '.join(overrides)} does not compose: {e}") from e


def stop_on_user_error(job_overrides: Sequence[Sequence[str]], results: Sequence[Any]) -> None:
    """After a launcher's batch: the first job a setting stopped (trainer.config.UserError, sent back from its
    worker) ends the sweep with one `error:` line naming the job and exit code 2, as the basic launcher's jobs
    end it (trainer.run.main), instead of Hydra's traceback of the job. The batch's other jobs have finished."""
    import sys

    from hydra.core.utils import JobStatus

    for overrides, result in zip(job_overrides, results):
        error = getattr(result, "_return_value", None)  # JobReturn.return_value would raise it
        if result.status == JobStatus.FAILED and isinstance(error, UserError):
            print(f"error: the job with {' '.join(overrides)}: {error}", file=sys.stderr, flush=True)
            sys.exit(2)
