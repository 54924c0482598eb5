"""One experiment end to end, as a story of calls into the stages: set up, open the run's record, prepare the data,
build the model, train, score, record, draw. main() is train.py's entry: it turns a user error into one line."""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from trainer.config import validate
from trainer.errors import UserError
from trainer.runtime.signals import Interrupted, remember
from trainer.sweep.job import HydraJob, hydra_job
from trainer.tracking import ui_links
from trainer.tracking.provenance import script
from trainer.tracking.record import Opening, RunRecord, output_dir
from trainer.tracking.run_figures import FiguresInterrupted, draw_figures, figures_mode
from trainer.words import counted, value

if TYPE_CHECKING:
    import torch

    from trainer.data.prepare import Prepared
    from trainer.models.build import Built
    from trainer.sweep.search import TrialHooks
    from trainer.tracking.provenance import GitState
    from trainer.train.loop import FitResult

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_id: str
    val: dict[str, float]
    test: dict[str, float]
    best_epoch: int
    epochs_run: int
    seconds: float
    monitor: str = "val/balanced_ce"  # the metric that picked the best epoch
    steps: int = 0  # optimizer steps taken
    kept_epoch: int = 0  # the epoch whose weights were scored: the best with early stopping, else the last


@dataclass(frozen=True)
class Setup:
    """What a run is set up with before its record opens."""

    opening: Opening  # the store, experiment, name, tags, parent and the run to continue
    device: torch.device
    deterministic: bool
    git: GitState
    threads: int | None  # torch threads pinned by trainer.threads or by the run being resumed; None: chosen later
    threads_pinned_by: str
    trial: TrialHooks  # the Optuna trial this job runs (tags, per-epoch report); no-ops outside a search
    tokenizer: Path | None = None  # a saved tokenizer.json to encode a text run with (reproduce's, a resumed run's)


def run(cfg: DictConfig, tags: dict[str, str] | None = None, job: HydraJob | None = None,
        tokenizer: Path | None = None) -> RunResult:
    """Run the experiment cfg describes and return its run id and final metrics.

    tags: extra tags for the MLflow run (scripts/reproduce.py adds reproduces=<id>). With trainer.resume set, the
    interrupted run is continued from its last checkpoint instead of a new one started. job: how Hydra runs it
    (main() passes the one it read; read here otherwise). tokenizer: a text run's saved tokenizer.json to encode
    with (scripts/reproduce.py passes the original's; a resumed run uses its own). The order of the steps is
    RunRecord's to keep.
    """
    from trainer.data.prepare import prepared
    from trainer.evaluate import figure_worker
    from trainer.evaluate.scores import final_scores
    from trainer.models.build import build

    start = time.perf_counter()
    validate(cfg)
    job = hydra_job() if job is None else job
    setup = set_up(cfg, job, tags, tokenizer)
    with RunRecord.open(setup.opening) as record:
        record.log_start(cfg, setup.git, setup.device, setup.deterministic)
        prep = prepared(cfg, shared=job.multirun, tokenizer=setup.tokenizer)
        record.log_data(prep, cfg.dataset)
        built = build(cfg, prep.dataset, prep.class_counts["train_resampled"], setup.device, job.launcher,
                      setup.threads, setup.threads_pinned_by)
        record.log_model(built)
        background = (figures_mode(cfg) == "now" and figure_worker.wanted(
            job.multirun and not job.in_launcher_worker, built.threads.threads, built.threads.share)
            and figure_worker.start())
        result = fit(cfg, record, built, prep, setup)
        scores = final_scores(built.model, *tensors(prep, setup.device, "val", "test"), built.loss_fn,
                              prep.dataset.classes, (cfg.regularization.l1, cfg.regularization.l2),
                              prep.class_counts, OmegaConf.select(cfg, "eval.shot_thresholds"),
                              OmegaConf.select(cfg, "eval.posthoc_tau"))
        record.log_scores(scores, result, prep)
    draw_figures(cfg, record, prep, result, scores, background, monitor(cfg))  # after the run: never stop it
    out = RunResult(record.run_id, scores.val, scores.test, result.best_epoch, result.epochs_run,
                    time.perf_counter() - start, monitor(cfg), result.steps, result.kept_epoch)
    print_summary(out, setup.opening.run_name, setup.opening.uri, cfg.tracking.experiment,
                  in_sweep=setup.opening.parent_run_id is not None, experiment_id=setup.opening.experiment_id,
                  figures_later=figures_mode(cfg) == "later")
    return out


