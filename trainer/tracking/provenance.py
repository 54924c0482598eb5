"""What a run needs to be re-created: code version, package versions, machine, and the data it trained on.

Nothing here reads environment variables: they often hold credentials and are never logged.
"""
from __future__ import annotations

import platform
import re
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from trainer.data.fingerprint import fingerprint
from trainer.data.types import Dataset
from trainer.runtime.device import UNKNOWN, device_name

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("torch", "torchvision", "mlflow", "hydra-core", "imbalanced-learn", "numpy", "scikit-learn")
DIFF_ARTIFACT = "git.diff"


@dataclass(frozen=True)
class GitState:
    commit: str  # UNKNOWN when the code does not run from a git checkout (e.g. an installed wheel)
    dirty: bool | None  # None when unknown
    diff: str = ""  # `git diff HEAD` and the list of untracked files, when dirty


def git_state(repo: Path = REPO) -> GitState:
    """The commit of the checkout this code runs from and whether it has uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                              timeout=60).stdout

    try:
        # The package may sit inside some other repository (a venv in a project): only our own checkout counts.
        if Path(git("rev-parse", "--show-toplevel").strip()).resolve() != repo.resolve():
            return GitState(UNKNOWN, None)
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return GitState(UNKNOWN, None)
    if not status:
        return GitState(commit, False)
    diff = git("diff", "HEAD", "--binary")
    untracked = [line[3:] for line in status.splitlines() if line.startswith("??")]
    if untracked:
        diff += "\n# untracked files, not in the diff above:\n" + "".join(f"#   {p}\n" for p in untracked)
    return GitState(commit, True, diff)


def script(name: str, cwd: Path | None = None) -> str:
    """One of the project's scripts (train.py, scripts/compare.py) as a printed command names it for the user to
    type where they are: relative to the working folder when it lies below it (`train.py` from the repository's
    root), else its absolute path; the bare name when the code does not run from a checkout."""
    path = REPO / name
    if not path.is_file():
        return name
    try:
        return shlex.quote(str(path.relative_to(Path.cwd() if cwd is None else cwd)))
    except ValueError:
        return shlex.quote(str(path))


def train_command(overrides: Sequence[str]) -> str:
    """`python train.py OVERRIDES` as a user types it here: train.py as from the working folder, each override a
    shell word."""
    return " ".join([f"python {script('train.py')}", *map(_shell, overrides)])


def resume_command(overrides: Sequence[str], run_id: str) -> str:
    """The command that continues run_id: train.py (as typed from here) with the job's overrides, the last of each
    key (a sweep's job has tracking.uri twice), less trainer.resume and the sweep's tracking.parent_run_id."""
    kept: dict[str, str] = {}
    for o in overrides:
        key = o.split("=", 1)[0]
        if key not in ("trainer.resume", "tracking.parent_run_id"):
            kept.pop(key, None)
            kept[key] = o
    return train_command([*kept.values(), f"trainer.resume={run_id}"])


def stopped_run_command(run: Any) -> str | None:
    """The command that continues a stopped run (an MLflow Run), from the overrides Hydra wrote beside its
    checkpoint (the job's .hydra/overrides.yaml); None when that folder is not on this machine."""
    from omegaconf import OmegaConf

    from trainer.tracking.tags import CHECKPOINT

    ckpt = run.data.tags.get(CHECKPOINT)
    overrides = Path(ckpt).parent / ".hydra" / "overrides.yaml" if ckpt else None
    if overrides is None or not overrides.is_file():
        return None
    return resume_command([str(o) for o in OmegaConf.load(overrides)], run.info.run_id)


def _shell(override: str) -> str:
    """An override as a shell word: quoted when the shell would split, expand or unquote it (`model.hidden=[64,32]`),
    else as Hydra wrote it (`tracking.uri=sqlite\\:////x.db` pastes as it is)."""
    return shlex.quote(override) if re.search(r"[\s$;&|()<>*?!\"`#'\[{]", override) else override


def versions() -> dict[str, str]:
    """Python's version and those of the packages that decide a run's numbers."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def data_fingerprint(ds: Dataset) -> str:
    """SHA-256 of the train/val/test arrays the model sees (after imbalance, noise and resampling)."""
    return fingerprint(((name, getattr(getattr(ds, name), axis)) for name in ("train", "val", "test")
                        for axis in ("x", "y")), ds.classes)


def tags(git: GitState, device, seed: int, deterministic: bool) -> dict[str, str]:
    """The provenance of a run as MLflow tags, as known before its data and model exist (data.fingerprint and
    torch.threads come with them)."""
    out = {
        "git.commit": git.commit,
        "git.dirty": UNKNOWN if git.dirty is None else str(git.dirty).lower(),
        "device.name": device_name(device),
        "seed": str(seed),
        "deterministic": str(deterministic).lower(),
    }
    return out | {f"version.{k}": v for k, v in versions().items()}
