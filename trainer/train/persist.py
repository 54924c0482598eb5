"""The harness's training path (what scripts/bench.py times): trainer.train.loop.fit, with each epoch's checkpoint
and metrics handed to a background EpochWriter (checkpoint first, then the metrics in one call)."""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from trainer.data.ssl import PseudoLabeling
from trainer.data.types import Tensors
from trainer.errors import EndedEarly
from trainer.train import checkpoint
from trainer.train.loop import FitConfig, FitResult, LoopState, epoch_metrics, fit
from trainer.train.writer import EpochWriter

EpochRecords = list[tuple[int, int, dict[str, float]]]  # (epoch, its end in ms since 1970, its metrics)


def train_model(model: nn.Module, loss_fn: nn.Module, optimizer: Any, train: Tensors, val: Tensors,
                classes: list[str], fit_cfg: FitConfig, generator: Any, *, run_id: str, ckpt: Path,
                log_epochs: Callable[[EpochRecords], None], state: LoopState | None = None,
                stop: Callable[[], bool] = lambda: False, pseudo: PseudoLabeling | None = None,
                persist_every_s: float = 1.0,
                on_epoch: Callable[[int, dict[str, float]], None] = lambda epoch, metrics: None) -> FitResult:
    """fit the model, persisting its progress: each epoch's checkpoint (at ckpt, owned by run_id) is written and its
    metrics go to log_epochs on a background thread.

    They are handed over at most every persist_every_s seconds (epochs in between go together), and always after the
    last epoch, when a signal stops training part-way (stop()), and when training ends early on purpose (EndedEarly,
    raised by on_epoch: an Optuna pruner): a checkpoint and an MLflow call cost about 10 ms here, as much as a whole
    digits epoch. Whatever was handed over is written before this returns or raises.
    """
    writer = EpochWriter(ckpt, log_epochs, checkpoint.write)
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
    except EndedEarly:  # stopped after an epoch on purpose: that epoch belongs to the record
        submit(latest)
        writer.close()
        raise
    except BaseException:
        writer.close(raise_error=False)  # keep what was handed over; the error on its way out is the one to report
        raise
    writer.close()
    return result
