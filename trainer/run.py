"""One experiment end to end: validate, prepare the data, train, evaluate, record everything in MLflow."""
from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from trainer.data import splits as data
from trainer.data import cache as datacache
from trainer.data import imbalance
from trainer.data import noise
from trainer.runtime import progress
from trainer.data import resampling
from trainer.sweep import search
from trainer.data import ssl
from trainer.config import UserError, validate
from trainer.runtime.signals import Interrupted
from trainer.sweep.check import BASIC_LAUNCHER, BASIC_SWEEPER
from trainer.tracking.store import (flatten, group_tags, log_config, mask_overrides, mlflow_run, resolve_uri,
                              setup_experiment, ui_command)

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch
    from torch import nn

    from trainer.train.loop import FitConfig, FitResult, LoopState, Tensors

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """The splits the model sees, and what preparing them decided (logged with the run)."""

    dataset: data.Dataset
    class_counts: dict[str, list[int]]
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    balanced_batches: bool = False  # resampling=balanced_sampler: the loop draws class-balanced batches


@dataclass
class RunResult:
    run_id: str
    val: dict[str, float]
    test: dict[str, float]
    best_epoch: int
    epochs_run: int
    seconds: float
    monitor: str = "val/ce"  # the metric that picked the best epoch


def prepare(cfg: DictConfig) -> Prepared:
    """Load and split the dataset; imbalance, noise, withheld labels (ssl) and resampling on the train split only."""
    seed = int(cfg.seed)
    with progress.step(f"data: loading dataset={cfg.dataset.name}"):
        ds = data.load(cfg.dataset, cfg.split, seed)
    n = ds.num_classes
    counts = {"train_source": ds.train.counts(n)}
    train = imbalance.apply(ds.train, cfg.imbalance, n, seed)
    counts["train_imbalanced"] = train.counts(n)
    train, flip_rate = noise.apply(train, cfg.noise, n, seed)
    metrics = {}
    if cfg.noise.name != "none":
        counts["train_noisy"] = train.counts(n)
        metrics["noise/flip_rate"] = flip_rate
    train, unlabeled = ssl.withhold_labels(train, cfg.ssl, n, seed)
    if unlabeled is not None:
        counts["train_labeled"] = train.counts(n)
    with (progress.step(f"data: resampling={cfg.resampling.name} of {len(train.y):,} train samples")
          if cfg.resampling.name != "none" else contextlib.nullcontext()):
        res = resampling.apply(train, cfg.resampling, ds.classes, seed, ds.categorical)
    # balanced_sampler keeps the split but draws balanced batches: the loss sees the counts the model trains on
    counts["train_resampled"] = (resampling.balanced_counts(res.train.counts(n)) if res.balanced_batches
                                 else res.train.counts(n))
    counts["val"], counts["test"] = ds.val.counts(n), ds.test.counts(n)
    metrics |= res.metrics
    ds = replace(ds, train=res.train, unlabeled=unlabeled)
    if ds.tabular:
        ds = data.standardize(ds)
    return Prepared(ds, counts, res.params, metrics, res.balanced_batches)


