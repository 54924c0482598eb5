"""Label noise on the train split: symmetric or pair-flip, seeded."""
from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from trainer.data.types import Split


def apply(train: Split, cfg: DictConfig, num_classes: int, seed: int) -> tuple[Split, float]:
    """Flip train labels with probability cfg.rate; return the noisy split and the realised flip rate.

    symmetric: to a class drawn uniformly from the C-1 other classes.
    pairflip: to the next class, c -> (c + 1) mod C.
    """
    if cfg.name == "none" or cfg.rate == 0:
        return train, 0.0
    rng = np.random.default_rng(seed + 1)  # not the imbalance stream: noise must not depend on its draws
    flip = rng.random(len(train.y)) < cfg.rate
    y = train.y.copy()
    if cfg.name == "symmetric":
        shift = rng.integers(1, num_classes, size=len(y))  # 1..C-1: never the same class
        y[flip] = (y[flip] + shift[flip]) % num_classes
    elif cfg.name == "pairflip":
        y[flip] = (y[flip] + 1) % num_classes
    else:
        raise ValueError(f"unknown noise {cfg.name!r}")
    return Split(train.x, y), float((y != train.y).mean())
