"""Splits, imbalance profiles, label noise and resampling: each changes the train split only."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from helpers import make_cfg
from trainer.config import validate
from trainer.data import imbalance, noise, sources, splits
from trainer.data.prepare import prepare
from trainer.data.types import Split
from trainer.errors import ConfigError, UserError
from trainer.run import run


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


# ---- imbalance defaults and profiles on data that is already imbalanced -----------------------------------

@pytest.mark.parametrize("dataset,default", [
    ("digits", "longtail"), ("mnist", "longtail"), ("fashion_mnist", "longtail"), ("cifar10", "longtail"),
    ("synthetic", "longtail"), ("breast_cancer", "none"), ("csv", "none"), ("image_folder", "none"),
])
def test_each_dataset_file_chooses_its_imbalance_default_and_the_command_line_overrides_it(dataset, default):
    assert make_cfg(f"dataset={dataset}").imbalance.name == default
    assert make_cfg(f"dataset={dataset}", "imbalance=step").imbalance.name == "step"
    assert make_cfg(f"dataset={dataset}", "imbalance=longtail", "imbalance.ratio=7").imbalance.ratio == 7


def test_the_cli_composes_csv_without_a_profile_unless_asked():
    from helpers import train_cli

    out = train_cli("dataset=csv", "imbalance=longtail", "--cfg", "job", cwd=Path.cwd(), timeout=120)
    assert out.returncode == 0 and "imbalance:\n  name: longtail\n  ratio: 50" in out.stdout
    out = train_cli("dataset=csv", "--cfg", "job", cwd=Path.cwd(), timeout=120)
    assert out.returncode == 0 and "imbalance:\n  name: none\n" in out.stdout


def test_breast_cancer_keeps_its_benign_class():
    prep = prepare(make_cfg("dataset=breast_cancer"))
    benign = prep.dataset.classes.index("benign")
    counts = prep.class_counts
    assert counts["train_imbalanced"] == counts["train_source"] and counts["train_source"][benign] > 200
    # asked for explicitly, the profile keeps the majority (benign) as the head and shrinks the other class
    counts = prepare(make_cfg("dataset=breast_cancer", "imbalance=longtail")).class_counts
    assert counts["train_imbalanced"][benign] == counts["train_source"][benign]
    assert counts["train_imbalanced"][1 - benign] == counts["train_source"][benign] // 50


def test_a_users_csv_keeps_its_majority_class(tmp_path):
    overrides = _csv_of({"a": 20, "b": 30, "z": 97}, tmp_path / "t.csv")  # the majority has the last index
    counts = prepare(make_cfg(*overrides)).class_counts
    head = counts["train_source"][2]
    assert counts["train_imbalanced"] == counts["train_source"] and head > 50
    counts = prepare(make_cfg(*overrides, "imbalance=longtail")).class_counts["train_imbalanced"]
    assert counts[2] == head and counts[0] < counts[1] < head  # 'z' stays the head; 'a', the rarest, is the tail


@pytest.mark.parametrize("profile", [{"name": "longtail", "ratio": 50}, {"name": "longtail", "ratio": 1e6},
                                     {"name": "step", "ratio": 100, "minority_fraction": 0.5}])
def test_a_profile_keeps_the_order_of_rarity_of_imbalanced_classes(profile):
    counts = [6, 7, 1960, 30, 103, 5342, 27352]
    got = imbalance.target_counts(counts, OmegaConf.create(profile))
    assert got[6] == 27352  # the most frequent class is the head, whatever its index
    rarity = sorted(range(7), key=lambda c: counts[c])
    assert all(got[a] <= got[b] for a, b in zip(rarity, rarity[1:]))
    assert all(g <= c for g, c in zip(got, counts))


def test_ties_rank_by_class_index_and_balanced_data_keeps_cifar_lts_order():
    assert imbalance.frequency_ranks([5, 9, 9, 1]) == [2, 0, 1, 3]
    assert imbalance.frequency_ranks([104, 109, 106, 108]) == [0, 1, 2, 3]  # split noise, not imbalance
    got = imbalance.target_counts([100] * 4, OmegaConf.create({"name": "longtail", "ratio": 8}))
    assert got == sorted(got, reverse=True) and got[0] == 100 and got[-1] == 12
    a, b = (prepare(make_cfg(f"seed={s}")).class_counts["train_imbalanced"] for s in (0, 1))
    assert np.argmax(a) == np.argmax(b) == 0 and np.argmin(a) == np.argmin(b) == 9  # the seed does not pick the tail


def test_a_profile_on_already_imbalanced_data_says_so_in_one_line(caplog):
    rng = np.random.default_rng(0)
    skewed = Split(rng.normal(size=(130, 2)).astype(np.float32), np.repeat([0, 1], [100, 30]))
    imbalance.apply(skewed, OmegaConf.create({"name": "longtail", "ratio": 10}), 2, seed=0)
    lines = [r for r in caplog.records if "already imbalanced" in r.getMessage()]
    assert len(lines) == 1 and "100/30" in lines[0].getMessage()
    caplog.clear()
    balanced = Split(skewed.x[:120], np.repeat([0, 1], [60, 60]))
    imbalance.apply(balanced, OmegaConf.create({"name": "longtail", "ratio": 10}), 2, seed=0)
    assert "already imbalanced" not in caplog.text


# ---- every class in every part; stratified k-fold -------------------------------------------------------------

def _csv_of(counts: dict[str, int], path: Path) -> list[str]:
    import pandas as pd

    rng = np.random.default_rng(0)
    labels = np.repeat(list(counts), list(counts.values()))
    pd.DataFrame({"a": rng.normal(size=len(labels)), "label": labels}).to_csv(path, index=False)
    return ["dataset=csv", f"dataset.path={path}", "dataset.target=label"]


@pytest.mark.parametrize("counts", [{c: 3 for c in "abcdefg"}, {"big": 60, "a": 3, "b": 3, "c": 3, "d": 3}])
def test_a_csv_with_three_rows_per_class_and_small_fractions_stops_naming_the_classes(counts, tmp_path):
    cfg = make_cfg(*_csv_of(counts, tmp_path / "t.csv"), "split.test=0.1", "split.val=0.1")
    with pytest.raises(UserError) as err:
        prepare(cfg)
    message = str(err.value)
    assert "'a' (3 samples" in message and "'big'" not in message
    assert "split.folds=K" in message and "at least 1/3" in message and "drop those classes" in message
    ok = prepare(make_cfg(*_csv_of(counts, tmp_path / "t.csv"), "split.test=0.33", "split.val=0.33")).class_counts
    assert min(ok["train_source"]) >= 1 and min(ok["val"]) >= 1 and min(ok["test"]) >= 1


def test_every_class_is_in_train_val_and_test_or_the_split_stops():
    y = np.repeat([0, 1, 2], [60, 3, 3])
    with pytest.raises(UserError, match=r"'b' \(3 samples: 3 train, 0 val, 0 test\)"):
        splits.require_every_class([y[y != 9], y[y == 0], y[y != 1]], ["a", "b", "c"], "split.val=0.1 split.test=0.1")
    splits.require_every_class([y, y, y], ["a", "b", "c"], "split.val=0.1 split.test=0.1")


def _rows(split: Split) -> set[bytes]:
    return {r.tobytes() for r in split.x}


def test_kfold_tests_every_sample_exactly_once_per_seed_and_keeps_val_apart():
    tests = []
    for fold in range(5):
        cfg = make_cfg("dataset=breast_cancer", "split.folds=5", f"split.fold={fold}")
        ds = sources.load(cfg.dataset, cfg.split, cfg.seed)
        train, val, test = _rows(ds.train), _rows(ds.val), _rows(ds.test)
        assert not (train & val) and not (train & test) and not (val & test)
        assert len(ds.val.y) == pytest.approx(0.2 * 569, abs=2) and len(ds.test.y) in (113, 114)
        fractions = [np.bincount(s.y) / len(s.y) for s in (ds.train, ds.val, ds.test)]
        assert np.allclose(fractions[0], fractions[2], atol=0.01) and np.allclose(fractions[1], fractions[2], atol=0.01)
        tests.append(test)
    assert sum(len(t) for t in tests) == 569 and len(set().union(*tests)) == 569
    cfg = make_cfg("dataset=breast_cancer", "split.folds=5", "split.fold=0", "seed=1")
    assert _rows(sources.load(cfg.dataset, cfg.split, cfg.seed).test) != tests[0]  # another seed, another partition


def test_kfold_stops_when_a_fold_would_miss_a_class(tmp_path):
    cfg = make_cfg(*_csv_of({"big": 60, "a": 3, "b": 4}, tmp_path / "t.csv"), "split.folds=5", "split.fold=0")
    with pytest.raises(UserError, match=r"split.folds=5 split.val=0.2 \(fold \d\) .*'a' \(3 samples.*fewer folds"):
        prepare(cfg)


@pytest.mark.parametrize("overrides,key", [
    (["split.folds=5", "split.fold=5"], "split.fold"), (["split.folds=5", "split.fold=-1"], "split.fold"),
    (["split.folds=5"], "split.fold"), (["split.fold=1"], "split.fold"),
    (["split.folds=1", "split.fold=0"], "split.folds"),
    (["dataset=fashion_mnist", "split.folds=5", "split.fold=0"], "split.folds"),
])
def test_fold_settings_are_refused_before_any_work(overrides, key):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(*overrides))
    assert err.value.key == key


def test_a_kfold_run_logs_and_tags_its_fold_and_a_plain_run_logs_null(run_cfg):
    from mlflow.tracking import MlflowClient

    folded = run(run_cfg("dataset=breast_cancer", "split.folds=5", "split.fold=3", "trainer.epochs=1"))
    plain = run(run_cfg("dataset=breast_cancer", "trainer.epochs=1"))
    params = lambda r: MlflowClient().get_run(r.run_id).data.params  # noqa: E731
    assert params(folded)["split.fold"] == "3" and params(folded)["split.folds"] == "5"
    assert params(plain)["split.fold"] == "None"
    tags = lambda r: MlflowClient().get_run(r.run_id).data.tags  # noqa: E731
    assert tags(folded)["split.fold"] == "3" and "split.fold" not in tags(plain)


def test_the_cli_stops_the_three_rows_per_class_csv_with_one_error_line(tmp_path):
    from helpers import train_cli

    overrides = _csv_of({"big": 60, "a": 3, "b": 3, "c": 3, "d": 3}, tmp_path / "t.csv")
    out = train_cli(*overrides, "split.test=0.1", "split.val=0.1", "trainer.epochs=1", cwd=tmp_path, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    error = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and "split.val=0.1 split.test=0.1 leave(s) class(es)" in error[0], out.stderr[-2000:]
    assert "test/recall" not in out.stdout


def test_standardisation_keeps_a_column_of_huge_values():
    """Squares of values above ~1.8e19 overflow float32: the statistics are taken in float64."""
    from trainer.data.standardize import standardize
    from trainer.data.types import Dataset

    x = np.array([[1.0], [2.0], [1e25], [3.0]], np.float32)
    part = Split(x, np.array([0, 1, 0, 1]))
    scaled = standardize(Dataset(part, part, part, ["a", "b"], tabular=True)).train.x
    assert np.isfinite(scaled).all() and scaled[2, 0] > 1.5 and scaled.std() == pytest.approx(1.0, rel=1e-5)
