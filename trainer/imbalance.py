"""Imbalance profiles: subsample the train split to a long-tail or step class distribution."""
from __future__ import annotations

import math

import numpy as np
from omegaconf import DictConfig

from trainer.data import Split


def target_counts(counts: list[int], cfg: DictConfig) -> list[int]:
    """Per-class sample counts the profile asks for, never more than a class has.

    longtail: n_c = n_max * ratio^(-c/(C-1)) (class 0 the head, class C-1 the tail), as in CIFAR-LT.
    step: the last ceil(minority_fraction * C) classes get n_max / ratio, the others keep n_max.
    Every class keeps at least one sample.
    """
    n_max, num_classes = max(counts), len(counts)
    if cfg.name == "none":
        return list(counts)
    if cfg.name == "longtail":
        wanted = [n_max * cfg.ratio ** (-c / max(num_classes - 1, 1)) for c in range(num_classes)]
    elif cfg.name == "step":
        n_minority = math.ceil(cfg.minority_fraction * num_classes)
        wanted = [n_max / cfg.ratio if c >= num_classes - n_minority else n_max for c in range(num_classes)]
    else:
        raise ValueError(f"unknown imbalance profile {cfg.name!r}")
    return [min(have, max(1, int(w))) for have, w in zip(counts, wanted)]


def apply(train: Split, cfg: DictConfig, num_classes: int, seed: int) -> Split:
    """Subsample each class of the train split to its target count (seeded, without replacement)."""
    if cfg.name == "none":
        return train
    rng = np.random.default_rng(seed)
    wanted = target_counts(train.counts(num_classes), cfg)
    keep = np.concatenate([
        rng.choice(np.flatnonzero(train.y == c), size=n, replace=False) for c, n in enumerate(wanted)
    ])
    keep.sort()
    return Split(train.x[keep], train.y[keep])
