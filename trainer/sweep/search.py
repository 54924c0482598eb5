"""The trainer's side of a hyper-parameter search (hydra/sweeper=ce_optuna): the Optuna trial a job runs.

The sweeper (hydra_plugins/ce_optuna_sweeper) asks Optuna for a trial and launches a job with the trial's
number in hydra.sweeper.trial. Here, inside that job, the trial is opened again so that each epoch's val
metric is reported to it (Optuna's intermediate values) and its pruner can stop the job. A job launched in
the sweeper's own process (hydra/launcher=basic) reaches an in-memory study through LIVE; a job in another
process needs a durable storage (hydra.sweeper.storage), which the sweeper checks before any trial.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainer.config import MONITORS
from trainer.errors import EndedEarly, UserError

LIVE: dict[str, Any] = {}  # study name -> optuna.Study of a search running in this process (in-memory storage)
_STORAGES: dict[str, Any] = {}  # storage URL -> optuna.storages.RDBStorage opened by a job in this process
METRICS = tuple(f"val/{m}" for m in MONITORS)  # the final val metrics train.py's main returns


class Pruned(EndedEarly):
    """Optuna's pruner stopped this trial: its MLflow run ends FINISHED with a `pruned` tag, not FAILED."""

    tag = "pruned"


@dataclass
class TrialHooks:
    """Tags for the trial's MLflow run and the per-epoch callback that reports to Optuna (and prunes)."""

    tags: dict[str, str]
    on_epoch: Callable[[int, dict[str, float]], None]


def open_study(study_name: str, storage: str | None, pruner: Any = None) -> Any:
    """The running study: from LIVE when it lives in this process's memory, else loaded from its storage with
    pruner (an optuna.pruners object: load_study would otherwise give it Optuna's default MedianPruner)."""
    import optuna

    if storage is None:
        if study_name not in LIVE:
            raise UserError(f"hydra.sweeper.storage=null keeps study {study_name!r} in the sweeper's memory, which "
                            "this job (another process) cannot reach. Set hydra.sweeper.storage=sqlite:///optuna.db "
                            "(or a PostgreSQL URL), or hydra.sweeper.pruner=null.")
        return LIVE[study_name]
    if storage not in _STORAGES:  # one engine per process: jobs run one after another in a basic launcher's
        _STORAGES[storage] = optuna.storages.RDBStorage(storage)  # process, and each engine holds connections
    return optuna.load_study(study_name=study_name, storage=_STORAGES[storage],
                             pruner=pruner or optuna.pruners.NopPruner())


def trial_hooks(epochs: int) -> TrialHooks:
    """The hooks of the Optuna trial this Hydra job runs (of `epochs` epochs, the last never pruned: the
    trial is complete by then); no tags and a no-op outside a ce_optuna search."""
    from hydra.core.hydra_config import HydraConfig

    none = TrialHooks({}, lambda epoch, metrics: None)
    if not HydraConfig.initialized():
        return none
    sweeper = HydraConfig.get().sweeper
    number = sweeper.get("trial")
    if number is None:
        return none
    import optuna
    from hydra.utils import instantiate

    pruner = instantiate(sweeper.pruner) if sweeper.get("pruner") is not None else None
    study = open_study(sweeper.study_name, sweeper.storage, pruner)
    trial = optuna.trial.Trial(study, study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number))
    metric, prune = sweeper.metric, sweeper.get("pruner") is not None

    def report(epoch: int, metrics: dict[str, float]) -> None:
        trial.report(metrics[metric], epoch)
        if prune and epoch < epochs and trial.should_prune():
            raise Pruned(f"pruned at epoch {epoch}: {metric}={metrics[metric]:.4f}")

    return TrialHooks({"optuna.study": study.study_name, "optuna.trial": str(number)}, report)
