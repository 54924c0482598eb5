"""A Hydra Sweeper that runs an Optuna study through ask-and-tell, so that any Hydra launcher runs the trials.

Each round asks Optuna for up to hydra.sweeper.n_jobs trials, hands their overrides to the configured
launcher as one batch (basic: one after the other in this process; joblib, submitit: in parallel elsewhere),
and tells Optuna each job's outcome: its final val metric (what train.py's main returns), PRUNED when the
job's pruner stopped it, FAIL when it raised. Rounds go on until the study holds n_trials finished trials,
counting those of earlier commands on the same durable study (a stopped search continues; a second command
adds workers). Everything a user can get wrong is checked before the first trial.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from trainer.errors import UserError
from trainer.sweep.job import BASIC_LAUNCHER

log = logging.getLogger(__name__)



class CeOptunaSweeper(Sweeper):
    def __init__(self, metric: str, direction: str, n_trials: int, n_jobs: int, storage: str | None,
                 study_name: str | None, sampler: Any, pruner: Any, params: Any, trial: int | None = None) -> None:
        self.metric, self.direction = metric, direction
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.storage, self.study_name = storage, study_name
        self.sampler, self.pruner = sampler, pruner
        self.params = OmegaConf.to_container(params) if isinstance(params, DictConfig) else params
        self.config: DictConfig | None = None
        self.failures: list[str] = []  # "trial N: error" of the trials that raised, for the final message

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        import sys

        try:
            return self._sweep(arguments)
        except UserError as e:  # one message, as a single run gives it; SweepCallback ends the parent FAILED
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)

    def _sweep(self, arguments: list[str]) -> Any:
        from optuna.trial import TrialState

        from trainer.sweep import search, search_report as report
        from trainer.sweep.callback import handed_over
        from trainer.sweep.search_space import as_override, parse
        from trainer.tracking.store import resolve_uri

        assert self.config is not None
        space = parse(self.params, arguments)
        self._check(space)
        study = self._study()
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        parent = report.Parent(handed_over(self.config, "tracking.uri") or resolve_uri(self.config.tracking.uri),
                               handed_over(self.config, "tracking.parent_run_id"))
        parent.start(study, self.storage, self.metric)
        if self.storage is None:
            search.LIVE[study.study_name] = study  # jobs in this process reach the in-memory study here
        finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        job_idx, returns, trials = 0, [], []
        try:
            while (left := self.n_trials - len(study.get_trials(deepcopy=False, states=finished))) > 0:
                trials = [study.ask(space.distributions) for _ in range(min(self.n_jobs, left))]
                batch = []
                for t in trials:
                    overrides = space.fixed + [as_override(k, v) for k, v in t.params.items()]
                    t.set_user_attr("overrides", overrides)  # the best trial's command, for any worker to print
                    batch.append(overrides + [f"hydra.sweeper.trial={t.number}"])
                results = self.launcher.launch(batch, initial_job_idx=job_idx)
                job_idx += len(batch)
                for t, r in zip(trials, results):
                    self._tell(study, t, r, parent)
                returns.append(results)
        except BaseException:
            for t in trials:  # a Ctrl-C or a launcher error: these trials ran no further; the study goes on later
                study.tell(t, state=TrialState.FAIL, skip_if_finished=True)
            raise
        finally:
            search.LIVE.pop(study.study_name, None)
        parent.finish(study, self.metric)
        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            why = (f"the first failure: {self.failures[0]}" if self.failures else
                   "all were pruned: loosen hydra.sweeper.pruner or set it to null")
            raise UserError(f"study {study.study_name}: no trial completed; {why}")
        return returns

    def _tell(self, study: Any, trial: Any, ret: Any, parent: Any) -> None:
        from hydra.core.utils import JobStatus
        from optuna.trial import TrialState

        from trainer.sweep import search

        value = ret._return_value  # JobReturn.return_value re-raises a failed job's error; here it is data
        if ret.status == JobStatus.COMPLETED:
            objective = value if isinstance(value, (int, float)) else value.val[self.metric.removeprefix("val/")]
            if getattr(value, "run_id", None):
                trial.set_user_attr("run_id", value.run_id)  # the best trial's MLflow run, for any worker
            frozen = study.tell(trial, objective)
        elif isinstance(value, search.Pruned):
            frozen = study.tell(trial, state=TrialState.PRUNED)
        else:
            log.error("trial %d failed: %s: %s", trial.number, type(value).__name__, value)
            self.failures.append(f"trial {trial.number}: {type(value).__name__}: {value}")
            frozen = study.tell(trial, state=TrialState.FAIL)
        state = frozen.state.name
        parent.tag_trial(study, trial.number, state, frozen.value if state == "COMPLETE" else None)
        log.info("trial %d %s%s", trial.number, state,
                 f": {self.metric}={frozen.value:.4f}" if state == "COMPLETE" else "")

    def _check(self, space: Any) -> None:
        """Every user error before the first trial: metric, direction, counts, unknown keys, refused values."""
        from trainer.config import validate
        from trainer.sweep import search
        from trainer.sweep.search_space import bounds

        if self.metric not in search.METRICS:
            raise UserError(f"hydra.sweeper.metric={self.metric}: the trainer reports no such final metric. "
                            f"Choose one of {' | '.join(search.METRICS)}.")
        if self.direction not in ("maximize", "minimize"):
            raise UserError(f"hydra.sweeper.direction={self.direction} must be maximize or minimize.")
        for key in ("n_trials", "n_jobs"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise UserError(f"hydra.sweeper.{key}={getattr(self, key)} must be an integer >= 1.")
        if self.storage is not None and not self.study_name:
            raise UserError(f"hydra.sweeper.storage={self.storage} needs hydra.sweeper.study_name: the name a later "
                            "command uses to continue the study or add workers to it.")
        launcher = self.config.hydra.launcher.get("_target_")
        if self.storage is None and self.pruner is not None and launcher != BASIC_LAUNCHER:
            raise UserError(f"hydra/launcher {launcher} runs trials in other processes, which cannot report to an "
                            "in-memory study for pruning. Set hydra.sweeper.storage=sqlite:///optuna.db (or a "
                            "PostgreSQL URL), or turn pruning off with hydra.sweeper.pruner=null.")
        loader = self.hydra_context.config_loader
        for ends in bounds(space.distributions):
            try:
                cfg = loader.load_sweep_config(self.config, space.fixed + ends)
            except Exception as e:
                keys = [k.lstrip("+~") for k in space.distributions if not k.startswith("+")]
                base = loader.load_sweep_config(self.config, space.fixed)
                unknown = [k for k in keys if OmegaConf.select(base, k, default=_MISSING) is _MISSING]
                if unknown:
                    raise UserError(f"hydra.sweeper.params: {', '.join(unknown)} is not a setting of this config "
                                    "(check the name, or choose the option that has it, e.g. loss=focal for "
                                    "loss.gamma; a new key needs a leading +).") from e
                raise UserError(f"hydra.sweeper.params: the search space does not compose: {e}") from e
            try:
                validate(cfg)
            except UserError as e:
                raise UserError(f"hydra.sweeper.params reaches a value the trainer refuses ({' '.join(ends)}): "
                                f"{e}") from e

    def _study(self) -> Any:
        """Create the study, or load it when the durable storage has one by this name; UserError if unreachable."""
        import optuna
        from hydra.utils import instantiate

        from trainer.sweep import search_report as report

        sampler = instantiate(self.sampler) if isinstance(self.sampler, (dict, DictConfig)) else self.sampler
        pruner = instantiate(self.pruner) if isinstance(self.pruner, (dict, DictConfig)) else self.pruner
        try:
            storage = None if self.storage is None else _rdb_storage(self.storage)
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"hydra.sweeper.storage={report.storage_label(self.storage)} cannot be used "
                            f"({type(e).__name__}: {str(e).splitlines()[0]}). Start the database or fix the "
                            "URL, e.g. sqlite:///optuna.db or postgresql+psycopg2://user@host:5432/db.") from e
        try:
            return optuna.create_study(storage=storage, sampler=sampler, pruner=pruner or optuna.pruners.NopPruner(),
                                       study_name=self.study_name, direction=self.direction, load_if_exists=True)
        except ValueError as e:  # e.g. the stored study optimises in the other direction
            raise UserError(f"hydra.sweeper.study_name={self.study_name}: {e}") from e


_MISSING = object()


def _rdb_storage(url: str) -> Any:
    """Optuna's RDBStorage on url. Workers started together on a fresh database race to create Optuna's tables
    (a unique violation on PostgreSQL for the loser): the loser tries again, and finds them made."""
    import time

    import optuna
    from sqlalchemy.exc import IntegrityError

    # PostgreSQL's client waits for an unreachable host for minutes by default: say it within seconds
    kwargs = {"connect_args": {"connect_timeout": 10}} if url.startswith("postgresql") else {}
    _check_own_database(url, kwargs)
    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except IntegrityError:
            if attempt == 2:
                raise
            time.sleep(1 + attempt)



def _check_own_database(url: str, engine_kwargs: dict[str, Any]) -> None:
    """UserError if the database holds tables that are not Optuna's, before Optuna creates any there.

    Optuna and MLflow both keep their schema version in a table named alembic_version: pointed at MLflow's
    database, Optuna added its tables beside MLflow's and then refused with a misleading version mismatch."""
    import sqlalchemy
    from optuna.storages._rdb import models

    from trainer.sweep import search_report as report

    engine = sqlalchemy.create_engine(url, **engine_kwargs)
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    foreign = tables - set(models.BaseModel.metadata.tables) - {"alembic_version"}
    if not foreign:
        return
    whose = "mlflow's?" if {"experiments", "runs"} <= tables else f"{', '.join(sorted(foreign)[:3])}, ..."
    raise UserError(f"hydra.sweeper.storage={report.storage_label(url)}: the database holds another application's "
                    f"tables ({whose}); give Optuna a database of its own, e.g. CREATE DATABASE optuna; and "
                    "postgresql+psycopg2://user@host:5432/optuna, or sqlite:///optuna.db.")
