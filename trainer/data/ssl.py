"""Semi-supervised self-training: withhold most train labels, then pseudo-label confident predictions each epoch."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import DictConfig

from trainer.data.types import Split


def withhold_labels(train: Split, cfg: DictConfig, num_classes: int, seed: int) -> tuple[Split, Split | None]:
    """Keep cfg.labeled_fraction of each class's train samples labeled (at least one each), seeded.

    Returns (labeled, unlabeled); unlabeled is None for ssl=none. Its y holds the withheld labels, which the
    trainer never reads (kept so tests and diagnostics can compare pseudo-labels with them).
    """
    if cfg.name == "none":
        return train, None
    rng = np.random.default_rng(seed + 2)  # its own stream: the labeled subset must not depend on noise draws
    keep = []
    for c in range(num_classes):
        members = np.flatnonzero(train.y == c)
        if len(members):
            n = max(1, round(cfg.labeled_fraction * len(members)))
            keep.append(rng.choice(members, size=n, replace=False))
    labeled = np.zeros(len(train.y), dtype=bool)
    labeled[np.concatenate(keep)] = True
    return Split(train.x[labeled], train.y[labeled]), Split(train.x[~labeled], train.y[~labeled])


@dataclass(frozen=True)
class PseudoLabeling:
    """The unlabeled pool on the training device, and when and how confidently to label it."""

    x: torch.Tensor
    warmup_epochs: int
    threshold: float


def confident(logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the rows whose top softmax probability exceeds threshold, and their predicted classes."""
    top, label = logits.float().softmax(dim=1).max(dim=1)
    idx = torch.nonzero(top > threshold).squeeze(1)
    return idx, label[idx]
