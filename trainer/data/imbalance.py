"""Imbalance profiles: subsample the train split to a long-tail or step class distribution.

On an imbalanced train split (largest/smallest class above ALREADY_IMBALANCED) classes are ranked by their real
counts (the most frequent is the head, ties by class index), so a profile deepens the data's own imbalance and never
inverts it. On a balanced split the rank is the class index, as in CIFAR-LT: the few samples by which a seeded
stratified split makes classes differ must not decide which class becomes the tail (it would change with the seed).
"""
from __future__ import annotations

import logging
import math

import numpy as np
from omegaconf import DictConfig

from trainer.data.types import Split

log = logging.getLogger(__name__)

# A train split whose largest class has more than this many times the samples of its smallest is already
# imbalanced: a profile on top of it ranks classes by frequency, compounds the two, and the run says so in one line.
ALREADY_IMBALANCED = 1.5


def is_imbalanced(counts: list[int]) -> bool:
    present = [n for n in counts if n > 0]
    return bool(present) and max(present) > ALREADY_IMBALANCED * min(present)


def frequency_ranks(counts: list[int]) -> list[int]:
    """The rank of each class, 0 for the head: by count, most frequent first (ties by class index), when the counts
    are imbalanced; by class index when they are balanced (CIFAR-LT's convention)."""
    if not is_imbalanced(counts):
        return list(range(len(counts)))
    order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
    ranks = [0] * len(counts)
    for rank, c in enumerate(order):
        ranks[c] = rank
    return ranks


def target_counts(counts: list[int], cfg: DictConfig) -> list[int]:
    """Per-class sample counts the profile asks for, never more than a class has.

    With r the class's rank (frequency_ranks: 0 the head, C-1 the tail):
    longtail: n = n_max * ratio^(-r/(C-1)), the exponential profile of CIFAR-LT (Cui et al., CVPR 2019).
    step: the ceil(minority_fraction * C) classes of highest rank get n_max / ratio, the others keep n_max.
    Every class keeps at least one sample.
    """
    n_max, num_classes = max(counts), len(counts)
    if cfg.name == "none":
        return list(counts)
    ranks = frequency_ranks(counts)
    if cfg.name == "longtail":
        wanted = [n_max * cfg.ratio ** (-r / max(num_classes - 1, 1)) for r in ranks]
    elif cfg.name == "step":
        n_minority = math.ceil(cfg.minority_fraction * num_classes)
        wanted = [n_max / cfg.ratio if r >= num_classes - n_minority else n_max for r in ranks]
    else:
        raise ValueError(f"unknown imbalance profile {cfg.name!r}")
    return [min(have, max(1, int(w))) for have, w in zip(counts, wanted)]


def apply(train: Split, cfg: DictConfig, num_classes: int, seed: int) -> Split:
    """Subsample each class of the train split to its target count (seeded, without replacement)."""
    if cfg.name == "none":
        return train
    counts = train.counts(num_classes)
    if is_imbalanced(counts):
        present = [n for n in counts if n > 0]
        log.warning("imbalance=%s on a train split that is already imbalanced (largest/smallest class %d/%d): the "
                    "profile ranks classes by their counts and subsamples on top of that; imbalance=none keeps the "
                    "data as it is", cfg.name, max(present), min(present))
    rng = np.random.default_rng(seed)
    wanted = target_counts(counts, cfg)
    keep = np.concatenate([
        rng.choice(np.flatnonzero(train.y == c), size=n, replace=False) for c, n in enumerate(wanted)
    ])
    keep.sort()
    return Split(train.x[keep], train.y[keep])
