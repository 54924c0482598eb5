"""The training loop: device-resident tensors indexed per batch, one host read per epoch, early stopping."""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainer.data import ssl
from trainer.data.types import Tensors
from trainer.errors import UserError
from trainer.evaluate.metrics import lower_is_better
from trainer.evaluate.scores import evaluate, predict
from trainer.models.losses import predictive_logits
from trainer.models.regularization import penalty
from trainer.runtime import progress

log = logging.getLogger(__name__)

# An epoch line in the log costs about 0.1 ms (a formatted record and a write): 2 to 4 % of a 5 ms digits epoch.
# Epochs are logged at most this often, and always the first and the last (or the one stopped).
LOG_EVERY_S = 1.0


@dataclass(frozen=True)
class FitConfig:
    epochs: int
    batch_size: int
    patience: int | None = None  # epochs without an improvement of `monitor` before stopping; None: never stop early
    min_delta: float = 0.0
    monitor: str = "balanced_ce"  # the val metric that picks the best epoch and stops early: ce, balanced_ce, loss, ece
    #                      (lower is better) or accuracy, balanced_accuracy, macro_f1 (higher is better)
    steps: int | None = None  # a budget of optimizer steps instead of `epochs` (the last epoch may be partial)
    keep: str = "best"  # the weights fit ends with: "best" (the epoch `monitor` liked best) or "last"
    l1: float = 0.0
    l2: float = 0.0
    grad_clip: float | None = None  # max total gradient norm; None: no clipping
    balanced_batches: bool = False  # class-balanced draws with replacement instead of a shuffle (balanced_sampler)
    progress: bool | None = None  # None: a progress bar only when stderr is a terminal


@dataclass
class FitResult:
    epochs_run: int
    best_epoch: int  # the epoch the monitored metric liked best
    best_val_ce: float
    stopped_early: bool
    steps: int = 0  # optimizer steps taken, over every attempt of a resumed run
    kept_epoch: int = 0  # the epoch whose weights the model ends with: best_epoch with patience, else the last
    seconds: float = 0.0  # training time, summed over every attempt of a resumed run
    interrupted: bool = False  # stop() turned true: the last state was saved, the best weights not restored
    history: list[dict[str, float]] = field(default_factory=list)  # each epoch's metrics, "epoch", "timestamp"


# --- state that a checkpoint saves (trainer.train.checkpoint); everything fit needs to continue bit-identically ---
@dataclass
class EpochProgress:
    """How far the current epoch got, so that an epoch stopped part-way by a signal continues where it was."""

    generator_state: torch.Tensor  # the batch-order generator at the epoch's start: re-creates its order
    steps: int = 0  # optimizer steps done
    values: torch.Tensor | None = None  # (steps, 2): each done step's batch-mean objective and plain ce
    pseudo: tuple[torch.Tensor, torch.Tensor] | None = None  # ssl=pseudo_label: (pool indices, labels) of the epoch


@dataclass
class LoopState:
    """Where fit stands. fit updates it after every epoch; trainer.train.checkpoint saves and restores it."""

    epoch: int = 0  # last completed epoch
    steps: int = 0  # optimizer steps of the completed epochs
    best_score: float = math.inf  # the best val `monitor` so far, negated where higher is better
    best_epoch: int = 0
    best_weights: dict[str, torch.Tensor] | None = None
    wait: int = 0  # epochs since the monitored metric last improved
    done: bool = False  # the last epoch ran, or early stopping fired
    history: list[dict[str, float]] = field(default_factory=list)  # each epoch's metrics, "epoch", "timestamp"
    progress: EpochProgress | None = None  # the epoch in progress when a signal stopped it part-way
    seconds: float = 0.0
# --- end of checkpointed state ---


def epoch_metrics(entry: dict[str, float]) -> dict[str, float]:
    """The metrics of a history entry, without its "epoch" and "timestamp" (ms since the epoch, at its end)."""
    return {k: v for k, v in entry.items() if k not in ("epoch", "timestamp")}


