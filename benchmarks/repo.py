"""Where the repository is, and how a case starts one of this package's modules in a child process."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_command(module: str, *args: str) -> list[str]:
    """The command line of `python -m benchmarks.<module> ARGS`, with this process's interpreter."""
    return [sys.executable, "-m", f"benchmarks.{module}", *args]


def module_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """env (by default this process's) with the repository root first on PYTHONPATH: a child started by
    module_command finds this checkout's benchmarks and trainer packages from any working directory."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env
