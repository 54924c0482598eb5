"""How Hydra runs a job: a single run or a job of a sweep, in the sweep's own process or in a launcher's worker."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

# Hydra's basic sweeper, and the harness's (hydra_plugins/ce_basic_sweeper, the default): every combination of values
BASIC_SWEEPERS = ("hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                  "hydra_plugins.ce_basic_sweeper.sweeper.CeBasicSweeper")
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"  # jobs in the sweep's own process


@dataclass(frozen=True)
class HydraJob:
    """How Hydra runs this job; empty outside Hydra (a run started from Python, scripts/reproduce.py)."""

    name: str | None = None  # the job's overrides (override_dirname): the run's default name
    output_dir: Path | None = None  # the job's folder
    mode: str | None = None  # "RUN" (a single run) or "MULTIRUN" (a job of a sweep)
    launcher: dict = field(default_factory=dict)  # hydra.launcher, resolved: its _target_ and settings
    overrides: tuple[str, ...] = ()  # the job's task overrides, as typed or added by the sweep
    num: int | None = None  # a sweep's job: its number (hydra.job.num), from 0 in the order of the sweep

    @property
    def multirun(self) -> bool:
        return self.mode == "MULTIRUN"

    @property
    def in_launcher_worker(self) -> bool:
        """A multirun's job in a launcher's worker process (joblib, submitit, ray), not in the sweep's own."""
        return self.multirun and self.launcher.get("_target_") != BASIC_LAUNCHER


def hydra_job() -> HydraJob:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return HydraJob()
    hc = HydraConfig.get()
    launcher = hc.get("launcher")
    return HydraJob(hc.job.override_dirname or None, Path(hc.runtime.output_dir), getattr(hc.mode, "name", None),
                    {} if launcher is None else OmegaConf.to_container(launcher, resolve=True), tuple(hc.overrides.task),
                    hc.job.get("num") if getattr(hc.mode, "name", None) == "MULTIRUN" else None)