def pick_device(name: str):
    """The torch device of trainer.device (auto: CUDA when torch sees one; validate refused cuda without it)."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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


def run(cfg: DictConfig, tags: dict[str, str] | None = None, job: HydraJob | None = None) -> RunResult:
    """Run the experiment cfg describes and return its run id and final metrics.

    tags: extra tags for the MLflow run (scripts/reproduce.py adds reproduces=<id>). With trainer.resume set,
    the interrupted run is continued from its last checkpoint instead of a new one started. job: how Hydra runs
    it (main() passes the one it read; read here otherwise).
    """
    start = time.perf_counter()
    validate(cfg)
    uri = resolve_uri(cfg.tracking.uri)
    experiment_id = setup_experiment(uri, cfg.tracking.experiment)
    job = hydra_job() if job is None else job
    output_dir, multirun = job.output_dir, job.multirun
    parent = OmegaConf.select(cfg, "tracking.parent_run_id")  # set by trainer.tracking.SweepCallback in a sweep
    run_name = mask_overrides(cfg.tracking.run_name or job.name or "defaults")
    device = pick_device(cfg.trainer.device)

    import mlflow
    import torch
    from mlflow.entities import Param, RunTag
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from trainer.models.accel import accelerate
    from trainer.models.inputs import with_inputs
    from trainer.train import checkpoint
    from trainer.runtime import determinism
    from trainer.evaluate import figure_worker
    from trainer.tracking import provenance
    from trainer.tracking import resume
    from trainer.runtime import threads
    from trainer.runtime.signals import stop_request
    from trainer.models.losses import build_loss, loss_weights, predictive_logits
    from trainer.evaluate.metrics import class_keys, imbalance_report
    from trainer.train.loop import FitConfig, Tensors, evaluate, predict
    from trainer.models.optim import build_optimizer
    from trainer.models.networks import build as build_model

    # --- reproduce and resume (issue 6): provenance, determinism, the run to continue ---
    git = provenance.git_state()
    resume_id = cfg.trainer.get("resume")
    resumed = resume.find(uri, resume_id, cfg, git.commit, _output_dir(output_dir, resume_id)) if resume_id else None
    deterministic = determinism.wanted(cfg.trainer.get("deterministic", "auto"), device)
    pinned_threads = cfg.trainer.get("threads") or (resumed.threads if resumed else None)
    determinism.configure(int(cfg.seed), deterministic, pinned_threads, device)
    # --- end ---

    trial = search.trial_hooks(cfg.trainer.epochs)  # in an Optuna search: tags, per-epoch report, pruning
    tags = (group_tags(cfg) | data.fold_tags(cfg.split) | {"device": str(device), resume.PROCESS: resume.this_process()}
            | trial.tags | (tags or {}))
    if parent:
        tags["sweep_id"] = parent
    client = MlflowClient()  # one log_batch for the params and tags known at start, one for those known later
    with resume.KeepStatus(uri, resumed) as kept, mlflow_run(experiment_id, run_name, tags, parent,
                                                          run_id=resume_id) as active, stop_request() as stop:
        run_id = active.info.run_id
        ckpt = _output_dir(output_dir, run_id) / checkpoint.FILENAME
        first = {resume.TAG: str(ckpt)}
        record = resumed is None or not resumed.recorded  # a run stopped that early records it now
        if record:
            # torch.threads is chosen once the model is built (trainer.threads)
            first |= {k: v for k, v in provenance.tags(git, device, 0, int(cfg.seed), deterministic).items()
                      if k != "torch.threads"}
            log_config(cfg, output_dir / ".hydra" if output_dir is not None else None)
            if git.dirty:
                mlflow.log_text(git.diff, provenance.DIFF_ARTIFACT)
        client.log_batch(run_id, params=[Param(k, v) for k, v in (flatten(cfg) if record else {}).items()],
                         tags=[RunTag(k, v) for k, v in first.items()])

        prep, reused = datacache.cached(cfg, prepare) if multirun else (prepare(cfg), False)
        if reused:
            log.info("data: prepared by an earlier job of this process, reused")
        ds = prep.dataset
        fingerprint = provenance.data_fingerprint(ds)
        if resumed is not None:
            resume.check_data(resumed, fingerprint)
        mlflow.log_dict(prep.class_counts, "class_counts.json")
        mlflow.log_dict(dict(zip(class_keys(ds.classes), ds.classes)), "class_keys.json")  # recall/<key> -> class

        torch.manual_seed(int(cfg.seed))
        model = build_model(cfg.model, ds.input_shape, ds.num_classes, cfg.regularization.dropout)
        model = with_inputs(model, ds, cfg.dataset).to(device)  # images: normalised (and augmented) on the device
        cpu = threads.choose(pinned_threads, model, ds.input_shape, cfg.trainer.batch_size, device, job.launcher,
                             pinned_by="trainer.threads" if cfg.trainer.get("threads") else "the run being resumed")
        torch.set_num_threads(cpu.threads)
        background_figures = figure_worker.wanted(multirun and not job.in_launcher_worker, cpu.threads,
                                                    cpu.share)
        if background_figures:
            background_figures = figure_worker.start()  # its imports overlap this run's training
        log.info("torch.threads=%d (%d core(s) from %s%s)", cpu.threads, cpu.share, cpu.source,
                 "" if cpu.macs_per_step is None else f", {cpu.macs_per_step / 1e6:.1f} M multiply-adds per step")
        model = accelerate(model, cfg.trainer, device)  # bf16, channels-last, torch.compile when asked
        loss_fn = build_loss(cfg.loss, prep.class_counts["train_resampled"]).to(device)
        weights = loss_weights(loss_fn)
        if weights:
            mlflow.log_dict(weights, "loss_weights.json")
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in (
            prep.params | {"torch.threads": cpu.threads}
            | {f"loss.used.{k}": str([round(w, 6) for w in v]) for k, v in (weights or {}).items()}).items()],
            tags=[RunTag("data.fingerprint", fingerprint), RunTag("torch.threads", str(cpu.threads))])
        optimizer = build_optimizer(cfg.optim, model)

        def tensors(split: data.Split) -> Tensors:
            return Tensors(torch.as_tensor(split.x, device=device), torch.as_tensor(split.y, device=device))

        train, val, test = tensors(ds.train), tensors(ds.val), tensors(ds.test)
        fit_cfg = FitConfig(epochs=cfg.trainer.epochs, batch_size=cfg.trainer.batch_size,
                            patience=cfg.trainer.patience, min_delta=cfg.trainer.min_delta,
                            monitor=cfg.trainer.monitor.removeprefix("val/"),
                            l1=cfg.regularization.l1, l2=cfg.regularization.l2, grad_clip=cfg.trainer.grad_clip,
                            balanced_batches=prep.balanced_batches)
        pseudo = None if ds.unlabeled is None else ssl.PseudoLabeling(
            tensors(ds.unlabeled).x, cfg.ssl.warmup_epochs, cfg.ssl.threshold)
        generator = torch.Generator().manual_seed(int(cfg.seed))
        parts = dict(model=model, optimizer=optimizer, loss_fn=loss_fn, generator=generator)
        state = resume.restore(resumed, device, **parts) if resumed is not None else None
        kept.training = True  # from here on an error ends the resumed run as any run's
        try:
            with stop.deferred(), torch.autograd.set_detect_anomaly(cfg.trainer.get("detect_anomaly", False)):
                result = train_model(model, loss_fn, optimizer, train, val, ds.classes, fit_cfg, generator,
                                     run_id=run_id, ckpt=ckpt, state=state, stop=stop, pseudo=pseudo,
                                     persist_every_s=cfg.trainer.persist_every_s, on_epoch=trial.on_epoch)
        finally:
            checkpoint.log_artifact(ckpt)
        if result.interrupted:
            raise Interrupted(stop.signum, f"checkpoint written to {ckpt}", run_id)

        reg = (cfg.regularization.l1, cfg.regularization.l2)
        final_val = evaluate(model, val, loss_fn, ds.classes, *reg)
        test_logits = predict(model, test.x)  # one pass over test for its metrics, post-hoc metrics and figures
        final_test = evaluate(model, test, loss_fn, ds.classes, *reg, per_class=True, logits=test_logits)
        probs = torch.softmax(predictive_logits(loss_fn, test_logits).float(), dim=-1).cpu().numpy()
        imbalanced, eval_tags = imbalance_report(probs, test.y.cpu().numpy(), ds.classes,
                                                 prep.class_counts["train_imbalanced"],
                                                 OmegaConf.select(cfg, "eval.shot_thresholds"))
        mlflow.set_tags(eval_tags)
        mlflow.log_metrics({f"test/{k}": v for k, v in (final_test | imbalanced).items()}
                           | {"best/val/ce": result.best_val_ce, "best/epoch": result.best_epoch,
                              "time/train_s": result.seconds} | prep.metrics, step=result.epochs_run)
        tau = OmegaConf.select(cfg, "eval.posthoc_tau")
        if tau is not None:
            counts = prep.class_counts["train_resampled"]
            mlflow.log_metrics(posthoc_metrics(test_logits, test.y, loss_fn, counts, ds.classes, tau),
                               step=result.epochs_run)

        # --- figures (trainer/figures.py), in a background process when a sweep leaves cores idle ---
        from trainer.evaluate import figures

        figure_args = (figures.FigureInputs(probs, test.y.cpu().numpy(), ds.classes, prep.class_counts, result.history,
                                            result.best_epoch, figures.subtitle(cfg.loss.name, cfg.resampling.name,
                                                                                run_name)),
                       _output_dir(output_dir, run_id), run_id, uri, result.epochs_run)
        if background_figures:
            figure_worker.submit(*figure_args)
        else:
            figures.draw_and_log(*figure_args)
        # --- end figures ---
        if resumed is not None and "error" in resumed.tags:
            with contextlib.suppress(MlflowException):  # already gone: nothing to tidy
                mlflow.delete_tag("error")  # the interruption it recorded is over: the run finished

    out = RunResult(run_id, final_val, final_test, result.best_epoch, result.epochs_run,
                    time.perf_counter() - start, monitor=f"val/{fit_cfg.monitor}")
    print_summary(out, run_name, uri, cfg.tracking.experiment, in_sweep=parent is not None)
    return out


def train_model(model: nn.Module, loss_fn: nn.Module, optimizer: Any, train: Tensors, val: Tensors,
                classes: list[str], fit_cfg: FitConfig, generator: Any, *, run_id: str, ckpt: Path,
                state: LoopState | None = None, stop: Callable[[], bool] = lambda: False,
                pseudo: Any = None, persist_every_s: float = 1.0,
                on_epoch: Callable[[int, dict[str, float]], None] = lambda epoch, metrics: None) -> FitResult:
    """The harness's training path (what scripts/bench.py times): trainer.loop.fit, with the checkpoint and the
    epochs' metrics handed to a background EpochWriter (checkpoint first, then one MLflow call).

    They are handed over at most every persist_every_s seconds (epochs in between go together), and always
    after the last epoch and when a signal stops training part-way: a checkpoint and an MLflow call cost about
    10 ms here, as much as a whole digits epoch. on_epoch(epoch, metrics) runs at the end of every epoch.
    """
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from trainer.train import checkpoint
    from trainer.train.loop import epoch_metrics, fit
    from trainer.train.writer import EpochWriter

    client = MlflowClient()  # the tracking URI set for this run; thread-safe, unlike the fluent API's run stack

    def log(epochs: list[tuple[int, int, dict[str, float]]]) -> None:
        client.log_batch(run_id, metrics=[Metric(k, v, ms, epoch) for epoch, ms, m in epochs for k, v in m.items()])

    writer = EpochWriter(ckpt, log, checkpoint.write)
    parts = dict(model=model, optimizer=optimizer, loss_fn=loss_fn, generator=generator)
    submitted = state.epoch if state is not None else 0  # the last epoch handed over (or logged before a resume)
    last_time = -math.inf  # the first epoch goes at once: the UI shows a run's first point without waiting
    latest: LoopState | None = None  # the state after the last epoch

    def submit(s: LoopState) -> None:
        nonlocal submitted, last_time
        epochs = [(h["epoch"], h["timestamp"], epoch_metrics(h)) for h in s.history if h["epoch"] > submitted]
        writer.submit(checkpoint.snapshot(run_id=run_id, state=s, **parts), epochs)
        submitted, last_time = s.epoch, time.monotonic()

    def save(s: LoopState, final: bool) -> None:
        nonlocal latest
        latest = s
        if final or time.monotonic() - last_time >= persist_every_s:
            submit(s)

    try:
        result = fit(model, loss_fn, optimizer, train, val, classes, fit_cfg, generator,
                     on_epoch=on_epoch, state=state, save=save, stop=stop, pseudo=pseudo)
    except search.Pruned:  # Optuna's pruner stopped training after an epoch: that epoch belongs to the record
        submit(latest)
        writer.close()
        raise
    except BaseException:
        writer.close(raise_error=False)  # keep what was handed over; the error on its way out is the one to report
        raise
    writer.close()
    return result


def posthoc_metrics(logits: torch.Tensor, target: torch.Tensor, loss_fn: nn.Module, counts: list[int],
                    classes: list[str], tau: float) -> dict[str, float]:
    """Test metrics after post-hoc logit adjustment (eval.posthoc_tau), as test/posthoc/<metric>, beside the raw
    test/<metric>: the model's test logits minus tau * log(prior of the train counts), Menon et al. (ICLR 2021)."""
    from trainer.models.losses import posthoc_adjust, predictive_logits
    from trainer.evaluate.metrics import classification_metrics

    adjusted = posthoc_adjust(predictive_logits(loss_fn, logits), counts, tau)
    return {f"test/posthoc/{k}": v for k, v in classification_metrics(adjusted, target, classes, per_class=True).items()}


