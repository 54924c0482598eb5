"""Datasets: load a source, split it train/val/test (stratified, seeded), standardise with train statistics."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from omegaconf import DictConfig

from trainer.config import UserError


@dataclass(frozen=True)
class Split:
    """One part of a dataset: features x (N, *input_shape) and integer labels y (N,)."""

    x: np.ndarray
    y: np.ndarray

    def counts(self, num_classes: int) -> list[int]:
        return np.bincount(self.y, minlength=num_classes).tolist()


@dataclass(frozen=True)
class Dataset:
    train: Split
    val: Split
    test: Split
    classes: list[str]
    tabular: bool = False  # features to standardise with train statistics (images are not)
    unlabeled: Split | None = None  # train samples whose labels are withheld (ssl=pseudo_label)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])


def _digits(cfg: DictConfig, seed: int) -> tuple[np.ndarray, np.ndarray, list[str], bool]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    return x, d.target.astype(np.int64), [str(c) for c in d.target_names], False


def _breast_cancer(cfg: DictConfig, seed: int) -> tuple[np.ndarray, np.ndarray, list[str], bool]:
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return d.data.astype(np.float32), d.target.astype(np.int64), [str(c) for c in d.target_names], True


def _synthetic(cfg: DictConfig, seed: int) -> tuple[np.ndarray, np.ndarray, list[str], bool]:
    from sklearn.datasets import make_classification

    params = {k: v for k, v in cfg.items() if k != "name"}
    try:
        x, y = make_classification(random_state=seed, **params)
    except (ValueError, TypeError) as e:
        raise UserError(f"dataset=synthetic: make_classification rejected the settings {params}: {e}. "
                        "Adjust dataset.n_informative / n_classes / n_clusters_per_class.") from e
    return x.astype(np.float32), y.astype(np.int64), [str(c) for c in range(int(cfg.n_classes))], True


LOADERS = {"digits": _digits, "breast_cancer": _breast_cancer, "synthetic": _synthetic}


def load(cfg: DictConfig, split_cfg: DictConfig, seed: int) -> Dataset:
    """Load dataset cfg.name and split it stratified into train/val/test with the given fractions."""
    if cfg.name not in LOADERS:
        raise UserError(f"dataset={cfg.name} is unknown: choose one of {', '.join(LOADERS)}.")
    x, y, classes, tabular = LOADERS[cfg.name](cfg, seed)
    return split(x, y, classes, split_cfg.val, split_cfg.test, seed, tabular)


def split(x: np.ndarray, y: np.ndarray, classes: list[str], val: float, test: float, seed: int,
          tabular: bool = False) -> Dataset:
    """Stratified, seeded split into train/val/test fractions."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < 3:
        small = [classes[c] for c in np.flatnonzero(counts < 3)]
        raise UserError(f"class(es) {small} have fewer than 3 samples in the source data: a stratified "
                        "train/val/test split needs at least one of each class in every part.")
    idx = np.arange(len(y))
    rest, test_idx = train_test_split(idx, test_size=test, stratify=y, random_state=seed)
    train_idx, val_idx = train_test_split(rest, test_size=val / (1 - test), stratify=y[rest], random_state=seed)
    part = lambda i: Split(x[i], y[i])  # noqa: E731
    return Dataset(part(train_idx), part(val_idx), part(test_idx), classes, tabular)


def standardize(ds: Dataset) -> Dataset:
    """Scale every feature to zero mean and unit variance using statistics of the train split only."""
    mean = ds.train.x.mean(axis=0, keepdims=True)
    std = ds.train.x.std(axis=0, keepdims=True)
    std = np.where(std > 0, std, 1.0).astype(np.float32)
    scale = lambda s: replace(s, x=((s.x - mean) / std).astype(np.float32))  # noqa: E731
    return replace(ds, train=scale(ds.train), val=scale(ds.val), test=scale(ds.test),
                   unlabeled=None if ds.unlabeled is None else scale(ds.unlabeled))
