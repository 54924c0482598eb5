"""The per-epoch cases: the harness's training path against the bare loop on the same model, data and optimizer.

Each case builds one model, data and optimizer and times, interleaved (A B A B ...), the harness
(trainer.train.persist.train_model: trainer.train.loop.fit with its per-epoch checkpoint and MLflow call) and the bare
loop (benchmarks.bare_loop: shuffled slices of device tensors, cross-entropy, Adam; a val pass computing CE and
accuracy). Both start from the same weights; the figure is the median seconds per epoch over the repeats.
"""
from __future__ import annotations

import copy
import functools
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from benchmarks.bare_loop import bare_epochs
from benchmarks.config import compose
from benchmarks.repo import ROOT
from benchmarks.table import Row
from benchmarks.workload import build_model, synthetic
from trainer.data.prepare import prepare
from trainer.data.types import Tensors
from trainer.models.accel import accelerate
from trainer.models.losses import build_loss
from trainer.models.optim import build_optimizer
from trainer.tracking.record import log_epochs
from trainer.train.loop import FitConfig
from trainer.train.persist import train_model

# The goal of each case: the harness's median epoch at most this many times the bare loop's.
GOALS = {"overhead": 1.10, "compute": 1.10, "digits": 1.30}


@dataclass
class Setup:
    """The pieces one per-epoch case needs, built once."""

    model_name: str
    x: torch.Tensor  # tensors on the device
    y: torch.Tensor
    xv: torch.Tensor
    yv: torch.Tensor
    classes: list[str]
    batch_size: int
    vocabulary: object = None  # text models: the Vocabulary of the token ids


def harness_epochs(model, x, y, xv, yv, classes: list[str], batch_size: int, epochs: int, seed: int,
                   workdir: Path) -> tuple[list[float], float]:
    """The trainer's own path for the same model and data: seconds of each epoch (from one epoch's end to the
    next), and the rest of the call (set-up, and the final checkpoint and log it waits for) as a fixed cost."""
    loss_fn = build_loss(OmegaConf.create({"name": "plain"}), [1] * len(classes)).to(y.device)
    optimizer = build_optimizer(OmegaConf.load(ROOT / "conf" / "optim" / "adam.yaml"), model)
    cfg = FitConfig(epochs=epochs, batch_size=batch_size, patience=None, progress=False)
    ends: list[float] = []
    with mlflow.start_run() as active:
        start = time.perf_counter()
        train_model(model, loss_fn, optimizer, Tensors(x, y), Tensors(xv, yv), classes, cfg,
                    torch.Generator().manual_seed(seed), run_id=active.info.run_id,
                    ckpt=workdir / active.info.run_id / "checkpoint.pt",
                    log_epochs=functools.partial(log_epochs, MlflowClient(), active.info.run_id),
                    on_epoch=lambda epoch, metrics: ends.append(time.perf_counter()))
        total = time.perf_counter() - start
    return [b - a for a, b in zip(ends, ends[1:])], total  # epochs from the second: the first holds the set-up


def per_epoch_case(case: str, what: str, setup: Setup, epochs: int, repeats: int, workdir: Path,
                   precision: str = "fp32") -> Row:
    """Interleave harness and bare runs of `epochs` epochs, `repeats` times after a warm-up of each; the median
    epoch (the first of each run left out) of each, and the harness's fixed cost per call."""
    in_shape, n_cls = tuple(setup.x.shape[1:]), len(setup.classes)
    # Both loops get the same model: with --precision bf16 (or channels-last convolutions on CUDA) that is the
    # trainer's Accelerated wrapper, as a careful hand-written loop would autocast too.
    base = accelerate(build_model(setup.model_name, in_shape, n_cls, seed=0, vocabulary=setup.vocabulary)
                      .to(setup.x.device),
                      OmegaConf.create({"precision": precision}), setup.x.device)
    h_times, b_times, fixed = [], [], []
    for r in range(repeats + 1):  # round 0 warms up caches, allocator and lazy imports of both
        n = 2 if r == 0 else epochs
        h, h_total = harness_epochs(copy.deepcopy(base), setup.x, setup.y, setup.xv, setup.yv, setup.classes,
                                    setup.batch_size, n, r, workdir)
        b = bare_epochs(copy.deepcopy(base), setup.x, setup.y, setup.xv, setup.yv, setup.batch_size, n, r)
        if r:
            h_times += h
            b_times += b[1:]
            fixed.append(h_total - statistics.median(b) * n)  # all the harness spends beyond n bare epochs
    what = what if precision == "fp32" else f"{what}, {precision}"
    return Row(case, what, statistics.median(h_times), statistics.median(b_times), goal=f"<= {GOALS[case]:.2f}",
               extra={"fixed_s_per_call": statistics.median(fixed)})