def _output_dir(hydra_dir: Path | None, run_id: str) -> Path:
    """Hydra's job folder, or outputs/runs/<run id> in the working directory when run without Hydra."""
    return hydra_dir if hydra_dir is not None else Path.cwd() / "outputs" / "runs" / run_id


def print_summary(r: RunResult, run_name: str, uri: str, experiment: str, in_sweep: bool = False) -> None:
    """A short table of the final val and test metrics, the run id and how to open the UI (once per sweep, at
    its end, instead of after every job)."""
    cols = ("ce", "accuracy", "balanced_accuracy")
    lines = [f"run {run_name!r} finished: {r.epochs_run} epochs (best {r.monitor} at epoch {r.best_epoch}), "
             f"{r.seconds:.1f} s",
             f"{'':6}" + "".join(f"{c:>20}" for c in cols)]
    for split, m in (("val", r.val), ("test", r.test)):
        lines.append(f"{split:6}" + "".join(f"{m[c]:>20.4f}" for c in cols))
    lines.append(f"MLflow run id: {r.run_id} (experiment {experiment!r}, store {uri})")
    if not in_sweep:
        lines.append(f"Compare runs in the UI: {ui_command(uri)}")
    print("\n".join(lines), flush=True)


def _has_checkpoint(run_id: str, job: HydraJob) -> bool:
    """Whether the run wrote a checkpoint of its own (another run's may sit in a shared output folder)."""
    from trainer.train.checkpoint import FILENAME, owner

    return owner(_output_dir(job.output_dir, run_id) / FILENAME) == run_id


def main(cfg: DictConfig) -> RunResult:
    """Entry point for train.py: run, and turn a user error into one message and exit code 2 (single runs).

    Returns the RunResult (run id, final val and test metrics): a search's objective is read from it."""
    job = hydra_job()
    try:
        return run(cfg, job=job)
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
        handled()  # reported (a repeated Ctrl-C until here was not raised again: see trainer.interrupt)
        if job.in_launcher_worker:  # submitit and joblib learn of a failed job from an exception, not an exit
            raise RuntimeError(f"job {e}") from None
        sys.exit(e.exit_code)
    except UserError as e:
        if job.stops_on_error:  # one line and exit 2, not Hydra's traceback of the job
            which = f"the job with {job.name}: " if job.multirun and job.name else ""
            print(f"error: {which}{e}", file=sys.stderr, flush=True)
            sys.exit(2)
        log.error("%s", e)  # a launcher's worker or a search's trial: the sweep records the job as failed
        raise

