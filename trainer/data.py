"""Datasets: load a source, split it train/val/test (stratified, seeded), standardise with train statistics.

The loaders of files (torchvision's datasets, image folders, CSV and parquet tables) live in trainer.vision and
trainer.tables and are imported only when chosen, so the bundled datasets start without torchvision or pandas.
"""
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
    images: bool = False  # pixels (N, C, H, W) on the 0..255 scale, normalised on the device per batch
    numeric: tuple[int, ...] | None = None  # tabular: the columns to standardise (one-hot ones are not); None: all

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])


@dataclass(frozen=True)
class Source:
    """What a loader returns: all labelled data (or the train part when the dataset ships its own test set)."""

    x: np.ndarray
    y: np.ndarray
    classes: list[str]
    tabular: bool = False
    images: bool = False
    numeric: tuple[int, ...] | None = None
    test: Split | None = None  # the dataset's official test split; None: a stratified one is carved out


def _digits(cfg: DictConfig, seed: int) -> Source:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    return Source(x, d.target.astype(np.int64), [str(c) for c in d.target_names])


def _breast_cancer(cfg: DictConfig, seed: int) -> Source:
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return Source(d.data.astype(np.float32), d.target.astype(np.int64), [str(c) for c in d.target_names], True)


def _synthetic(cfg: DictConfig, seed: int) -> Source:
    from sklearn.datasets import make_classification

    params = {k: v for k, v in cfg.items() if k != "name"}
    try:
        x, y = make_classification(random_state=seed, **params)
    except (ValueError, TypeError) as e:
        raise UserError(f"dataset=synthetic: make_classification rejected the settings {params}: {e}. "
                        "Adjust dataset.n_informative / n_classes / n_clusters_per_class.") from e
    return Source(x.astype(np.float32), y.astype(np.int64), [str(c) for c in range(int(cfg.n_classes))], True)


def _torchvision(cfg: DictConfig, seed: int) -> Source:
    from trainer.vision import load_torchvision

    return load_torchvision(cfg.name, cfg.root, cfg.download)


def _image_folder(cfg: DictConfig, seed: int) -> Source:
    from trainer.vision import load_image_folder

    return load_image_folder(cfg.path, cfg.image_size, cfg.grayscale)


def _table(cfg: DictConfig, seed: int) -> Source:
    from trainer.tables import load_table

    return load_table(cfg)


LOADERS = {"digits": _digits, "breast_cancer": _breast_cancer, "synthetic": _synthetic, "mnist": _torchvision,
           "fashion_mnist": _torchvision, "cifar10": _torchvision, "csv": _table, "image_folder": _image_folder}


def load(cfg: DictConfig, split_cfg: DictConfig, seed: int) -> Dataset:
    """Load dataset cfg.name and split it stratified into train/val/test with the given fractions.

    A dataset with an official test split keeps it as the test split; val is then split.val of its train part.
    """
    if cfg.name not in LOADERS:
        raise UserError(f"dataset={cfg.name} is unknown: choose one of {', '.join(LOADERS)}.")
    src = LOADERS[cfg.name](cfg, seed)
    if src.test is None:
        ds = split(src.x, src.y, src.classes, split_cfg.val, split_cfg.test, seed, src.tabular)
    else:
        train, val = _carve(np.arange(len(src.y)), src.y, split_cfg.val, seed, src.classes, min_count=2)
        ds = Dataset(Split(src.x[train], src.y[train]), Split(src.x[val], src.y[val]), src.test, src.classes,
                     src.tabular)
    return replace(ds, images=src.images, numeric=src.numeric)


def _carve(idx: np.ndarray, y: np.ndarray, size: float, seed: int, classes: list[str],
           min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split of idx into (rest, part of fraction `size`); UserError for too small classes."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y[idx], minlength=len(classes))
    if counts.min() < min_count:
        small = [f"{classes[c]!r} ({counts[c]})" for c in np.flatnonzero(counts < min_count)]
        raise UserError(f"class(es) {', '.join(small[:10])}{' ...' if len(small) > 10 else ''} have fewer than "
                        f"{min_count} samples in the data to split: a stratified split needs at least one of each "
                        "class in every part. Add samples of those classes, merge them with others, or drop them.")
    try:
        return train_test_split(idx, test_size=size, stratify=y[idx], random_state=seed)
    except ValueError as e:  # e.g. a part smaller than the number of classes
        raise UserError(f"the stratified split of {len(idx)} samples into parts of {1 - size:.0%} and {size:.0%} "
                        f"failed: {e} Use more data, or larger split.val / split.test fractions.") from e


def split(x: np.ndarray, y: np.ndarray, classes: list[str], val: float, test: float, seed: int,
          tabular: bool = False) -> Dataset:
    """Stratified, seeded split into train/val/test fractions."""
    rest, test_idx = _carve(np.arange(len(y)), y, test, seed, classes, min_count=3)
    train_idx, val_idx = _carve(rest, y, val / (1 - test), seed, classes, min_count=2)
    part = lambda i: Split(x[i], y[i])  # noqa: E731
    return Dataset(part(train_idx), part(val_idx), part(test_idx), classes, tabular)


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
