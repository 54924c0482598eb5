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
    categorical: tuple[tuple[int, int], ...] = ()  # tabular: the columns [start, stop) of each one-hot category

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
    categorical: tuple[tuple[int, int], ...] = ()  # the columns [start, stop) of each one-hot encoded column
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
    from trainer.data.vision import load_torchvision

    return load_torchvision(cfg.name, cfg.root, cfg.download)


def _image_folder(cfg: DictConfig, seed: int) -> Source:
    from trainer.data.vision import load_image_folder

    return load_image_folder(cfg.path, cfg.image_size, cfg.grayscale)


def _table(cfg: DictConfig, seed: int) -> Source:
    from trainer.data.tables import load_table

    return load_table(cfg)


LOADERS = {"digits": _digits, "breast_cancer": _breast_cancer, "synthetic": _synthetic, "mnist": _torchvision,
           "fashion_mnist": _torchvision, "cifar10": _torchvision, "csv": _table, "image_folder": _image_folder}


def load(cfg: DictConfig, split_cfg: DictConfig, seed: int) -> Dataset:
    """Load dataset cfg.name and split it stratified into train/val/test with the given fractions.

    A dataset with an official test split keeps it as the test split; val is then split.val of its train part.
    With split.folds=K, test is fold split.fold of a stratified K-fold partition (seeded by seed) and val is
    split.val of all samples, carved stratified from the other folds. UserError when a class would miss a part.
    """
    if cfg.name not in LOADERS:
        raise UserError(f"dataset={cfg.name} is unknown: choose one of {', '.join(LOADERS)}.")
    src = LOADERS[cfg.name](cfg, seed)
    folds = split_cfg.get("folds")
    if src.test is not None:
        train, val = _carve(np.arange(len(src.y)), src.y, split_cfg.val, seed, src.classes, 2,
                            f"split.val={split_cfg.val}")
        ds = Dataset(Split(src.x[train], src.y[train]), Split(src.x[val], src.y[val]), src.test, src.classes,
                     src.tabular)
    elif folds:
        ds = kfold(src.x, src.y, src.classes, int(folds), int(split_cfg.fold), split_cfg.val, seed, src.tabular)
    else:
        ds = split(src.x, src.y, src.classes, split_cfg.val, split_cfg.test, seed, src.tabular)
    if not folds:  # kfold checked every fold
        setting = f"split.val={split_cfg.val}" + ("" if src.test is not None else f" split.test={split_cfg.test}")
        require_every_class([ds.train.y, ds.val.y, ds.test.y], src.classes, setting)
    return replace(ds, images=src.images, numeric=src.numeric, categorical=src.categorical)