class NonFiniteLoss(UserError):
    def __init__(self, epoch: int, step: int) -> None:
        super().__init__(
            f"the training loss became non-finite (NaN or inf) at epoch {epoch}, step {step}. Lower optim.lr, "
            "check the loss settings, or try trainer.grad_clip.")


# --- which samples an epoch trains on: the per-epoch order, and pseudo-labels between epochs -------------------

def epoch_indices(y: torch.Tensor, generator: torch.Generator, balanced: bool = False) -> torch.Tensor:
    """This epoch's order of train indices (on the CPU): a shuffle, or with balanced=True len(y) class-balanced draws.

    The balanced draws come from torch's WeightedRandomSampler, each sample weighted 1 / (its class's count) and
    drawn with replacement: every class is equally likely at every position, and no sample is materialised.
    """
    if not balanced:
        return torch.randperm(len(y), generator=generator)
    from torch.utils.data import WeightedRandomSampler

    weights = (1.0 / torch.bincount(y).double())[y].cpu()
    return torch.tensor(list(WeightedRandomSampler(weights, len(y), replacement=True, generator=generator)))


def pseudo_labels(model: nn.Module, pseudo: ssl.PseudoLabeling | None,
                  epoch: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """ssl=pseudo_label, after the warm-up: the pool samples the current model labels with confidence above the
    threshold (indices into the pool, and their labels); None without ssl or during the warm-up."""
    if pseudo is None or epoch <= pseudo.warmup_epochs:
        return None
    return ssl.confident(predict(model, pseudo.x), pseudo.threshold)


def epoch_train_set(train: Tensors, pseudo: ssl.PseudoLabeling | None,
                    chosen: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[Tensors, dict[str, float]]:
    """The train set of this epoch: the labeled train tensors plus the chosen pseudo-labeled samples; their
    count as a metric when ssl is on."""
    if pseudo is None:
        return train, {}
    if chosen is None:
        return train, {"ssl/pseudo_labels": 0.0}
    idx, labels = chosen
    return Tensors(torch.cat([train.x, pseudo.x[idx]]), torch.cat([train.y, labels])), {
        "ssl/pseudo_labels": float(len(idx))}

# ----------------------------------------------------------------------------------------------------------------


def train_epoch(model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer, data: Tensors,
                cfg: FitConfig, generator: torch.Generator, epoch: int, progress: EpochProgress | None = None,
                stop: Callable[[], bool] = lambda: False, max_steps: int | None = None) -> dict[str, float] | None:
    """One pass over the shuffled train tensors, or its first max_steps batches; returns train/loss and train/ce
    (one host read).

    progress says where the epoch starts (a fresh one by default) and holds the done steps' values when the
    epoch ends; when stop() turns true the epoch ends after the current step and train_epoch returns None.
    """
    model.train()
    n, bs = len(data.y), cfg.batch_size
    p = progress or EpochProgress(generator.get_state())
    generator.set_state(p.generator_state)
    perm = epoch_indices(data.y, generator, cfg.balanced_batches).to(data.y.device, non_blocking=True)
    ce_is_loss = getattr(loss_fn, "is_plain_ce", False)  # plain cross-entropy: no second pass for train/ce
    # Each step's values stay on the device and are read once at the end of the epoch: no host sync per step.
    losses: list[torch.Tensor] = []
    ces: list[torch.Tensor] = []
    stopped = False
    end = n if max_steps is None else min(n, max_steps * bs)
    for step, start in enumerate(range(p.steps * bs, end, bs), start=p.steps):
        idx = perm[start:start + bs]
        xb, yb = data.x[idx], data.y[idx]
        logits = model(xb)
        loss = loss_fn(logits, yb)
        ces.append(loss.detach() if ce_is_loss else
                   F.cross_entropy(predictive_logits(loss_fn, logits.detach().float()), yb))
        pen = penalty(model, cfg.l1, cfg.l2)
        if pen is not None:
            loss = loss + pen
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        losses.append(loss.detach())
        p.steps = step + 1
        if stop():
            stopped = True
            break
    if losses:
        new = torch.stack([torch.stack(losses), torch.stack(ces)], dim=1).double()
        p.values = new if p.values is None else torch.cat([p.values, new])
    return None if stopped else _epoch_means(p.values, n, bs, epoch)


def _epoch_means(values: torch.Tensor, n: int, batch_size: int, epoch: int) -> dict[str, float]:
    """train/loss and train/ce from the steps' batch means, weighted by batch size, over the samples the steps saw
    (all n of a full epoch, fewer in an epoch a step budget ends); NonFiniteLoss naming the first step whose
    objective was not finite. The whole vector is reduced at once, so an epoch resumed part-way sums exactly as an
    uninterrupted one."""
    steps = len(values)
    starts = torch.arange(steps, dtype=torch.float64, device=values.device) * batch_size
    sizes = (n - starts).clamp(max=batch_size)
    bad = torch.where(torch.isfinite(values[:, 0]), steps, torch.arange(steps, device=values.device)).min()
    loss_sum, ce_sum, seen, first_bad = torch.cat([(values * sizes[:, None]).sum(0), sizes.sum()[None],
                                                   bad.double()[None]]).tolist()
    if first_bad < steps:
        raise NonFiniteLoss(epoch, int(first_bad))
    return {"loss": loss_sum / seen, "ce": ce_sum / seen}


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimizer steps of one pass over n samples in batches of batch_size (the last batch may be smaller)."""
    return max(1, math.ceil(n / batch_size))


def planned_epochs(cfg: FitConfig, n: int) -> int:
    """The epochs fit runs unless it stops early: cfg.epochs, or with a step budget the passes over n train samples
    it takes (exact, except where pseudo-labels grow the train set between epochs)."""
    return cfg.epochs if cfg.steps is None else math.ceil(cfg.steps / steps_per_epoch(n, cfg.batch_size))


def fit(model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer, train: Tensors, val: Tensors,
        classes: list[str], cfg: FitConfig, generator: torch.Generator,
        on_epoch: Callable[[int, dict[str, float]], None], state: LoopState | None = None,
        save: Callable[[LoopState, bool], None] = lambda state, final: None,
        stop: Callable[[], bool] = lambda: False, pseudo: ssl.PseudoLabeling | None = None) -> FitResult:
    """Train for cfg.epochs, or cfg.steps optimizer steps (the last epoch then stops part-way), or until val
    `cfg.monitor` has not improved for cfg.patience epochs (None: never stop early); end with the weights of the
    epoch the monitor liked best (cfg.keep="best") or of the last epoch trained (cfg.keep="last").

    on_epoch(epoch, metrics) receives, once per epoch (1-based), train/ and val/ metrics, lr and train/steps (the
    optimizer steps so far; and ssl/pseudo_labels when pseudo, the unlabeled pool of ssl=pseudo_label, is given).
    state: where to continue (a restored checkpoint); by default from the start. save(state, final) runs after
    every epoch, before on_epoch, so that a logged epoch can have its checkpoint; final is true when fit is
    about to return (the budget is spent, early stopping fired, or stop() turned true). When stop() turns true
    mid-epoch, fit saves the state after the current step and returns with interrupted=True.
    """
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    s = state or LoopState()
    bar = tqdm(desc="epochs", unit="ep", initial=s.epoch, total=planned_epochs(cfg, len(train.y)),
               disable=(None if cfg.progress is None else not cfg.progress))
    # The epoch lines go to the job's log (train.log); on a terminal, through tqdm so that the bar stays whole.
    with logging_redirect_tqdm() if not bar.disable else contextlib.nullcontext():
        try:
            return _fit_epochs(model, loss_fn, optimizer, train, val, classes, cfg, generator, on_epoch, s, save,
                               stop, pseudo, bar)
        finally:
            bar.close()


def _fit_epochs(model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer, train: Tensors,
                val: Tensors, classes: list[str], cfg: FitConfig, generator: torch.Generator,
                on_epoch: Callable[[int, dict[str, float]], None], s: LoopState,
                save: Callable[[LoopState, bool], None], stop: Callable[[], bool],
                pseudo: ssl.PseudoLabeling | None, bar: Any) -> FitResult:
    logging_epochs = log.isEnabledFor(logging.INFO)
    keep_best = cfg.keep == "best"
    planned = planned_epochs(cfg, len(train.y))
    last_line = -math.inf
    epoch = s.epoch
    while not s.done:
        epoch += 1
        started = time.perf_counter()
        if hasattr(loss_fn, "set_epoch"):  # losses that change with the epoch (ldam's deferred re-weighting)
            loss_fn.set_epoch(epoch)
        if s.progress is None:
            s.progress = EpochProgress(generator.get_state(), pseudo=pseudo_labels(model, pseudo, epoch))
        data, ssl_metrics = epoch_train_set(train, pseudo, s.progress.pseudo)
        budget = None if cfg.steps is None else cfg.steps - s.steps  # steps left, fixed at the epoch's start
        tr = train_epoch(model, loss_fn, optimizer, data, cfg, generator, epoch, s.progress, stop, budget)
        if tr is None:
            s.seconds += time.perf_counter() - started
            save(s, True)
            return _result(s, cfg, interrupted=True)
        va = evaluate(model, val, loss_fn, classes, cfg.l1, cfg.l2)
        s.epoch, s.steps, s.progress = epoch, s.steps + s.progress.steps, None
        metrics = ({f"train/{k}": v for k, v in tr.items()} | {f"val/{k}": v for k, v in va.items()} | ssl_metrics
                   | {"lr": optimizer.param_groups[0]["lr"], "train/steps": float(s.steps)})
        s.history.append({"epoch": epoch, "timestamp": int(time.time() * 1000)} | metrics)
        score = va[cfg.monitor] if lower_is_better(cfg.monitor) else -va[cfg.monitor]
        if score < s.best_score - cfg.min_delta:
            s.best_score, s.best_epoch, s.wait = score, epoch, 0
            if keep_best:
                s.best_weights = copy.deepcopy(model.state_dict())
        else:
            s.wait += 1
        spent = epoch >= cfg.epochs if cfg.steps is None else s.steps >= cfg.steps
        s.done = spent or (cfg.patience is not None and s.wait >= cfg.patience)
        s.seconds += time.perf_counter() - started
        interrupted = not s.done and stop()
        save(s, s.done or interrupted)
        on_epoch(epoch, metrics)
        now = time.perf_counter()
        if logging_epochs and (now - last_line >= LOG_EVERY_S or s.done or interrupted):
            log.info("%s", progress.epoch_line(epoch, planned, metrics, now - started, cfg.steps, f"val/{cfg.monitor}"))
            last_line = now
        bar.update(1)
        bar.set_postfix({"val/ce": f"{va['ce']:.4f}", "val/bal_acc": f"{va['balanced_accuracy']:.3f}"})
        if interrupted:
            return _result(s, cfg, interrupted=True)
    if keep_best and s.best_weights is not None:
        model.load_state_dict(s.best_weights)
    return _result(s, cfg)


def _result(s: LoopState, cfg: FitConfig, interrupted: bool = False) -> FitResult:
    best_ce = next((h["val/ce"] for h in s.history if h["epoch"] == s.best_epoch), math.inf)
    spent = s.epoch >= cfg.epochs if cfg.steps is None else s.steps >= cfg.steps
    kept = s.best_epoch if cfg.keep == "best" and s.best_weights is not None else s.epoch
    return FitResult(epochs_run=s.epoch, best_epoch=s.best_epoch, best_val_ce=best_ce,
                     stopped_early=s.done and not spent, steps=s.steps, kept_epoch=kept, seconds=s.seconds,
                     interrupted=interrupted, history=s.history)
