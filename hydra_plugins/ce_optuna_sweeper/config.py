"""The settings of the ce_optuna sweeper (hydra.sweeper.*), registered as hydra/sweeper=ce_optuna.

No `from __future__ import annotations`: Hydra loads this module outside sys.modules, and OmegaConf reads the
field types of the dataclass."""
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class CeOptunaSweeperConf:
    _target_: str = "hydra_plugins.ce_optuna_sweeper.sweeper.CeOptunaSweeper"
    # the final val metric of each trial (what train.py's main returns) and whether higher is better
    metric: str = "val/balanced_accuracy"
    direction: str = "maximize"
    n_trials: int = 20  # finished trials (complete, pruned or failed) the study should hold at the end
    n_jobs: int = 1  # trials handed to the launcher at once (a batch); its parallelism is the launcher's
    # null: in memory, this command only. sqlite:///optuna.db or postgresql+psycopg2://user@host/db: durable,
    # shared by every command with the same study_name, continued where it stopped
    storage: Optional[str] = None
    study_name: Optional[str] = None
    sampler: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": 0})
    # null turns pruning off; each trial still reports its per-epoch val metric. No pruning in the first 10
    # epochs: on the default data, val balanced accuracy at epoch 5 ranked trials poorly (a near-best tau was cut)
    pruner: Any = field(default_factory=lambda: {"_target_": "optuna.pruners.MedianPruner",
                                                 "n_startup_trials": 5, "n_warmup_steps": 10})
    # the search space: a setting and its range in Hydra's sweep syntax, e.g. loss.gamma: interval(0, 5)
    params: Optional[Dict[str, str]] = None
    trial: Optional[int] = None  # set by the sweeper for each job: the Optuna trial number it runs


ConfigStore.instance().store(group="hydra/sweeper", name="ce_optuna", node=CeOptunaSweeperConf,
                             provider="ce-harness")