def set_up(cfg: DictConfig, job: HydraJob, extra_tags: dict[str, str] | None = None,
           tokenizer: Path | None = None) -> Setup:
    """The store and experiment (created if needed), the device, seeds, determinism and pinned threads, the
    interrupted run to continue (UserError if it cannot be), the Optuna trial this job runs, the run's name and tags.
    """
    from trainer.data.splits import fold_tags
    from trainer.runtime import determinism
    from trainer.runtime.device import pick_device
    from trainer.sweep import search
    from trainer.sweep.orphans import end_orphans
    from trainer.tracking import provenance, resume
    from trainer.tracking.masking import mask_overrides
    from trainer.tracking.params import bounded, group_tags
    from trainer.tracking.process import this_process
    from trainer.tracking.store import resolve_uri, setup_experiment
    from trainer.tracking.tags import PROCESS, SWEEP_JOB

    uri = resolve_uri(cfg.tracking.uri)
    experiment_id = setup_experiment(uri, cfg.tracking.experiment)
    if not job.multirun:  # a sweep did this once, at its start
        end_orphans(uri, [experiment_id])
    device = pick_device(cfg.trainer.device)
    git = provenance.git_state()
    resume_id = cfg.trainer.get("resume")
    resumed = resume.find(uri, resume_id, cfg, git.commit, output_dir(job.output_dir, resume_id)) if resume_id else None
    deterministic = determinism.wanted(cfg.trainer.get("deterministic", "auto"), device)
    threads = cfg.trainer.get("threads") or (resumed.threads if resumed else None)
    determinism.configure(int(cfg.seed), deterministic, threads, device)
    # with a step budget the last epoch is known only once the data are: the pruner may then stop any epoch
    trial = search.trial_hooks(cfg.trainer.epochs if cfg.trainer.get("steps") is None else None)
    parent = OmegaConf.select(cfg, "tracking.parent_run_id")  # set by the sweep's callback for its jobs
    tags = (group_tags(cfg) | fold_tags(cfg.split) | {"device": str(device), PROCESS: this_process()}
            | trial.tags | (extra_tags or {}) | ({"sweep_id": parent} if parent else {})
            | ({SWEEP_JOB: str(job.num)} if parent and job.num is not None else {}))
    name = bounded(mask_overrides(cfg.tracking.run_name or job.name or "defaults"))  # the whole: .hydra/overrides.yaml
    opening = Opening(uri, experiment_id, name, tags, parent, resumed, job.output_dir)
    pinned_by = "trainer.threads" if cfg.trainer.get("threads") else "the run being resumed"
    return Setup(opening, device, deterministic, git, threads, pinned_by, trial,
                 tokenizer or (resumed.tokenizer if resumed else None))


def monitor(cfg: DictConfig) -> str:
    """trainer.monitor as a metric key: val/<metric>."""
    return "val/" + cfg.trainer.monitor.removeprefix("val/")


def tensors(prep: Prepared, device: torch.device, *splits: str) -> list:
    """The named splits of the prepared data (train, val, test, unlabeled) as Tensors on device."""
    from trainer.data.types import Tensors

    return [Tensors.on(getattr(prep.dataset, s), device) for s in splits]


def fit(cfg: DictConfig, record: RunRecord, built: Built, prep: Prepared, setup: Setup) -> FitResult:
    """Train the built model (or continue a resumed run from its checkpoint), each epoch persisted to the record;
    Interrupted, after the checkpoint is logged, when a signal stopped training part-way."""
    import torch

    from trainer.data.ssl import PseudoLabeling
    from trainer.train.loop import FitConfig
    from trainer.train.persist import train_model

    train, val = tensors(prep, setup.device, "train", "val")
    pseudo = None if prep.dataset.unlabeled is None else PseudoLabeling(
        tensors(prep, setup.device, "unlabeled")[0].x, cfg.ssl.warmup_epochs, cfg.ssl.threshold)
    fit_cfg = FitConfig(epochs=cfg.trainer.epochs, batch_size=cfg.trainer.batch_size, patience=cfg.trainer.patience,
                        min_delta=cfg.trainer.min_delta, monitor=cfg.trainer.monitor.removeprefix("val/"),
                        steps=cfg.trainer.get("steps"), keep=cfg.trainer.get("keep", "best"),
                        l1=cfg.regularization.l1, l2=cfg.regularization.l2, grad_clip=cfg.trainer.grad_clip,
                        balanced_batches=prep.balanced_batches)
    parts = dict(model=built.model, optimizer=built.optimizer, loss_fn=built.loss_fn,
                 generator=torch.Generator().manual_seed(int(cfg.seed)))
    state = record.restore(setup.device, **parts)
    with record.training() as stop, torch.autograd.set_detect_anomaly(cfg.trainer.get("detect_anomaly", False)):
        result = train_model(**parts, train=train, val=val, classes=prep.dataset.classes, fit_cfg=fit_cfg,
                             run_id=record.run_id, ckpt=record.checkpoint, log_epochs=record.log_epochs,
                             state=state, stop=stop, pseudo=pseudo, persist_every_s=cfg.trainer.persist_every_s,
                             on_epoch=setup.trial.on_epoch)
    if result.interrupted:
        raise Interrupted(stop.signum, f"checkpoint written to {record.checkpoint}", record.run_id)
    if stop.signum is not None:  # after the loop's last look at it: the run finishes, then the process stops
        remember(stop.signum)
    return result


