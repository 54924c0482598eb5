"""Standardisation with statistics of the real train rows only (before resampling makes any): tabular features
scaled here, image pixels normalised on the device (trainer.models.inputs) with the channel statistics taken here."""
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


def channel_stats(x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of images (N, C, H, W), accumulated in float64 by chunks."""
    total = np.zeros(x.shape[1])
    squares = np.zeros(x.shape[1])
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk].astype(np.float64)
        total += part.sum(axis=(0, 2, 3))
        squares += np.square(part).sum(axis=(0, 2, 3))
    n = len(x) * x.shape[2] * x.shape[3]
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean ** 2, 0.0))
    return mean, np.where(std > 0, std, 1.0)
