"""The MLflow record of one run: the run opened (or the interrupted one continued), and what it logs at each step
of its story, each step in one batched call.

mlflow is imported inside the functions.
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.errors import EndedEarly
from trainer.tracking.params import MAX_PARAM_CHARS, MAX_TAG_CHARS, bounded
from trainer.tracking.store import drop_inherited_run_id
from trainer.tracking.tags import CHECKPOINT, PARAMS_CUT

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from trainer.data.prepare import Prepared
    from trainer.evaluate.scores import Scores
    from trainer.models.build import Built
    from trainer.runtime.signals import StopRequest
    from trainer.tracking.provenance import GitState
    from trainer.tracking.resume import KeepStatus, Resume
    from trainer.train.loop import FitResult, LoopState

log = logging.getLogger(__name__)
# A run's one-value metrics (test/*, best/*, time/*) are logged at step 0: MLflow's UI draws a metric whose latest step
# is 0 as a bar with its value, one at step >= 1 as a line, where a single value is a lone dot.
SUMMARY_STEP = 0


@contextlib.contextmanager
def mlflow_run(experiment_id: str, run_name: str, tags: dict[str, str],
               parent_run_id: str | None = None, run_id: str | None = None) -> Iterator[Any]:
    """An MLflow run that ends FINISHED, FAILED (error in the `error` tag) or KILLED (Ctrl-C), never RUNNING;
    a run ended early on purpose (trainer.errors.EndedEarly: an Optuna pruner) ends FINISHED with its tag.

    With run_id, the existing run is continued (resumed) instead of a new one created.
    """
    import mlflow

    drop_inherited_run_id()
    new = run_id is None
    with mlflow.start_run(run_id=run_id, experiment_id=experiment_id if new else None,
                          run_name=run_name if new else None, tags=tags,
                          parent_run_id=parent_run_id if new else None) as run:
        try:
            yield run
        except KeyboardInterrupt as e:
            mlflow.set_tag("error", str(e) or "interrupted (KeyboardInterrupt)")
            mlflow.end_run("KILLED")
            raise
        except EndedEarly as e:  # stopped on purpose: what it logged is a finished run
            mlflow.set_tag(e.tag, str(e))
            mlflow.end_run("FINISHED")
            raise
        except BaseException as e:
            mlflow.set_tag("error", f"{type(e).__name__}: {e}"[:MAX_PARAM_CHARS])
            raise  # start_run's context manager ends the run FAILED


def log_epochs(client: Any, run_id: str, epochs: list[tuple[int, int, dict[str, float]]]) -> None:
    """Epochs' metrics, each (epoch, its end in ms since 1970, {key: value}), as one log_batch of run_id, at the
    epoch's step."""
    from mlflow.entities import Metric

    client.log_batch(run_id, metrics=[Metric(k, v, ms, epoch) for epoch, ms, m in epochs for k, v in m.items()])


@dataclass(frozen=True)
class Opening:
    """What a run is opened with: where it is logged and under which name, and what it continues."""

    uri: str
    experiment_id: str
    run_name: str
    tags: dict[str, str]
    parent_run_id: str | None = None  # the sweep's parent run
    resumed: Resume | None = None  # the interrupted run to continue (trainer.resume)
    output_dir: Path | None = None  # Hydra's job folder; None outside Hydra


def output_dir(hydra_dir: Path | None, run_id: str) -> Path:
    """Hydra's job folder, or outputs/runs/<run id> in the working directory when run without Hydra."""
    return hydra_dir if hydra_dir is not None else Path.cwd() / "outputs" / "runs" / run_id


