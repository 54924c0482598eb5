"""Splits: train/val/test (stratified, seeded) or stratified k-fold, every class in every part or one error."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from omegaconf import DictConfig

from trainer.data.types import Dataset, Source, Split
from trainer.errors import UserError


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


def split_source(src: Source, split_cfg: DictConfig, seed: int) -> Dataset:
    """Split what a loader returned stratified into train/val/test with split_cfg's fractions.

    A dataset with an official test split keeps it as the test split; val is then split.val of its train part.
    With split.folds=K, test is fold split.fold of a stratified K-fold partition (seeded by seed) and val is
    split.val of all samples, carved stratified from the other folds. UserError when a class would miss a part.
    """
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
    return replace(ds, images=src.images, numeric=src.numeric, categorical=src.categorical, text=src.text,
                   notes=src.notes)
