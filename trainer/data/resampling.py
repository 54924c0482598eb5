"""Resampling of the train split with imbalanced-learn samplers built by hydra's instantiate.

resampling=balanced_sampler is the exception: it leaves the split as it is and asks the training loop for
class-balanced batches instead (trainer.train.loop.epoch_indices).

Tables with categorical (one-hot) columns: samplers that keep, drop or repeat rows (oversample, undersample,
near_miss, balanced_sampler; their neighbour searches see the 0/1 columns as numbers) take them as they are;
resampling=smote becomes imblearn's SMOTENC (SMOTEN when every column is categorical), which gives a new row the
most frequent category of its neighbours, so categories stay whole; the other samplers that make new rows by
interpolation (adasyn, borderline_smote, smote_tomek, smote_enn) are refused with a UserError.

Texts (token ids): only the samplers that pick or drop whole documents at random (oversample, undersample) and
balanced_sampler apply, on the documents' indices. The others need feature vectors, and a new vector made between
two documents is no document the models can read; in a TF-IDF space SMOTE matched random over-sampling on
SpamAssassin (scripts/smote_on_text.py, docs/text.md), as Blagus & Lusa (BMC Bioinformatics 2013) found for
high-dimensional data, so trainer.config refuses them on text before any work.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from trainer.data.types import Split
from trainer.errors import UserError

log = logging.getLogger(__name__)

# Neighbour settings, by sampler class: (argument, samples it needs beyond the setting, which classes need them).
# "grow": every class the sampler oversamples (its neighbours are searched within the class, itself included);
# "smallest": the smallest class of the split (NearMiss fits its neighbour search on it).
NEIGHBOURS = {
    "SMOTE": ("k_neighbors", 1, "grow"),
    "SMOTENC": ("k_neighbors", 1, "grow"),
    "SMOTEN": ("k_neighbors", 1, "grow"),
    "BorderlineSMOTE": ("k_neighbors", 1, "grow"),
    "ADASYN": ("n_neighbors", 1, "grow"),
    "NearMiss": ("n_neighbors", 0, "smallest"),
}
# Samplers whose neighbour searches span the whole train split: their time grows as samples^2 x features.
# Seconds per (sample^2 x feature), measured with imbalanced-learn 0.14 on 2 CPU cores, 8,000 x 784 floats:
# SMOTETomek 26 s, SMOTEENN 34 s, ADASYN 4.9 s, BorderlineSMOTE 4.9 s (SMOTE 1.6 s, NearMiss 1.1 s).
SLOW_SECONDS_PER_CELL = {"SMOTETomek": 5e-10, "SMOTEENN": 7e-10, "ADASYN": 1e-10, "BorderlineSMOTE": 1e-10}
SLOW_WARN_S = 30.0


@dataclass
class Resampled:
    """What resampling produced and what it decided on the way (logged to MLflow)."""

    train: Split
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=lambda: {"time/resample_s": 0.0})
    balanced_batches: bool = False  # the loop draws class-balanced batches from train (balanced_sampler)


def _class_index(key: Any, classes: list[str]) -> int:
    """A class given by name or index, as its index; UserError naming sampling_strategy otherwise."""
    if str(key) in classes:
        return classes.index(str(key))
    if str(key).isdigit() and int(key) < len(classes):
        return int(key)
    raise UserError(f"resampling.sampler.sampling_strategy names {key!r}, which is not a class: use class names "
                    f"({', '.join(classes)}) or indices 0..{len(classes) - 1}.")


def _strategy(value: Any, classes: list[str]) -> Any:
    """sampling_strategy as imblearn takes it: classes as indices (given by name or index), floats only for two."""
    if isinstance(value, DictConfig):
        return {_class_index(key, classes): int(count) for key, count in value.items()}
    if isinstance(value, ListConfig):  # imblearn's cleaning samplers take a list of classes
        return [_class_index(key, classes) for key in value]
    if isinstance(value, float) and len(classes) != 2:
        raise UserError(f"resampling.sampler.sampling_strategy={value} is a float, which imblearn takes only for two "
                        f"classes; this dataset has {len(classes)}. Use 'auto', 'not majority', ... or a dict of "
                        "target counts, e.g. resampling.sampler.sampling_strategy={0:100,1:100}.")
    return value


def build(cfg: DictConfig, classes: list[str], seed: int) -> Any:
    """The imblearn sampler of cfg.sampler, seeded (nested samplers too), sampling_strategy in class indices."""
    from hydra.utils import instantiate

    # A detached copy, so relative interpolations (SMOTETomek's smote.sampling_strategy) see the converted value.
    spec = OmegaConf.create(OmegaConf.to_container(cfg.sampler, resolve=False))
    if "sampling_strategy" in spec:
        spec.sampling_strategy = _strategy(spec.sampling_strategy, classes)
    sampler = instantiate(spec, _convert_="all")  # imblearn checks isinstance(strategy, dict): no DictConfig
    seeds = {k: seed for k in sampler.get_params(deep=True) if k.split("__")[-1] == "random_state"}
    return sampler.set_params(**seeds)


def _targets(sampler: Any, x2d: np.ndarray, y: np.ndarray, name: str) -> dict[int, int]:
    """Per class, the samples the sampler will add (over-sampling) or keep (under-sampling), as imblearn reads it."""
    try:
        return dict(sampler.fit(x2d, y).sampling_strategy_)
    except ValueError as e:
        raise UserError(f"resampling={name}: resampling.sampler.sampling_strategy={sampler.sampling_strategy!r} does "
                        f"not fit this train split: {e} Use 'auto', a dict of target counts {{class: count}} (larger "
                        "than the class has for over-samplers, smaller for under-samplers), or a float only for two "
                        "classes.") from e


def fit_neighbours(sampler: Any, targets: dict[int, int], counts: np.ndarray, classes: list[str],
                   name: str) -> dict[str, int]:
    """Lower every neighbour setting to what the classes it needs allow (warning); UserError for 1-sample classes.

    Returns the lowered settings as sklearn parameter names (smote__k_neighbors inside SMOTETomek).
    """
    lowered: dict[str, int] = {}
    params = sampler.get_params(deep=True)
    owners = {"": sampler} | {k: v for k, v in params.items() if hasattr(v, "get_params")}
    for prefix, owner in owners.items():
        rule = NEIGHBOURS.get(type(owner).__name__)
        if rule is None:
            continue
        arg, extra, which = rule
        key = f"{prefix}__{arg}" if prefix else arg
        k = params[key]
        if not isinstance(k, int):
            continue  # a ready-made neighbours estimator: the user's to size
        if which == "grow":
            needy = [c for c, n in targets.items() if n > 0]
        else:
            needy = [min(np.flatnonzero(counts), key=lambda c: counts[c])]
        if not needy:
            continue
        single = [classes[c] for c in sorted(needy) if counts[c] - extra < 1]
        if single:
            raise UserError(f"resampling={name}: class(es) {', '.join(map(repr, single))} have a single train "
                            f"sample, and {type(owner).__name__} needs at least two to find a neighbour. Use a "
                            "smaller imbalance.ratio or resampling=none, or leave those classes out with a dict "
                            "resampling.sampler.sampling_strategy.")
        smallest = min(needy, key=lambda c: counts[c])
        allowed = int(counts[smallest]) - extra
        if allowed < k:
            log.warning("resampling=%s: class %r has %d train samples, too few for %s=%d; using %s=%d", name,
                        classes[smallest], counts[smallest], arg, k, arg, allowed)
            lowered[key] = allowed
    sampler.set_params(**lowered)
    return lowered


def warn_if_slow(sampler: Any, shape: tuple[int, int], name: str) -> float | None:
    """Warn before a sampler known to scale as samples^2 x features starts on a large split; return the estimate."""
    per_cell = SLOW_SECONDS_PER_CELL.get(type(sampler).__name__)
    if per_cell is None:
        return None
    n, d = shape
    estimate = per_cell * n * n * d
    if estimate > SLOW_WARN_S:
        log.warning("resampling=%s is slow on large inputs: expect about %.0f min on this %d x %d train split "
                    "(measured on 2 CPU cores; it grows with samples^2 x features). resampling=smote or "
                    "resampling=balanced_sampler scale better.", name, estimate / 60, n, d)
    return estimate


def keeps_rows(sampler: Any) -> bool:
    """Whether the sampler only keeps, drops or repeats rows of the split (so one-hot categories stay whole)."""
    name, module = type(sampler).__name__, type(sampler).__module__
    return name == "RandomOverSampler" or (module.startswith("imblearn.under_sampling") and name != "ClusterCentroids")


def for_categories(sampler: Any, blocks: tuple[tuple[int, int], ...], width: int, name: str) -> Any:
    """The sampler to run on a table with one-hot blocks [start, stop): SMOTE becomes SMOTENC over the blocks'
    category codes (SMOTEN when every column is categorical); a sampler that keeps rows stays; UserError for
    the other samplers that interpolate new rows, which would make fractional categories."""
    from imblearn.over_sampling import SMOTE, SMOTEN, SMOTENC

    if keeps_rows(sampler):
        return sampler
    if type(sampler) is not SMOTE:
        raise UserError(f"resampling={name}: {type(sampler).__name__} makes new rows by interpolating between samples, "
                        f"which would split this table's {len(blocks)} categorical (one-hot) column(s) into fractions "
                        "of categories. Use resampling=smote (SMOTENC for categorical columns), oversample, "
                        "undersample, near_miss or balanced_sampler, or leave the categorical columns out with "
                        "dataset.features.")
    kept = ("sampling_strategy", "random_state", "k_neighbors")
    params = {k: v for k, v in sampler.get_params().items() if k in kept}
    plain = width - sum(stop - start for start, stop in blocks)
    if plain == 0:
        return SMOTEN(**params)
    return SMOTENC(categorical_features=list(range(plain, plain + len(blocks))), **params)


def encode(x: np.ndarray, blocks: tuple[tuple[int, int], ...]) -> np.ndarray:
    """(N, D) with one-hot blocks -> (N, D') : the other columns in order, then one category code per block."""
    inside = np.zeros(x.shape[1], bool)
    for start, stop in blocks:
        inside[start:stop] = True
    codes = [x[:, start:stop].argmax(axis=1) for start, stop in blocks]
    return np.column_stack([x[:, ~inside], *codes]).astype(np.float32)


def decode(z: np.ndarray, blocks: tuple[tuple[int, int], ...], width: int) -> np.ndarray:
    """The inverse of encode: category codes back to whole one-hot rows in their original columns."""
    inside = np.zeros(width, bool)
    for start, stop in blocks:
        inside[start:stop] = True
    x = np.zeros((len(z), width), np.float32)
    plain = int((~inside).sum())
    x[:, ~inside] = z[:, :plain]
    rows = np.arange(len(z))
    for j, (start, _) in enumerate(blocks):
        x[rows, start + z[:, plain + j].round().astype(np.int64)] = 1.0
    return x


# The samplers that pick or drop whole samples at random, without a feature space: all that texts admit.
WHOLE_SAMPLES = ("RandomOverSampler", "RandomUnderSampler")


def resample_indices(train: Split, sampler: Any, name: str) -> Resampled:
    """A sampler of WHOLE_SAMPLES run on the samples' indices, so any x (token ids, documents) is kept as it is."""
    if type(sampler).__name__ not in WHOLE_SAMPLES:
        raise UserError(f"resampling={name}: {type(sampler).__name__} needs feature vectors, which documents are not: "
                        "use resampling=oversample, undersample or balanced_sampler on text.")
    start = time.perf_counter()
    index, y = sampler.fit_resample(np.arange(len(train.y)).reshape(-1, 1), train.y)
    return Resampled(Split(train.x[index[:, 0]], y.astype(np.int64)),
                     metrics={"time/resample_s": time.perf_counter() - start})


def apply(train: Split, cfg: DictConfig, classes: list[str], seed: int,
          categorical: tuple[tuple[int, int], ...] = (), text: bool = False) -> Resampled:
    """Resample the train split with cfg.sampler (an imblearn sampler), images flattened and reshaped back.

    categorical: the one-hot blocks [start, stop) of a table (trainer.data.types.Dataset.categorical), kept whole.
    text: the samples are documents (token ids): whole ones are repeated or dropped (resample_indices).
    """
    if cfg.get("balanced_batches", False):
        return Resampled(train, balanced_batches=True)
    if cfg.get("sampler") is None:
        return Resampled(train)
    if text:
        return resample_indices(train, build(cfg, classes, seed), cfg.name)
    shape = train.x.shape[1:]
    x2d = train.x.reshape(len(train.x), -1).astype(np.float32, copy=False)
    counts = np.bincount(train.y, minlength=len(classes))
    sampler = build(cfg, classes, seed)
    coded = bool(categorical) and not keeps_rows(sampler)
    if coded:
        sampler = for_categories(sampler, categorical, x2d.shape[1], cfg.name)
        x2d = encode(x2d, categorical)
    targets = _targets(sampler, x2d, train.y, cfg.name)
    lowered = fit_neighbours(sampler, targets, counts, classes, cfg.name)
    warn_if_slow(sampler, x2d.shape, cfg.name)
    start = time.perf_counter()
    try:
        x_res, y_res = sampler.fit_resample(x2d, train.y)
    except RuntimeError as e:  # ADASYN, when no sample of a class has a neighbour of another class
        raise UserError(f"resampling={cfg.name}: a class it oversamples has no sample near another class, so "
                        f"{type(sampler).__name__} has nothing to weight its new samples by (imblearn: {e}) Use "
                        "resampling=smote or resampling=borderline_smote on this data.") from e
    except ValueError as e:
        raise UserError(f"resampling={cfg.name} failed on this train split: {e} Check the resampling.sampler "
                        "settings, or choose another sampler (resampling=smote works on any class of 2+ "
                        "samples).") from e
    if coded:
        x_res = decode(x_res, categorical, int(np.prod(shape)))
    params: dict[str, Any] = {f"resampling.used.{k.replace('__', '.')}": v for k, v in lowered.items()}
    if coded:
        params["resampling.used.sampler"] = type(sampler).__name__
    metrics = {"time/resample_s": time.perf_counter() - start}
    if type(sampler).__module__.startswith("imblearn.over_sampling"):
        after = np.bincount(y_res, minlength=len(classes))
        not_grown = [c for c, n in targets.items() if n > 0 and after[c] <= counts[c]]
        if not_grown:
            # BorderlineSMOTE only interpolates from samples "in danger" (most neighbours of other classes);
            # a class with none returns unchanged without a word from imblearn.
            log.warning("resampling=%s generated no samples for class(es) %s (asked for %s); they train with their "
                        "original counts. Try resampling=smote or a larger resampling.sampler.m_neighbors.",
                        cfg.name, ", ".join(repr(classes[c]) for c in not_grown),
                        ", ".join(str(targets[c]) for c in not_grown))
            params["resampling.not_grown"] = ", ".join(classes[c] for c in not_grown)
        metrics["resampling/classes_not_grown"] = float(len(not_grown))
    return Resampled(Split(x_res.reshape(-1, *shape).astype(np.float32), y_res.astype(np.int64)), params, metrics)


def balanced_counts(counts: list[int]) -> list[int]:
    """Expected draws per class in one epoch of class-balanced batches: len(train) spread over present classes."""
    present = sum(1 for n in counts if n > 0)
    return [round(sum(counts) / present) if n > 0 else 0 for n in counts]
