"""Standardisation of tabular features with statistics of the train split only."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from trainer.data.types import Dataset


def standardize(ds: Dataset) -> Dataset:
    """Scale each numeric feature to zero mean and unit variance using statistics of the train split only.

    The columns in ds.numeric (all when None) are scaled; the others (one-hot categories) pass unchanged.
    """
    cols = slice(None) if ds.numeric is None else list(ds.numeric)
    mean = np.zeros((1, ds.train.x.shape[1]), np.float32)
    std = np.ones_like(mean)
    mean[:, cols] = ds.train.x[:, cols].mean(axis=0, keepdims=True)
    spread = ds.train.x[:, cols].std(axis=0, keepdims=True)
    std[:, cols] = np.where(spread > 0, spread, 1.0)
    scale = lambda s: replace(s, x=((s.x - mean) / std).astype(np.float32))  # noqa: E731
    return replace(ds, train=scale(ds.train), val=scale(ds.val), test=scale(ds.test),
                   unlabeled=None if ds.unlabeled is None else scale(ds.unlabeled))
