"""The data a run trains on: load and split the dataset, then imbalance, label noise and withheld labels (ssl) on the
train split only, standardisation with the statistics of those real train rows (texts: tokenization by a tokenizer
fitted on them), and resampling of the train split."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from trainer.data import cache, imbalance, noise, resampling, sources, ssl
from trainer.data.standardize import channel_stats, standardize
from trainer.data.types import Dataset
from trainer.runtime import progress

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """The splits the model sees, and what preparing them decided (logged with the run)."""

    dataset: Dataset
    class_counts: dict[str, list[int]]  # per stage: train_source, train_imbalanced, ..., train_resampled, val, test
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    balanced_batches: bool = False  # resampling=balanced_sampler: the loop draws class-balanced batches
    tokenizer: Any = None  # text: the fitted tokenizers.Tokenizer (saved with the run by trainer.tracking.record)


def prepare(cfg: DictConfig, tokenizer: Path | None = None) -> Prepared:
    """Load and split the dataset; imbalance, noise, withheld labels (ssl) and resampling on the train split only.

    tokenizer: a tokenizer.json saved by an earlier run (resume, reproduce) to encode texts with instead of fitting
    one (trainer.data.tokenizer)."""
    seed = int(cfg.seed)
    with progress.step(f"data: loading dataset={cfg.dataset.name}"):
        ds = sources.load(cfg.dataset, cfg.split, seed)
    n = ds.num_classes
    counts = {"train_source": ds.train.counts(n)}
    train = imbalance.apply(ds.train, cfg.imbalance, n, seed)
    counts["train_imbalanced"] = train.counts(n)
    train, flip_rate = noise.apply(train, cfg.noise, n, seed)
    metrics = {}
    if cfg.noise.name != "none":
        counts["train_noisy"] = train.counts(n)
        metrics["noise/flip_rate"] = flip_rate
    train, unlabeled = ssl.withhold_labels(train, cfg.ssl, n, seed)
    if unlabeled is not None:
        counts["train_labeled"] = train.counts(n)
    ds = replace(ds, train=train, unlabeled=unlabeled)
    tokenized = None
    if ds.text:  # documents become token ids; the tokenizer sees the train split only
        from trainer.data.tokenizer import tokenize

        with progress.step(f"data: tokenizer={cfg.tokenizer.name} on {len(train.y):,} train documents"):
            tokenized = tokenize(ds, unlabeled, cfg.tokenizer, tokenizer)
        ds = replace(tokenized.dataset, unlabeled=tokenized.unlabeled)
        metrics |= tokenized.metrics
    # scaled before resampling, with statistics of the real train rows, as scikit-learn and imbalanced-learn
    # pipelines do: SMOTE's neighbours are then found in standardised units, not in each column's raw units
    if ds.tabular:
        ds = standardize(ds)
    if ds.images:
        ds = replace(ds, pixel_stats=channel_stats(ds.train.x))
    with (progress.step(f"data: resampling={cfg.resampling.name} of {len(ds.train.y):,} train samples")
          if cfg.resampling.name != "none" else contextlib.nullcontext()):
        res = resampling.apply(ds.train, cfg.resampling, ds.classes, seed, ds.categorical, text=ds.text)
    # balanced_sampler keeps the split but draws balanced batches: the loss sees the counts the model trains on
    counts["train_resampled"] = (resampling.balanced_counts(res.train.counts(n)) if res.balanced_batches
                                 else res.train.counts(n))
    counts["val"], counts["test"] = ds.val.counts(n), ds.test.counts(n)
    metrics |= res.metrics
    params = ds.notes | res.params | (tokenized.params if tokenized else {})
    return Prepared(replace(ds, train=res.train), counts, params, metrics, res.balanced_batches,
                    tokenized and tokenized.tokenizer)


def prepared(cfg: DictConfig, shared: bool, tokenizer: Path | None = None) -> Prepared:
    """prepare(cfg); with shared (a multirun's job), reused from an earlier job of this process that prepared the
    same data (trainer.data.cache). tokenizer: see prepare (never shared)."""
    if not shared or tokenizer is not None:
        return prepare(cfg, tokenizer)
    prep, reused = cache.cached(cfg, prepare)
    if reused:
        log.info("data: prepared by an earlier job of this process, reused")
    return prep
