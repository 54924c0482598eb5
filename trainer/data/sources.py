"""Where the data come from: one loader per dataset option, and load(), which splits what a loader returns.

The loaders of files (torchvision's datasets, image folders, CSV, parquet and ARFF tables, a user's texts, the text
corpora) live in their own modules and are imported only when chosen, so the bundled datasets start without
torchvision, pandas or the text libraries.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from omegaconf import DictConfig

from trainer.data.fingerprint import fingerprint
from trainer.data.splits import split_source
from trainer.data.types import Dataset, Source
from trainer.errors import UserError


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


def _texts(cfg: DictConfig, seed: int) -> Source:
    from trainer.data.texts import load_texts

    return load_texts(cfg)


def _spam_assassin(cfg: DictConfig, seed: int) -> Source:
    from trainer.data.spam_assassin import load_spam_assassin

    return load_spam_assassin(cfg)


def _language_id(cfg: DictConfig, seed: int) -> Source:
    from trainer.data.language_id import load_language_id

    return load_language_id(cfg)


def _dna_splice(cfg: DictConfig, seed: int) -> Source:
    from trainer.data.dna_splice import load_dna_splice

    return load_dna_splice(cfg)


LOADERS = {"digits": _digits, "breast_cancer": _breast_cancer, "synthetic": _synthetic, "mnist": _torchvision,
           "fashion_mnist": _torchvision, "cifar10": _torchvision, "csv": _table, "image_folder": _image_folder,
           "text": _texts, "spam_assassin": _spam_assassin, "language_id": _language_id, "dna_splice": _dna_splice}


def load(cfg: DictConfig, split_cfg: DictConfig, seed: int) -> Dataset:
    """Load dataset cfg.name and split it (trainer.data.splits.split_source), with the fingerprint of what was read
    (the same for every seed and fold of one file's content); UserError for an unknown name or a class that would
    miss a part."""
    if cfg.name not in LOADERS:
        raise UserError(f"dataset={cfg.name} is unknown: choose one of {', '.join(LOADERS)}.")
    src = LOADERS[cfg.name](cfg, seed)
    arrays = [("x", src.x), ("y", src.y)]
    if src.test is not None:
        arrays += [("test.x", src.test.x), ("test.y", src.test.y)]
    return replace(split_source(src, split_cfg, seed), source_fingerprint=fingerprint(arrays, src.classes))
