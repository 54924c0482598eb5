"""The prepared data of a multirun's jobs, kept per process: jobs that differ only in the loss, model or optimiser
(a loss zoo) share one split, imbalance, noise and resampling.

A thin wrapper around trainer.data.prepare.prepare: the key is the resolved config of everything preparation reads
(PARTS and the seed), so whatever prepare does with those settings, equal keys give equal data. Entries are
shared, not copied: the training path reads the arrays and never writes them. Used only in Hydra's MULTIRUN
mode, where one process may run many jobs (basic launcher, joblib's reused workers); a single run has nothing
to share.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

PARTS = ("dataset", "split", "imbalance", "noise", "ssl", "tokenizer", "resampling", "seed")
MAX_BYTES = 1 << 30  # beyond 1 GiB of arrays the oldest entries go (the newest is always kept)

T = TypeVar("T")
_cache: OrderedDict[str, tuple[Any, int]] = OrderedDict()


def key(cfg: DictConfig) -> str:
    """The resolved settings preparation depends on, as one string."""
    return json.dumps({p: OmegaConf.to_container(cfg[p], resolve=True) if OmegaConf.is_config(cfg[p]) else cfg[p]
                       for p in PARTS if p in cfg}, sort_keys=True, default=str)


def _nbytes(obj: Any, seen: set[int] | None = None) -> int:
    """Bytes of the numpy arrays reachable through obj's dataclass fields, lists and dicts."""
    import dataclasses

    import numpy as np

    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sum(_nbytes(getattr(obj, f.name), seen) for f in dataclasses.fields(obj))
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v, seen) for v in obj)
    if isinstance(obj, dict):
        return sum(_nbytes(v, seen) for v in obj.values())
    return 0


def cached(cfg: DictConfig, prepare: Callable[[DictConfig], T]) -> tuple[T, bool]:
    """prepare(cfg), or the result of an earlier call with the same key; and whether it came from the cache."""
    k = key(cfg)
    if k in _cache:
        _cache.move_to_end(k)
        return _cache[k][0], True
    value = prepare(cfg)
    _cache[k] = (value, _nbytes(value))
    while len(_cache) > 1 and sum(size for _, size in _cache.values()) > MAX_BYTES:
        _cache.popitem(last=False)
    return value, False


def clear() -> None:
    _cache.clear()