def _carve(idx: np.ndarray, y: np.ndarray, size: float, seed: int, classes: list[str],
           min_count: int, setting: str, kfold: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split of idx into (rest, part of fraction `size`); UserError for too small classes,
    naming `setting` (the split.* values that chose the part)."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y[idx], minlength=len(classes))
    if counts.min() < min_count:
        small = np.flatnonzero(counts < min_count)
        named = [f"{classes[c]!r} ({counts[c]} sample{'s' if counts[c] != 1 else ''} left to split)" for c in small]
        raise UserError(f"{setting}: class(es) {_listed(named)} have fewer than {min_count} samples to split, and "
                        "every class needs at least one sample in train, val and test to be trained and scored. "
                        f"{_fix(max(int(counts[small].min()), 1), kfold)}")
    try:
        return train_test_split(idx, test_size=size, stratify=y[idx], random_state=seed)
    except ValueError as e:  # a part smaller than the number of classes
        short = np.flatnonzero(counts * size < 1)
        short = short if len(short) else np.arange(len(classes))
        named = [f"{classes[c]!r} ({counts[c]} samples)" for c in short]
        raise UserError(f"{setting} makes a part of {size:.0%} of {len(idx)} samples, too small for {len(classes)} "
                        f"classes (sklearn: {e}): class(es) {_listed(named)} would miss it, and every class needs at "
                        "least one sample in train, val and test to be trained and scored. "
                        f"{_fix(int(counts[short].min()), kfold)}") from e


def split(x: np.ndarray, y: np.ndarray, classes: list[str], val: float, test: float, seed: int,
          tabular: bool = False) -> Dataset:
    """Stratified, seeded split into train/val/test fractions."""
    rest, test_idx = _carve(np.arange(len(y)), y, test, seed, classes, 3, f"split.test={test}")
    train_idx, val_idx = _carve(rest, y, val / (1 - test), seed, classes, 2, f"split.val={val}")
    part = lambda i: Split(x[i], y[i])  # noqa: E731
    return Dataset(part(train_idx), part(val_idx), part(test_idx), classes, tabular)


def kfold(x: np.ndarray, y: np.ndarray, classes: list[str], folds: int, fold: int, val: float, seed: int,
          tabular: bool = False) -> Dataset:
    """Fold `fold` of sklearn's StratifiedKFold(folds, shuffle=True, random_state=seed) as test; val, a fraction
    `val` of all samples, carved stratified from the other folds; train the rest.

    Every fold is checked (not only this one), so each run of a sweep over split.fold stops for the same reason.
    Another seed gives another partition: seeds x folds is sklearn's RepeatedStratifiedKFold.
    """
    import warnings

    from sklearn.model_selection import StratifiedKFold

    with warnings.catch_warnings():  # sklearn warns of classes smaller than folds; require_every_class names them
        warnings.simplefilter("ignore", UserWarning)
        try:
            partition = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
        except ValueError as e:  # every class smaller than folds
            raise UserError(f"split.folds={folds}: {str(e).rstrip('.')}. Use fewer folds.") from e
    setting = f"split.folds={folds} split.val={val}"
    parts = []
    for i, (rest, test_idx) in enumerate(partition):
        train_idx, val_idx = _carve(rest, y, val * folds / (folds - 1), seed, classes, 2, f"{setting} (fold {i})",
                                    kfold=True)
        require_every_class([y[train_idx], y[val_idx], y[test_idx]], classes, f"{setting} (fold {i})", kfold=True)
        parts.append((train_idx, val_idx, test_idx))
    train_idx, val_idx, test_idx = parts[fold]
    part = lambda i: Split(x[i], y[i])  # noqa: E731
    return Dataset(part(train_idx), part(val_idx), part(test_idx), classes, tabular)


def fold_tags(split_cfg: DictConfig) -> dict[str, str]:
    """Tags of a k-fold run, {"split.fold": "i", "split.folds": "K"}, so runs can be filtered and paired by fold
    (the params hold them too, null without k-fold); {} for a plain split."""
    if not split_cfg.get("folds"):
        return {}
    return {"split.fold": str(split_cfg.fold), "split.folds": str(split_cfg.folds)}


def require_every_class(parts: list[np.ndarray], classes: list[str], setting: str, kfold: bool = False) -> None:
    """UserError unless every class has a sample in each part (labels of train, val, test): a class missing from a
    part could not be scored there, and a recall of 0 for a class that was never tested would be made up."""
    counts = np.stack([np.bincount(p, minlength=len(classes)) for p in parts])  # (3, C)
    missing = np.flatnonzero((counts == 0).any(axis=0))
    if not len(missing):
        return
    named = [f"{classes[c]!r} ({counts[:, c].sum()} samples: {counts[0, c]} train, {counts[1, c]} val, "
             f"{counts[2, c]} test)" for c in missing]
    raise UserError(f"{setting} leave(s) class(es) {_listed(named)} without a sample in a part, and every class needs "
                    "at least one in train, val and test to be trained and scored. "
                    f"{_fix(int(counts[:, missing].sum(axis=0).min()), kfold)}")


def _listed(names: list[str]) -> str:
    return ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")


def _fix(n: int, kfold: bool) -> str:
    if kfold:
        return (f"Fix: fewer folds (split.folds at most {max(n, 2)}), a larger split.val (at least 1/{n}), or drop "
                "those classes from the data.")
    return (f"Fix: larger split.val and split.test (a class of {n} samples needs both at least 1/{n}), stratified "
            f"k-fold cross-validation (split.folds=K split.fold=0..K-1 tests every sample once, K at most "
            f"{max(n, 2)}), or drop those classes from the data.")


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
