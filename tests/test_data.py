"""Splits, imbalance profiles, label noise and resampling: each changes the train split only."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import make_cfg
from omegaconf import OmegaConf

from trainer import imbalance, noise
from trainer.config import UserError
from trainer.data import Split
from trainer.run import prepare


def test_split_is_stratified_disjoint_and_seeded():
    a, b = prepare(make_cfg("imbalance=none")), prepare(make_cfg("imbalance=none"))
    ds = a.dataset
    assert np.array_equal(ds.train.x, b.dataset.train.x) and np.array_equal(ds.test.y, b.dataset.test.y)
    sizes = [len(ds.train.y), len(ds.val.y), len(ds.test.y)]
    assert sum(sizes) == 1797 and sizes[1] == pytest.approx(0.2 * 1797, abs=2)
    rows = {s: {r.tobytes() for r in getattr(ds, s).x} for s in ("train", "val", "test")}
    assert not (rows["train"] & rows["test"]) and not (rows["val"] & rows["test"])
    fractions = [np.bincount(getattr(ds, s).y) / len(getattr(ds, s).y) for s in ("train", "val", "test")]
    assert np.allclose(fractions[0], fractions[2], atol=0.01)
    other = prepare(make_cfg("imbalance=none", "seed=1")).dataset
    assert not np.array_equal(other.test.y, ds.test.y)


def test_longtail_counts_follow_the_exponential_profile():
    counts = [100] * 10
    got = imbalance.target_counts(counts, OmegaConf.create({"name": "longtail", "ratio": 50}))
    assert got == [int(100 * 50 ** (-c / 9)) for c in range(10)]
    assert got[0] == 100 and got[-1] == 2


def test_step_profile_reduces_the_last_fraction_of_classes():
    got = imbalance.target_counts([100] * 10, OmegaConf.create({"name": "step", "ratio": 10,
                                                                 "minority_fraction": 0.3}))
    assert got == [100] * 7 + [10] * 3


def test_imbalance_subsamples_only_within_each_class():
    rng = np.random.default_rng(0)
    train = Split(rng.normal(size=(300, 4)).astype(np.float32), np.repeat(np.arange(3), 100))
    out = imbalance.apply(train, OmegaConf.create({"name": "longtail", "ratio": 10}), 3, seed=0)
    assert out.counts(3) == [100, 31, 10]
    original = {r.tobytes(): y for r, y in zip(train.x, train.y)}
    assert all(original[r.tobytes()] == y for r, y in zip(out.x, out.y))


@pytest.mark.parametrize("overrides", [
    ["imbalance=longtail"], ["imbalance=step"], ["imbalance.ratio=10"], ["resampling=smote"],
    ["resampling=undersample"], ["noise=symmetric"], ["noise=pairflip", "noise.rate=0.4"],
    ["resampling=oversample"], ["resampling=borderline_smote"], ["resampling=smote_tomek"], ["resampling=smote_enn"],
    ["resampling=near_miss"], ["resampling=balanced_sampler"], ["ssl=pseudo_label"],
    ["ssl=pseudo_label", "noise=symmetric", "resampling=smote"],
])
def test_val_and_test_are_untouched_by_train_side_options(overrides):
    base = prepare(make_cfg("imbalance=none")).dataset
    changed = prepare(make_cfg(*overrides))
    for part in ("val", "test"):
        assert np.array_equal(getattr(base, part).x, getattr(changed.dataset, part).x)
        assert np.array_equal(getattr(base, part).y, getattr(changed.dataset, part).y)
    counts = changed.class_counts
    assert counts["val"] == base.val.counts(10) and counts["test"] == base.test.counts(10)
    assert counts["train_source"] == base.train.counts(10)


def test_class_counts_record_every_stage():
    prep = prepare(make_cfg("resampling=smote"))
    c = prep.class_counts
    assert set(c) == {"train_source", "train_imbalanced", "train_resampled", "val", "test"}
    assert max(c["train_imbalanced"]) > 10 * min(c["train_imbalanced"])
    assert len(set(c["train_resampled"])) == 1 and c["train_resampled"][0] == max(c["train_imbalanced"])
    assert c["train_resampled"] == prep.dataset.train.counts(10)


def test_undersample_brings_every_class_to_the_smallest():
    c = prepare(make_cfg("resampling=undersample")).class_counts
    assert c["train_resampled"] == [min(c["train_imbalanced"])] * 10


def test_smote_lowers_k_for_a_small_class_and_records_it(caplog):
    prep = prepare(make_cfg("resampling=smote"))  # the longtail tail class has 2 samples
    assert prep.params == {"resampling.used.k_neighbors": 1}
    assert "using k_neighbors=1" in caplog.text


def test_smote_refuses_a_class_of_one_sample_naming_it():
    counts = prepare(make_cfg("imbalance.ratio=200")).class_counts["train_imbalanced"]
    single = ", ".join(f"'{c}'" for c, n in enumerate(counts) if n == 1)
    assert single.count("'") == 6  # three classes of one sample: the three least frequent digits
    with pytest.raises(UserError, match=rf"class\(es\) {single} have a single train sample"):
        prepare(make_cfg("resampling=smote", "imbalance.ratio=200"))


def test_float_sampling_strategy_on_many_classes_is_a_clear_error():
    with pytest.raises(UserError, match="sampling_strategy"):
        prepare(make_cfg("resampling=undersample", "resampling.sampler.sampling_strategy=0.5"))


@pytest.mark.parametrize("kind", ["symmetric", "pairflip"])
def test_noise_flips_at_the_asked_rate_and_only_labels(kind):
    rng = np.random.default_rng(0)
    train = Split(rng.normal(size=(20000, 3)).astype(np.float32), rng.integers(0, 5, 20000))
    noisy, rate = noise.apply(train, OmegaConf.create({"name": kind, "rate": 0.3}), 5, seed=0)
    flipped = noisy.y != train.y
    assert rate == pytest.approx(0.3, abs=0.01) and rate == flipped.mean()
    assert np.array_equal(noisy.x, train.x)
    if kind == "pairflip":
        assert np.array_equal(noisy.y[flipped], (train.y[flipped] + 1) % 5)


def test_tabular_features_are_standardised_with_train_statistics():
    ds = prepare(make_cfg("dataset=breast_cancer", "imbalance=none")).dataset
    assert np.allclose(ds.train.x.mean(0), 0, atol=1e-4) and np.allclose(ds.train.x.std(0), 1, atol=1e-3)
    assert not np.allclose(ds.test.x.mean(0), 0, atol=1e-4)
