"""Check every value of a basic sweep before its first job starts, as a single run checks its own config.

Without it a bad value (seed=0,-1) or a mistyped key fails its jobs one by one, after the good ones trained. Each
distinct swept value is checked once beside the first value of every other axis (the sum of the axes' lengths, not
their product: every check in trainer.config reads one key or one group) by trainer.config.validate.
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trainer.config import validate
from trainer.errors import UserError
from trainer.sweep.job import BASIC_SWEEPERS

log = logging.getLogger(__name__)


def _parsed_axes(config: DictConfig) -> OrderedDict[str, Any]:
    """{key: hydra Override} of a basic sweep's axes: the sweeper's params (a preset's) then the command line's, as
    hydra's BasicSweeper.split_arguments takes them (a key given twice keeps the later); empty for interval sweeps."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    axes: OrderedDict[str, Any] = OrderedDict()
    for o in OverridesParser.create().parse_overrides(params + list(config.hydra.overrides.task)):
        if o.is_sweep_override() and not o.is_discrete_sweep():
            return OrderedDict()  # interval sweeps belong to another sweeper, which checks them itself
        axes[o.get_key_element()] = o
    return axes


def _values(o: Any) -> list:
    """An axis's values as parsed elements, in the order of its jobs (a shuffled sweep: one order drawn here)."""
    from hydra.core.override_parser.types import Transformer

    return list(o.sweep_iterator(Transformer.identity)) if o.is_sweep_override() else [o.value()]


def _as_str(value: Any) -> str:
    """A parsed element as a job's override writes it (Hydra's sweep_string_iterator)."""
    from hydra.core.override_parser.types import Transformer

    return Transformer.str(value)


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
    n_jobs = config.hydra.launcher.get("n_jobs") if "joblib" in str(config.hydra.launcher.get("_target_")) else None
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0):
        # joblib.Parallel's meaning: n jobs at once, -1 one per core, -2 all cores but one; 0 means nothing (its
        # ValueError came after the sweep's parent run was created, as a traceback under a list of never-run jobs)
        raise UserError(f"hydra.launcher.n_jobs={n_jobs}: joblib runs that many jobs at once; give 1 or more, or -1 "
                        "for one per core (-2: all cores but one)")


# plugin packages of pyproject.toml's extras, by a part of their module name
EXTRAS = {"joblib": "cluster", "submitit": "cluster"}


def check_sweep(config: DictConfig) -> None:
    """UserError naming the job's override and the bad setting, for the first value of a basic sweep that a run
    would refuse, or for a launcher or sweeper that is not installed. Does not check the values of other sweepers
    (the Optuna sweeper checks its space).

    Costs O(distinct values), not O(jobs): the first job's config is composed (about 0.1 s), then each other value
    of an option group (loss=focal) is composed beside the first value of every other axis, and each other value of
    a plain setting (seed, optim.lr) is set on the first job's config and its values checked (about 1 ms: a seed
    range of 2,000 values once cost 2,000 compositions, minutes). Says how far it got when it takes over a second.
    """
    from hydra import compose
    from hydra.errors import HydraException

    check_plugins(config)
    if config.hydra.sweeper.get("_target_") not in BASIC_SWEEPERS:
        return
    axes = _parsed_axes(config)
    values = [_values(o) for o in axes.values()]
    strings = [[f"{key}={_as_str(v)}" for v in vs] for key, vs in zip(axes, values)]
    first = [values[0] for values in strings]
    progress = _Progress(sum(len(set(values)) - 1 for values in strings))

    def composed(value: str | None, overrides: list[str]) -> DictConfig:
        try:
            return compose(config_name=config.hydra.job.config_name, overrides=overrides)
        except HydraException as e:
            raise UserError(f"{_which(value)}{' '.join(overrides)} does not compose: {e}") from e

    base = composed(None, first)
    _validate(None, base)
    for i, (key, o) in enumerate(axes.items()):
        plain = _plain(base, key, o, values[i])
        done = {first[i]}
        for n, value in enumerate(strings[i]):
            if value in done:
                continue
            done.add(value)
            if plain is not None:
                with _set(base, key, plain[n]):
                    _validate(value, base, keys=False)
            else:
                _validate(value, composed(value, first[:i] + [value] + first[i + 1:]))
            progress.step()
    progress.done()


def _which(value: str | None) -> str:
    return f"the job with {value}: " if value else ""  # the first job: its error names the bad setting itself


def _validate(value: str | None, cfg: DictConfig, keys: bool = True) -> None:
    try:
        validate(cfg, keys=keys)
    except UserError as e:
        raise UserError(f"{_which(value)}{e}") from e


_NOT_SET = object()
_PRIMITIVE = (str, int, float, bool, type(None))


def _plain(base: DictConfig, key: str, o: Any, values: list) -> list | None:
    """The values of axis o as Hydra would set them on a job's config, when each is a plain value (a number, a
    string, a bool or null) replacing a plain value of base: not an option group, not +key, ~key or key@package,
    not a list or dict, not a quoted string; else None (each value is then composed)."""
    from hydra.core.override_parser.types import OverrideType

    if o.type != OverrideType.CHANGE or o.package is not None:
        return None
    if not isinstance(OmegaConf.select(base, key, default=_NOT_SET, throw_on_missing=False), _PRIMITIVE):
        return None  # an option group (loss=focal), a node, or a key the first job's config lacks
    return values if all(isinstance(v, _PRIMITIVE) for v in values) else None


@contextlib.contextmanager
def _set(cfg: DictConfig, key: str, value: object) -> Iterator[None]:
    """cfg with key set to value as Hydra sets a command-line value (OmegaConf.update, merge=True), then put back."""
    old = OmegaConf.select(cfg, key)
    OmegaConf.update(cfg, key, value, merge=True)
    try:
        yield
    finally:
        OmegaConf.update(cfg, key, old, merge=True)


class _Progress:
    """Log how far the check got, once it has taken PROGRESS_AFTER_S seconds, then every PROGRESS_EVERY_S."""

    def __init__(self, total: int) -> None:
        self.total, self.checked, self.shown = total, 0, False
        self.start = self.next = time.perf_counter() + PROGRESS_AFTER_S
        self.start -= PROGRESS_AFTER_S

    def step(self) -> None:
        self.checked += 1
        now = time.perf_counter()
        if now >= self.next:
            log.info("checking the sweep's values before its first job: %d of %d (%.0f s)", self.checked,
                     self.total, now - self.start)
            self.next, self.shown = now + PROGRESS_EVERY_S, True

    def done(self) -> None:
        if self.shown:
            log.info("checked the sweep's %d values in %.1f s", self.total + 1, time.perf_counter() - self.start)


PROGRESS_AFTER_S, PROGRESS_EVERY_S = 1.0, 5.0
