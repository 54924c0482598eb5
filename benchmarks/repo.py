"""Where the repository is, how a case starts one of this package's modules in a child process, and a child
process timed with its peak memory."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

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


def measured(args: list[str], cwd: Path, out: IO[str], timeout_s: float = 7200.0) -> tuple[int, float, float]:
    """Run args in a child process (output to out, killed after timeout_s, without $MLFLOW_TRACKING_URI): its exit
    code, wall seconds and peak resident memory in MB (its own and its waited children's, from os.wait4)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, time.perf_counter() - start, usage.ru_maxrss / 1024  # Linux: KiB
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.1)
