"""Resampling of the train split with imbalanced-learn samplers built by hydra's instantiate."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from omegaconf import DictConfig

from trainer.config import UserError
from trainer.data import Split

log = logging.getLogger(__name__)


@dataclass
class Resampled:
    """What resampling produced and what it decided on the way (logged to MLflow)."""

    train: Split
    seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)


def _to_generate(sampler_cfg: DictConfig, y: np.ndarray, sampler_kind: str) -> dict[int, int]:
    """Samples each class will gain, as imblearn reads sampling_strategy (raises UserError if it can't)."""
    from imblearn.utils import check_sampling_strategy

    strategy = sampler_cfg.get("sampling_strategy", "auto")
    if isinstance(strategy, DictConfig):
        strategy = {int(k): int(v) for k, v in strategy.items()}
    try:
        return dict(check_sampling_strategy(strategy, y, sampler_kind))
    except ValueError as e:
        raise UserError(f"resampling.sampler.sampling_strategy={strategy!r} does not fit this train split: {e} "
                        "Use 'auto', a dict {class: target_count}, or a float only for two classes.") from e


def _fit_k_neighbors(sampler_cfg: DictConfig, y: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Lower k_neighbors to what the smallest oversampled class allows (SMOTE needs k+1 samples of it)."""
    overrides: dict[str, Any] = {}
    k = sampler_cfg.get("k_neighbors")
    if not isinstance(k, int):
        return overrides
    grow = {c: n for c, n in _to_generate(sampler_cfg, y, "over-sampling").items() if n > 0}
    if not grow:
        return overrides
    counts = np.bincount(y, minlength=len(classes))
    single = [classes[c] for c in sorted(grow) if counts[c] < 2]
    if single:
        raise UserError(f"resampling: class(es) {', '.join(map(repr, single))} have a single train sample, and "
                        f"{sampler_cfg._target_.rsplit('.', 1)[-1]} needs at least two to interpolate. Use a smaller "
                        "imbalance.ratio or resampling=none, or leave those classes out with a dict "
                        "resampling.sampler.sampling_strategy.")
    smallest = min(grow, key=lambda c: counts[c])
    n_small = int(counts[smallest])
    if n_small - 1 < k:
        log.warning("resampling: class %r has %d train samples, too few for k_neighbors=%d; using k_neighbors=%d",
                    classes[smallest], n_small, k, n_small - 1)
        overrides["k_neighbors"] = n_small - 1
    return overrides


def apply(train: Split, cfg: DictConfig, classes: list[str], seed: int) -> Resampled:
    """Resample the train split with cfg.sampler (an imblearn sampler), images flattened and reshaped back."""
    if cfg.get("sampler") is None:
        return Resampled(train)
    from hydra.utils import instantiate

    overrides = _fit_k_neighbors(cfg.sampler, train.y, classes)
    sampler = instantiate(cfg.sampler, random_state=seed, **overrides)
    shape = train.x.shape[1:]
    x2d = train.x.reshape(len(train.x), -1).astype(np.float32, copy=False)
    start = time.perf_counter()
    try:
        x_res, y_res = sampler.fit_resample(x2d, train.y)
    except ValueError as e:
        raise UserError(f"resampling={cfg.name} failed on this train split: {e} Check the resampling.sampler "
                        "settings; resampling.sampler.sampling_strategy takes 'auto', a dict {class: target_count}, "
                        "or a float only for two classes.") from e
    seconds = time.perf_counter() - start
    params = {f"resampling.used.{k}": v for k, v in overrides.items()}
    return Resampled(Split(x_res.reshape(-1, *shape).astype(np.float32), y_res.astype(np.int64)), seconds, params)

