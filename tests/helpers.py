"""Helpers the tests share: the repository's paths, configs composed as `python train.py` composes them, and the
command line run as a user runs it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
FAST = ["trainer.epochs=2"]


def make_cfg(*overrides: str):
    """The config `python train.py <overrides>` would run (without the hydra node)."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def train_cli(*args: str, cwd: Path, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python train.py ARGS` as a user would, in folder cwd, capturing its output."""
    full_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | (env or {})
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