def print_summary(r: RunResult, run_name: str, uri: str, experiment: str, in_sweep: bool = False,
                  experiment_id: str = "0", figures_later: bool = False) -> None:
    """A short table of the final val and test metrics, the run id and how to open its page in the UI (and how to
    draw its deferred figures; a sweep says where its runs are once, at its end, instead of after every job)."""
    cols = ("ce", "accuracy", "balanced_accuracy")
    kept = (f"best {r.monitor} at epoch {r.best_epoch}" if r.kept_epoch == r.best_epoch else
            f"the last epoch's weights kept; best {r.monitor} at epoch {r.best_epoch}")
    lines = [f"run {run_name!r} finished: {counted(r.epochs_run, 'epoch')}, {counted(r.steps, 'step')} ({kept}), "
             f"{r.seconds:.1f} s",
             f"{'':6}" + "".join(f"{c:>20}" for c in cols)]
    for split, m in (("val", r.val), ("test", r.test)):  # a diverged run's ce of 8e18 in scientific notation
        lines.append(f"{split:6}" + "".join(f"{value(m[c]):>20}" for c in cols))
    lines.append(f"MLflow run id: {r.run_id} (experiment {experiment!r}, store {uri})")
    if not in_sweep:
        how, address = ui_links.address(uri)
        lines.append(f"Its page in the UI: {how} {address}/{ui_links.run_page(experiment_id, r.run_id)}")
        if figures_later:
            lines.append(f"Draw its figures (eval.figures=later): python {script('scripts/figures.py')} {r.run_id}")
    print("\n".join(lines), flush=True)


def _has_checkpoint(run_id: str, job: HydraJob) -> bool:
    """Whether the run wrote a checkpoint of its own (another run's may sit in a shared output folder)."""
    from trainer.train.checkpoint import FILENAME, owner

    return owner(output_dir(job.output_dir, run_id) / FILENAME) == run_id


def main(cfg: DictConfig) -> RunResult:
    """Entry point for train.py: run, and turn a user error into one message and exit code 2 (single runs).

    Returns the RunResult (run id, final val and test metrics): a search's objective is read from it."""
    job = hydra_job()
    try:
        return run(cfg, job=job)
    except FiguresInterrupted as e:
        from trainer.runtime.signals import handled

        print(e, file=sys.stderr, flush=True)
        handled()
        if job.in_launcher_worker:
            raise RuntimeError(f"job {e}") from None
        sys.exit(e.exit_code)
    except Interrupted as e:
        import mlflow

        from trainer.runtime.signals import handled
        from trainer.tracking.provenance import resume_command

        # a signal outside training interrupts before run() knows its id; a run of an earlier job of the sweep is
        # not this one (it ended FINISHED)
        last = mlflow.last_active_run()
        run_id = e.run_id or (last.info.run_id if last is not None and last.info.status == "KILLED" else None)
        command = resume_command(job.overrides, run_id)
        if run_id is None:
            print(f"{e} before its MLflow run was created: nothing was recorded", file=sys.stderr, flush=True)
        elif not cfg.trainer.get("resume") and not _has_checkpoint(run_id, job):
            print(f"{e}. The run ended KILLED before its first checkpoint; start it again from the beginning, in "
                  f"the same run, with:\n  {command}", file=sys.stderr, flush=True)
        else:
            print(f"{e}. The run ended KILLED; continue it with:\n  {command}", file=sys.stderr, flush=True)
        handled()  # reported (a repeated Ctrl-C until here was not raised again: see trainer.runtime.signals)
        if job.in_launcher_worker:  # submitit and joblib learn of a failed job from an exception, not an exit
            raise RuntimeError(f"job {e}") from None
        sys.exit(e.exit_code)
    except UserError as e:
        if not job.multirun:  # one line and exit 2, not Hydra's traceback
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)
        # a job of a sweep: the sweep records it failed, runs the next and lists it at its end
        log.error("job %s failed: %s", _job_label(job), e)
        raise
    except Exception:
        if job.multirun:  # Hydra keeps a failed job's error without its traceback
            log.exception("job %s failed", _job_label(job))
        raise


def _job_label(job: HydraJob) -> str:
    """A sweep's job as its logs and the sweep's final list name it: its number and its overrides."""
    from trainer.sweep.outcome import Job

    own = [o for o in job.overrides if not o.startswith(("tracking.uri=", "tracking.parent_run_id="))]  # the sweep's
    return f"{job.num} ({Job(job.num or 0, own).label})"

