"""The search space: Hydra's sweep syntax turned into Optuna distributions, and trial values back into overrides.

interval(a, b)            -> FloatDistribution(a, b)              continuous, a < b
tag(log, interval(a, b))  -> FloatDistribution(a, b, log=True)    0 < a < b
range(a, b[, step])       -> IntDistribution / FloatDistribution  Python's range: a, a+step, ... below b
tag(log, range(a, b))     -> IntDistribution(a, b-1, log=True)    step 1
choice(x, y, ...), x,y    -> CategoricalDistribution
Anything else on the command line (loss.alpha=0.25, seed=1) is fixed for every trial.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override

from trainer.errors import UserError

SETTING = "hydra.sweeper.params"


@dataclass
class Space:
    """What each trial varies (Optuna distributions by setting) and the overrides every trial shares."""

    distributions: dict[str, Any]
    fixed: list[str]


def parse(params: Mapping[str, str] | None, arguments: Sequence[str]) -> Space:
    """The search space of hydra.sweeper.params, plus the command line's sweeps (which win), and its fixed overrides.

    Raises UserError for an empty or unsupported range, naming the setting.
    """
    parser = OverridesParser.create()
    lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    distributions: dict[str, Any] = {}
    fixed: list[str] = []
    for line in lines:
        try:
            o = parser.parse_override(line)
        except Exception as e:  # Hydra's grammar error points at the character; say where the line came from
            raise UserError(f"{SETTING} or the command line: {e}") from e
        key = o.get_key_element()
        if o.is_sweep_override():
            distributions[key] = distribution(o, line)
        else:
            fixed.append(f"{key}={o.get_value_element_as_str()}")
    if not distributions:
        raise UserError(f"{SETTING} is empty: name at least one setting and its range, e.g. "
                        "hydra.sweeper.params='{loss.gamma: interval(0, 5)}', or choose a preset: hparams_search=NAME")
    return Space(distributions, fixed)


def distribution(o: Override, text: str) -> Any:
    """The Optuna distribution of one sweep override o, written as text (interval, range, choice; tag log)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    key, sweep = o.get_key_element(), o.value()
    tags = set(getattr(sweep, "tags", set()))
    log = "log" in tags
    if tags - {"log"}:
        raise UserError(f"{SETTING}: {key} has tags {sorted(tags - {'log'})}; the only tag understood is log, "
                        f"e.g. {key}=tag(log, interval(1e-4, 1e-1))")
    where = f"{SETTING}: {text}"
    if o.is_interval_sweep():
        low, high = float(sweep.start), float(sweep.end)
        if not low < high:
            raise UserError(f"{where} is an empty range: interval(a, b) needs a < b.")
        if log and low <= 0:
            raise UserError(f"{where}: a log scale needs a lower bound > 0.")
        return FloatDistribution(low, high, log=log)
    if o.is_range_sweep():
        values = list(sweep.range())
        if not values:
            raise UserError(f"{where} is an empty range: range(a, b, step) counts from a up to, not including, b.")
        step = sweep.step
        if all(isinstance(v, int) for v in (sweep.start, sweep.stop, step)):
            if log and (step != 1 or values[0] < 1):
                raise UserError(f"{where}: a log-scaled range needs step 1 and a start >= 1.")
            return IntDistribution(values[0], values[-1], log=log, step=1 if log else step)
        if log:
            raise UserError(f"{where}: a log scale needs interval(a, b) or an integer range.")
        return FloatDistribution(float(values[0]), float(values[-1]), step=float(step))
    if o.is_choice_sweep():
        choices = list(o.sweep_iterator())
        if not choices:
            raise UserError(f"{where} is an empty choice.")
        if log:
            raise UserError(f"{where}: a choice has no scale; drop tag(log, ...).")
        if any(isinstance(c, (list, dict)) for c in choices):
            raise UserError(f"{where}: Optuna chooses among numbers, strings, booleans and null, not lists.")
        return CategoricalDistribution(choices)
    raise UserError(f"{where} is not a search range: use interval(a, b), range(a, b) or choice(x, y).")


def as_override(key: str, value: Any) -> str:
    """key=value in Hydra's syntax, exact enough that the run reproduces: floats by repr, None as null."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)
    return f"{key}={text}"


def bounds(distributions: Mapping[str, Any]) -> list[list[str]]:
    """Two override sets, every setting at its low end and at its high end: composing and validating both
    finds an unknown key or a value the trainer refuses before any trial runs."""
    from optuna.distributions import CategoricalDistribution

    ends: list[list[str]] = [[], []]
    for key, d in distributions.items():
        low, high = (d.choices[0], d.choices[-1]) if isinstance(d, CategoricalDistribution) else (d.low, d.high)
        ends[0].append(as_override(key, low))
        ends[1].append(as_override(key, high))
    return ends