@dataclass
class RunRecord:
    """One run's MLflow bookkeeping: its id, where its checkpoint goes, and its logging, one batch per step.

    The order the run's story keeps, and why:
    - open(): a resume refused before training (its config, commit or data differ, a signal) leaves the resumed
      run's status, end time and tags as they were; from training() on, the run ends as any run does.
    - open(): signals are routed to `stop` only inside the run; before it exists a signal exits with nothing
      recorded, inside it one ends the run KILLED (a first one during training() after the current step).
    - log_start() records what is known before data and model exist; torch.threads is chosen only once the model
      is built (it depends on the model's size), so log_model() records it, and the figure process (which uses the
      cores the run's threads leave free) is started after it.
    - training(): the checkpoint is logged as an artifact however training ends, before an interrupt is raised.
    """

    opening: Opening
    run_id: str
    stop: StopRequest
    kept: KeepStatus
    client: Any  # MlflowClient: thread-safe, unlike the fluent API's run stack (the epoch writer's thread logs)
    fingerprint: str = ""
    folder: Path = field(init=False)

    def __post_init__(self) -> None:
        self.folder = output_dir(self.opening.output_dir, self.run_id)

    @property
    def checkpoint(self) -> Path:
        from trainer.train.checkpoint import FILENAME

        return self.folder / FILENAME

    @property
    def resumed(self) -> Resume | None:
        return self.opening.resumed

    @classmethod
    @contextlib.contextmanager
    def open(cls, opening: Opening) -> Iterator[RunRecord]:
        """The run, new or continued, for the length of the block; ended as mlflow_run says."""
        from mlflow.tracking import MlflowClient

        from trainer.runtime.signals import stop_request
        from trainer.tracking.resume import KeepStatus

        resumed = opening.resumed
        with KeepStatus(opening.uri, resumed) as kept, mlflow_run(
                opening.experiment_id, opening.run_name, opening.tags, opening.parent_run_id,
                run_id=resumed.run_id if resumed else None) as active, stop_request() as stop:
            record = cls(opening, active.info.run_id, stop, kept, MlflowClient())
            yield record
            record._finish()

    def _batch(self, params: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
               metrics: list[Any] | None = None) -> None:
        from mlflow.entities import Param, RunTag

        self.client.log_batch(self.run_id, metrics=metrics or [],
                              params=[Param(k, str(v)) for k, v in (params or {}).items()],
                              tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()])

    def log_start(self, cfg: DictConfig, git: GitState, device: Any, deterministic: bool) -> None:
        """Where the checkpoint goes; for a new run (or one resumed before it got this far) the resolved config as
        params and artifacts, Hydra's files, the provenance tags and the uncommitted diff."""
        import mlflow

        from trainer.tracking import provenance, ui_links
        from trainer.tracking.params import flatten, log_config

        tags = {CHECKPOINT: str(self.checkpoint)}
        first = self.resumed is None or not self.resumed.recorded  # a run stopped that early records it now
        cut: list[str] = []
        params = flatten(cfg, cut) if first else {}
        if first:
            tags |= provenance.tags(git, device, int(cfg.seed), deterministic)
            tags[ui_links.DESCRIPTION_TAG] = ui_links.description(self.opening.experiment_id, self.run_id)
            hydra_dir = self.opening.output_dir
            log_config(cfg, hydra_dir / ".hydra" if hydra_dir is not None else None)
            if git.dirty:
                mlflow.log_text(git.diff, provenance.DIFF_ARTIFACT)
        if cut:  # MLflow keeps 6,000 characters of a param: say which, and where the whole value is
            tags[PARAMS_CUT] = bounded(", ".join(cut), MAX_TAG_CHARS)
            log.warning("MLflow keeps %d characters of a param: %s cut (tag %s); the whole values are in the run's "
                        "config.yaml artifact and .hydra/overrides.yaml", MAX_PARAM_CHARS, ", ".join(cut), PARAMS_CUT)
        self._batch(params=params, tags=tags)

    def log_data(self, prep: Prepared, dataset: DictConfig) -> None:
        """The data's fingerprint (a resumed run's must match), the data as the run's dataset input (the UI's Dataset
        column), its class counts at each stage, the class keys of the per-class metrics, what preparing it decided
        (resampling.used.*, tokenizer.used.*) and a text run's tokenizer (artifact tokenizer/tokenizer.json, which
        resume and reproduce encode with)."""
        import mlflow

        from trainer.data.tokenizer import save
        from trainer.evaluate.metrics import class_keys
        from trainer.tracking import provenance, resume
        from trainer.tracking.data_input import log_data_input

        ds = prep.dataset
        self.fingerprint = provenance.data_fingerprint(ds)
        if self.resumed is not None:
            resume.check_data(self.resumed, self.fingerprint)
        log_data_input(dataset, ds.source_fingerprint or self.fingerprint)
        mlflow.log_dict(prep.class_counts, "class_counts.json")
        mlflow.log_dict(dict(zip(class_keys(ds.classes), ds.classes)), "class_keys.json")  # recall/<key> -> class
        if prep.tokenizer is not None:
            mlflow.log_artifact(str(save(prep.tokenizer, self.folder / resume.TOKENIZER_DIR)), resume.TOKENIZER_DIR)
        # a resumed run that got this far logged them (MLflow refuses a changed value: tokenizer.used.source is)
        logged = self.resumed is not None and "data.fingerprint" in self.resumed.tags
        self._batch(params={} if logged else prep.params, tags={"data.fingerprint": self.fingerprint,
                                                                "data.source_fingerprint": ds.source_fingerprint})

    def log_model(self, built: Built) -> None:
        """The thread count chosen for the model and the weights, offsets or margins its loss uses."""
        import mlflow

        weights = built.loss_weights
        if weights:
            mlflow.log_dict(weights, "loss_weights.json")
        threads = built.threads.threads
        self._batch(params={"torch.threads": threads}
                    | {f"loss.used.{k}": str([round(w, 6) for w in v]) for k, v in weights.items()},
                    tags={"torch.threads": threads})

    def restore(self, device: Any, **parts: Any) -> LoopState | None:
        """The loop state to continue from, the checkpoint's states put into parts; None for a new run."""
        from trainer.tracking import resume

        return None if self.resumed is None else resume.restore(self.resumed, device, **parts)

    def log_epochs(self, epochs: list[tuple[int, int, dict[str, float]]]) -> None:
        """Epochs' metrics in one call; called from the epoch writer's thread (log_epochs)."""
        log_epochs(self.client, self.run_id, epochs)

    @contextlib.contextmanager
    def training(self) -> Iterator[StopRequest]:
        """Around training: from here on an error ends a resumed run as any run's; a first signal only asks the
        loop to stop after its current step; the checkpoint is logged as an artifact however training ends."""
        from trainer.train.checkpoint import log_artifact

        self.kept.training = True
        try:
            with self.stop.deferred():
                yield self.stop
        finally:
            log_artifact(self.checkpoint)

    def log_scores(self, scores: Scores, result: FitResult, prep: Prepared) -> None:
        """The final test metrics and how to read them, the best epoch, the training time and what preparing the
        data measured, at SUMMARY_STEP; a run whose training diverged (trainer.train.divergence) is said in one
        warning and tagged `diverged` with it."""
        from mlflow.entities import Metric

        from trainer.train import divergence

        step, ms = SUMMARY_STEP, int(time.time() * 1000)
        values = (scores.test_metrics() | {"best/val/ce": result.best_val_ce, "best/epoch": result.best_epoch,
                                           "kept/epoch": result.kept_epoch, "time/train_s": result.seconds}
                  | prep.metrics)
        tags = dict(scores.tags)
        diverged = divergence.find(result.history, prep.dataset.num_classes)
        if diverged is not None:
            log.warning("%s", diverged.message)
            tags[divergence.TAG] = diverged.message
        self._batch(tags=tags, metrics=[Metric(k, float(v), ms, step) for k, v in values.items()])

    def _finish(self) -> None:
        """A resumed run that finishes drops the `error` tag of the interruption it recorded."""
        from mlflow.exceptions import MlflowException

        if self.resumed is not None and "error" in self.resumed.tags:
            with contextlib.suppress(MlflowException):  # already gone: nothing to tidy
                self.client.delete_tag(self.run_id, "error")
