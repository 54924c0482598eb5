"""Check every value of a basic sweep before its first job starts, as a single run checks its own config.

Without it a bad value (seed=0,-1) or a mistyped key fails its jobs one by one, after the good ones trained, and
Hydra reports each with a traceback. Each swept value is composed once beside the first value of every other
axis (the sum of the axes' lengths, not their product: every check in trainer.config reads one key or one group)
and validated by trainer.config.validate.
"""
from __future__ import annotations

from collections import OrderedDict

from omegaconf import DictConfig

from trainer.config import UserError, validate

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


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


def check_sweep(config: DictConfig) -> None:
    """UserError naming the job's override and the bad setting, for the first value of a basic sweep that a run
    would refuse. Does nothing for other sweepers (the Optuna sweeper checks its space) or outside a multirun."""
    from hydra import compose
    from hydra.errors import HydraException

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
