"""How Hydra runs a job: a single run or a job of a sweep, in the sweep's own process or in a launcher's worker."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"  # jobs in the sweep's own process


@dataclass(frozen=True)
class HydraJob:
    """How Hydra runs this job; empty outside Hydra (a run started from Python, scripts/reproduce.py)."""

    name: str | None = None  # the job's overrides (override_dirname): the run's default name
    output_dir: Path | None = None  # the job's folder
    mode: str | None = None  # "RUN" (a single run) or "MULTIRUN" (a job of a sweep)
    launcher: dict = field(default_factory=dict)  # hydra.launcher, resolved: its _target_ and settings
    sweeper: str = ""  # hydra.sweeper._target_
    overrides: tuple[str, ...] = ()  # the job's task overrides, as typed or added by the sweep

    @property
    def multirun(self) -> bool:
        return self.mode == "MULTIRUN"

    @property
    def in_launcher_worker(self) -> bool:
        """A multirun's job in a launcher's worker process (joblib, submitit, ray), not in the sweep's own."""
        return self.multirun and self.launcher.get("_target_") != BASIC_LAUNCHER

    @property
    def stops_on_error(self) -> bool:
        """A single run, or a job of a basic sweep run by the sweep's own process: Hydra's basic sweeper ends the
        sweep at a failed job anyway (the Optuna sweeper records a failed trial and goes on)."""
        return self.mode == "RUN" or (self.multirun and not self.in_launcher_worker and self.sweeper == BASIC_SWEEPER)


def hydra_job() -> HydraJob:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return HydraJob()
    hc = HydraConfig.get()
    launcher = hc.get("launcher")
    return HydraJob(hc.job.override_dirname or None, Path(hc.runtime.output_dir), getattr(hc.mode, "name", None),
                    {} if launcher is None else OmegaConf.to_container(launcher, resolve=True),
                    str(hc.sweeper.get("_target_", "")), tuple(hc.overrides.task))
