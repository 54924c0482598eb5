"""The errors a user can fix by changing a setting, and the one way a run ends early on purpose.

The bottom of the package: every stage raises these, nothing here imports another module of the harness.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


class UserError(Exception):
    """An error the user can fix by changing a setting; its message names the setting and the fix."""

    def __reduce__(self) -> tuple:
        """Pickled as its class, message and attributes, whatever a subclass's __init__ takes: a launcher's worker
        (joblib) sends a job's error back to the sweep by pickle, and ConfigError(key, value, allowed) could not be
        rebuilt from its message (the sweep then reported a broken process pool, not the error)."""
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls: type, args: tuple, state: dict) -> UserError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigError(UserError):
    """A config value out of range: names the key, the value given and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key = key
        given = f"{key} is not set" if value is None else f"{key}={value!r} is not valid"  # null: nothing given
        super().__init__(f"{given}: {key} must be {allowed}.")


class EndedEarly(Exception):
    """A run stopped on purpose before its last epoch (an Optuna pruner): its MLflow run ends FINISHED, not FAILED,
    with the tag `tag` holding the message, and the epoch it stopped after is recorded like any other."""

    tag = "ended_early"


def command_status(body: Callable[[], int]) -> int:
    """body() as a command's exit status: a UserError becomes one `error:` line on stderr and status 2."""
    try:
        return body()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
