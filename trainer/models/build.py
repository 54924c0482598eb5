"""The parts a run trains, built from its config and data: the network (behind its on-device input stage and speed
wrappers), the loss from the class counts the model trains on, the optimizer, and the torch thread count."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from trainer.data.types import Dataset
from trainer.models.accel import accelerate
from trainer.models.batches import check_batches
from trainer.models.inputs import with_inputs
from trainer.models.losses import build_loss, loss_weights
from trainer.models.networks import build_network
from trainer.models.optim import build_optimizer
from trainer.runtime import threads
from trainer.words import approximately, counted

log = logging.getLogger(__name__)


@dataclass
class Built:
    model: nn.Module  # on the device, with its input stage and speed wrappers
    loss_fn: nn.Module
    optimizer: Any
    threads: threads.Choice  # torch's CPU thread count for this run, and why

    @property
    def loss_weights(self) -> dict[str, list[float]]:
        """The class weights, alphas, offsets or margins the loss uses."""
        return loss_weights(self.loss_fn)


def typical_input(ds: Dataset, device: torch.device) -> torch.Tensor:
    """One train sample (1, *input_shape) to size the model's work by: for text, a document of median length (a
    text model's cost grows with it), else the first."""
    row = 0
    if ds.vocabulary is not None:
        lengths = (ds.train.x != ds.vocabulary.pad_id).sum(axis=1)
        row = int(np.argsort(lengths, kind="stable")[len(lengths) // 2])
    return torch.as_tensor(ds.train.x[row:row + 1], device=device)


def build(cfg: DictConfig, ds: Dataset, class_counts: Sequence[int], device: torch.device,
          launcher: dict | None = None, pinned_threads: int | None = None,
          pinned_by: str = "trainer.threads") -> Built:
    """The model, loss and optimizer of cfg for ds, initialised from cfg.seed; class_counts are those the model
    trains on (after resampling). The thread count (trainer.runtime.threads.choose: pinned_threads when given, else
    from the model's size and the job's CPU share under launcher) is set before the speed wrappers are applied,
    since torch.compile may specialise on it."""
    torch.manual_seed(int(cfg.seed))
    model = build_network(cfg.model, ds.input_shape, ds.num_classes, cfg.regularization.dropout, ds.vocabulary)
    model = with_inputs(model, ds, cfg.dataset).to(device)  # images: normalised (and augmented) on the device
    cpu = threads.choose(pinned_threads, model, ds.input_shape, cfg.trainer.batch_size, device, launcher, pinned_by,
                         example=typical_input(ds, device))
    torch.set_num_threads(cpu.threads)
    log.info("torch.threads=%d (%s from %s%s)", cpu.threads, counted(cpu.share, "core"), cpu.source,
             "" if cpu.macs_per_step is None else f", {approximately(cpu.macs_per_step)} multiply-adds per step")
    check_batches(model, torch.as_tensor(ds.train.x[:1], device=device), len(ds.train.y), cfg.trainer.batch_size,
                  cfg.model.name)  # before the speed wrappers: one eager forward pass of one sample
    model = accelerate(model, cfg.trainer, device)  # bf16, channels-last, torch.compile when asked
    loss_fn = build_loss(cfg.loss, class_counts).to(device)
    return Built(model, loss_fn, build_optimizer(cfg.optim, model), cpu)
