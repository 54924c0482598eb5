"""The repository's Hydra config (conf/), composed as `python train.py <overrides>` composes it."""
from __future__ import annotations

from hydra import compose as hydra_compose, initialize_config_dir
from omegaconf import DictConfig

from benchmarks.repo import ROOT


def compose(overrides: list[str]) -> DictConfig:
    """The config `python train.py <overrides>` runs (without the hydra node)."""
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=overrides)