def _split(x: torch.Tensor, y: torch.Tensor, device: str, val_fraction: float = 0.1):
    """(x, y, x_val, y_val) on the device: the first val_fraction of the samples for validation."""
    n_val = int(len(y) * val_fraction)
    return (x[n_val:].to(device), y[n_val:].to(device), x[:n_val].to(device), y[:n_val].to(device))


def case_overhead(device: str, epochs: int, repeats: int, workdir: Path, scale: float = 1.0,
                  precision: str = "fp32") -> list[Row]:
    """Case 1: logreg and mlp on synthetic 200,000 x 64, 10 classes, batch 512 (overhead-bound)."""
    x, y = synthetic(int(200_000 * scale), 64, 10)
    x, y, xv, yv = _split(x, y, device)
    classes = [str(c) for c in range(10)]
    return [per_epoch_case("overhead", f"{m}, synthetic {len(x) + len(xv):,} x 64, batch 512",
                           Setup(m, x, y, xv, yv, classes, 512), epochs, repeats, workdir, precision)
            for m in ("logreg", "mlp")]


def case_compute(device: str, epochs: int, repeats: int, workdir: Path, scale: float = 1.0,
                 precision: str = "fp32") -> list[Row]:
    """Case 2: cnn on synthetic 60,000 x 1 x 28 x 28, batch 256 (compute-bound)."""
    x, y = synthetic(int(60_000 * scale), (1, 28, 28), 10)
    x, y, xv, yv = _split(x, y, device)
    return [per_epoch_case("compute", f"cnn, synthetic {len(x) + len(xv):,} x 1x28x28, batch 256",
                           Setup("cnn", x, y, xv, yv, [str(c) for c in range(10)], 256), epochs, repeats, workdir,
                           precision)]


def case_resnet(device: str, epochs: int, repeats: int, workdir: Path, scale: float = 1.0,
                precision: str = "fp32") -> list[Row]:
    """GPU only: resnet18 on synthetic 3 x 32 x 32 (CIFAR-sized), batch 256."""
    x, y = synthetic(int(50_000 * scale), (3, 32, 32), 10)
    x, y, xv, yv = _split(x, y, device)
    return [per_epoch_case("compute", f"resnet18, synthetic {len(x) + len(xv):,} x 3x32x32, batch 256",
                           Setup("resnet18", x, y, xv, yv, [str(c) for c in range(10)], 256), epochs, repeats,
                           workdir, precision)]


def case_digits(device: str, epochs: int, repeats: int, workdir: Path) -> list[Row]:
    """Case 3: the default digits run (long-tailed train split, mlp, batch 32): per epoch, and the run's fixed cost."""
    cfg = compose([f"trainer.device={device}"])
    ds = prepare(cfg).dataset
    # As long as the default run (trainer.epochs, 50): its epochs take about 10 ms, so in a shorter one the first
    # epoch's hand-over to the writer (one checkpoint and one MLflow call, done once a run) would be most of it.
    epochs = max(epochs, int(cfg.trainer.epochs))
    t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
    setup = Setup("mlp", t(ds.train.x), t(ds.train.y), t(ds.val.x), t(ds.val.y), ds.classes, 32)
    return [per_epoch_case("digits", "the default run: digits long-tail 50, mlp, batch 32", setup, epochs, repeats,
                           workdir)]
