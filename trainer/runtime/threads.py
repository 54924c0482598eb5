"""How many torch CPU threads a run uses when trainer.threads is null: the job's share of the cores, and one
thread for small models.

Two threads per small run spin against other processes on a shared machine: a digits run spent 54 s of CPU
against 23 s with one thread for the same result, and its epochs swung from 0.3 to 15 s at load 10. A model
whose step is a few million multiply-adds gains nothing from a second thread (measured: scripts/bench.py
--cases contention). The count changes the floating-point result, so it is chosen once, before training, and
logged as torch.threads (scripts/reproduce.py and trainer.resume pin it).
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

# Multiply-adds per optimizer step (a forward pass of one batch) below which one thread is as fast as several.
# digits' MLP at batch 32 is 1.1 M; the bench's CNN on 28x28 at batch 256 is 1.2 G.
SMALL_STEP_MACS = 50e6


@dataclass(frozen=True)
class Choice:
    """The thread count and why: `share` cores are this job's, the model needs `macs_per_step` per step."""

    threads: int
    share: int
    source: str  # where the share comes from: affinity, SLURM_CPUS_PER_TASK, hydra.launcher.n_jobs, ...
    macs_per_step: float | None = None


def cpu_share(launcher: dict | None = None, environ: dict[str, str] | None = None) -> tuple[int, str]:
    """(cores, source) this job may use: the process's CPU affinity, narrowed by SLURM_CPUS_PER_TASK (Slurm's
    task/none plugin lets a job see every core) and by the Hydra launcher's settings: cpus_per_task (submitit),
    or cores // n_jobs (joblib; n_jobs=-1 is every core, -2 all but one, as joblib counts)."""
    environ = os.environ if environ is None else environ
    try:
        cores, source = len(os.sched_getaffinity(0)), "affinity"
    except AttributeError:  # not on Linux
        cores, source = os.cpu_count() or 1, "cpu_count"
    slurm = environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) >= 1 and int(slurm) < cores:
        cores, source = int(slurm), "SLURM_CPUS_PER_TASK"
    launcher = launcher or {}
    if isinstance(launcher.get("cpus_per_task"), int) and launcher["cpus_per_task"] >= 1:
        if launcher["cpus_per_task"] < cores:
            cores, source = launcher["cpus_per_task"], "hydra.launcher.cpus_per_task"
    elif "joblib" in str(launcher.get("_target_", "")).lower():
        n_jobs = launcher.get("n_jobs")
        n_jobs = -1 if n_jobs is None else int(n_jobs)
        jobs = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
        if jobs > 1:
            cores, source = max(1, cores // jobs), f"hydra.launcher.n_jobs={n_jobs}"
    return cores, source


def macs_per_sample(model: nn.Module, in_shape: Sequence[int], device: torch.device,
                    example: torch.Tensor | None = None) -> float:
    """Multiply-adds of one forward pass of one sample through the model's linear and convolution layers
    (weights x output positions), counted with forward hooks in eval mode on `example` (one sample of the data, (1,
    *in_shape): token ids must be ids, and a text model's cost depends on the document's length), else on zeros."""
    total = 0.0

    def count(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        positions = math.prod(output.shape[2:]) if isinstance(module, nn.modules.conv._ConvNd) else 1
        total += module.weight.numel() * positions

    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    hooks = [m.register_forward_hook(count) for m in layers]
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *in_shape, device=device) if example is None else example)
    finally:
        model.train(training)
        for h in hooks:
            h.remove()
    return total


def choose(setting: int | None, model: nn.Module, in_shape: Sequence[int], batch_size: int,
           device: torch.device, launcher: dict | None = None, pinned_by: str = "trainer.threads",
           example: torch.Tensor | None = None) -> Choice:
    """setting when given (pinned_by says by what: trainer.threads, or the run being resumed); else one thread for
    a model under SMALL_STEP_MACS per step, and the job's CPU share (cpu_share) for a larger one. On CUDA the count
    only drives host work: the share."""
    if setting is not None:
        return Choice(int(setting), int(setting), pinned_by)
    share, source = cpu_share(launcher)
    if device.type != "cpu":
        return Choice(share, share, source)
    macs = macs_per_sample(model, in_shape, device, example) * batch_size
    return Choice(1 if macs < SMALL_STEP_MACS else share, share, source, macs)
