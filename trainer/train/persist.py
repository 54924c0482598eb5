"""The harness's training path (what scripts/bench.py times): trainer.train.loop.fit, with each epoch's checkpoint
and metrics handed to a background EpochWriter (checkpoint first, then the metrics in one call).

Epochs faster than trainer.persist_every_s are held back and handed over together; a run that fails keeps them all
the same: the state after the last completed epoch is copied into buffers reused from epoch to epoch (about 0.1 ms
for the default MLP, against 0.5 ms for a full snapshot), and a failure hands it to the writer, with the metrics of
every completed epoch, before the run ends.
"""
from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.data.ssl import PseudoLabeling
from trainer.data.types import Tensors
from trainer.errors import EndedEarly, UserError
from trainer.train import checkpoint
from trainer.train.loop import FitConfig, FitResult, LoopState, epoch_metrics, fit
from trainer.train.writer import EpochWriter

EpochRecords = list[tuple[int, int, dict[str, float]]]  # (epoch, its end in ms since 1970, its metrics)

log = logging.getLogger(__name__)


class _Buffers:
    """Tensors kept from one copy to the next: copy(tree) returns tree (dicts, lists, tuples, numbers) with each
    tensor copied into its own buffer, allocated on the first copy (or when a tensor's shape changes), all copied
    in one torch._foreach_copy_ call (a copy_ per tensor cost twice as much for Adam's state)."""

    def __init__(self) -> None:
        self._kept: list[torch.Tensor] = []

    def copy(self, tree: Any) -> Any:
        self._next, self._dst, self._src = 0, [], []
        out = self._walk(tree)
        if self._dst:
            torch._foreach_copy_(self._dst, self._src)
        return out

    def _walk(self, node: Any) -> Any:
        if isinstance(node, torch.Tensor):
            i, self._next = self._next, self._next + 1
            node = node.detach()
            if i == len(self._kept):
                self._kept.append(node.clone())
            elif (self._kept[i].shape, self._kept[i].dtype, self._kept[i].device) != (node.shape, node.dtype,
                                                                                        node.device):
                self._kept[i] = node.clone()
            else:
                self._dst.append(self._kept[i])
                self._src.append(node)
            return self._kept[i]
        if isinstance(node, dict):
            out = copy.copy(node)  # keeps a state_dict's _metadata, which load_state_dict reads
            for k, v in node.items():
                out[k] = self._walk(v)
            return out
        if isinstance(node, (list, tuple)):
            return type(node)(self._walk(v) for v in node)
        return node  # numbers, strings, None: not changed in place


def train_model(model: nn.Module, loss_fn: nn.Module, optimizer: Any, train: Tensors, val: Tensors,
                classes: list[str], fit_cfg: FitConfig, generator: Any, *, run_id: str, ckpt: Path,
                log_epochs: Callable[[EpochRecords], None], state: LoopState | None = None,
                stop: Callable[[], bool] = lambda: False, pseudo: PseudoLabeling | None = None,
                persist_every_s: float = 1.0,
                on_epoch: Callable[[int, dict[str, float]], None] = lambda epoch, metrics: None) -> FitResult:
    """fit the model, persisting its progress: each epoch's checkpoint (at ckpt, owned by run_id) is written and its
    metrics go to log_epochs on a background thread.

    They are handed over at most every persist_every_s seconds (epochs in between go together), and always after the
    last epoch, when a signal stops training part-way (stop()), when training ends early on purpose (EndedEarly,
    raised by on_epoch: an Optuna pruner) and when it fails (any other exception: the checkpoint of the last
    completed epoch and the metrics of every completed epoch; a UserError's message then says what was kept): a
    checkpoint and an MLflow call cost about 10 ms here, as much as a whole digits epoch. Whatever was handed over
    is written before this returns or raises.
    """
    writer = EpochWriter(ckpt, log_epochs, checkpoint.write)
    parts = dict(model=model, optimizer=optimizer, loss_fn=loss_fn, generator=generator)
    submitted = state.epoch if state is not None else 0  # the last epoch handed over (or logged before a resume)
    last_time = -math.inf  # the first epoch goes at once: the UI shows a run's first point without waiting
    latest: LoopState | None = None  # the state after the last epoch
    held: dict[str, Any] | None = None  # the checkpoint of the last completed epoch, when it was not handed over
    buffers = _Buffers()

    def submit(s: LoopState, payload: dict[str, Any] | None = None) -> None:
        nonlocal submitted, last_time
        epochs = [(h["epoch"], h["timestamp"], epoch_metrics(h)) for h in s.history if h["epoch"] > submitted]
        writer.submit(payload or checkpoint.snapshot(run_id=run_id, state=s, **parts), epochs)
        submitted, last_time = s.epoch, time.monotonic()

    def save(s: LoopState, final: bool) -> None:
        nonlocal latest, held
        latest = s
        if final or time.monotonic() - last_time >= persist_every_s:
            submit(s)
            held = None
        else:  # the next epoch changes the weights in place: what a failure would keep is copied now
            held = checkpoint.snapshot(run_id=run_id, state=s, copy_state=buffers.copy, **parts)

    try:
        result = fit(model, loss_fn, optimizer, train, val, classes, fit_cfg, generator,
                     on_epoch=on_epoch, state=state, save=save, stop=stop, pseudo=pseudo)
    except EndedEarly:  # stopped after an epoch on purpose: that epoch belongs to the record
        submit(latest)
        writer.close()
        raise
    except BaseException as e:
        kept = submitted
        if held is not None:
            try:
                submit(_completed(latest, held["loop"]["epoch"]), held)
                kept = submitted
            except Exception:  # noqa: BLE001 - the writer failed earlier; its error is said below
                pass
        failed = writer.close(raise_error=False)  # the error on its way out is the one to report
        if not isinstance(e, KeyboardInterrupt):  # a signal's message says what it kept itself
            _say_what_was_kept(e, kept, ckpt, failed)
        raise
    writer.close()
    return result


def _completed(s: LoopState, epoch: int) -> LoopState:
    """s as it stood after epoch (its history only grows; an epoch failed part-way changed nothing else of it)."""
    return LoopState(epoch=epoch, history=[h for h in s.history if h["epoch"] <= epoch])


def _say_what_was_kept(e: BaseException, epoch: int, ckpt: Path, writer_error: BaseException | None) -> None:
    """Add to a failed run's error what it kept, only what is true: a UserError's message (the `error:` line the
    user reads) gets a sentence; any other error a log line before its traceback."""
    if writer_error is not None:
        kept = (f"Its checkpoint and metrics could not all be written ({type(writer_error).__name__}: "
                f"{writer_error}).")
    elif epoch:
        logged = f"Epochs 1-{epoch} are logged in MLflow" if epoch > 1 else "Epoch 1 is logged in MLflow"
        # a resumed run that failed before its first new epoch has its checkpoint where the earlier attempt left it
        kept = f"{logged} and the checkpoint of epoch {epoch} is kept in {ckpt}." if ckpt.is_file() else f"{logged}."
    else:
        kept = "No epoch completed: no metrics or checkpoint were recorded."
    if isinstance(e, UserError) and e.args and isinstance(e.args[0], str):
        e.args = (f"{e.args[0]} {kept}", *e.args[1:])
    else:
        log.warning("training failed (%s): %s", type(e).__name__, kept)
