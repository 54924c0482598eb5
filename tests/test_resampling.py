"""Every resampling option: what it does to the train counts, what it leaves alone, and its failure messages."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from helpers import make_cfg
from trainer.data import imbalance, resampling, sources
from trainer.data.prepare import prepare
from trainer.data.types import Split
from trainer.errors import UserError
from trainer.run import run
from trainer.train.loop import epoch_indices


def _rows(split: Split) -> dict[bytes, int]:
    return {r.tobytes(): int(y) for r, y in zip(split.x, split.y)}


def _resample(*overrides: str) -> tuple[Split, Split]:
    """The imbalanced train split (unscaled) and what the configured resampling makes of it."""
    cfg = make_cfg(*overrides)
    ds = sources.load(cfg.dataset, cfg.split, cfg.seed)
    before = imbalance.apply(ds.train, cfg.imbalance, ds.num_classes, cfg.seed)
    return before, resampling.apply(before, cfg.resampling, ds.classes, cfg.seed).train


@pytest.mark.parametrize("option,dataset", [("oversample", "digits"), ("adasyn", "synthetic"),
                                            ("borderline_smote", "synthetic"), ("smote", "synthetic")])
def test_over_samplers_grow_the_smaller_classes_to_the_largest_and_keep_every_original_sample(option, dataset):
    before, train = _resample(f"dataset={dataset}", f"resampling={option}")
    n_classes = len(np.unique(before.y))
    n_max, after = max(before.counts(n_classes)), train.counts(n_classes)
    if option == "adasyn":  # ADASYN spreads its quota over samples and rounds: close to the largest class
        assert all(abs(n - n_max) <= 0.05 * n_max for n in after)
    else:
        assert after == [n_max] * len(after)
    original, resampled = _rows(before), _rows(train)
    assert set(original) <= set(resampled)
    assert all(resampled[r] == y for r, y in original.items())  # no label of an original sample changes
    new = set(resampled) - set(original)
    assert (len(new) == 0) == (option == "oversample")  # random over-sampling only repeats samples


@pytest.mark.parametrize("option", ["undersample", "near_miss"])
def test_under_samplers_keep_a_subset_of_the_original_samples(option):
    before, train = _resample(f"resampling={option}", "imbalance.ratio=10")
    assert train.counts(10) == [min(before.counts(10))] * 10
    original = _rows(before)
    assert all(original.get(r) == y for r, y in _rows(train).items())


@pytest.mark.parametrize("option", ["smote_tomek", "smote_enn"])
def test_combined_samplers_oversample_then_clean(option):
    before, train = _resample("dataset=synthetic", f"resampling={option}")
    imbalanced, after = before.counts(5), train.counts(5)
    n_max = max(imbalanced)
    assert all(n <= n_max for n in after) and sum(after) < n_max * len(after)  # cleaning removed samples
    assert all(a > b for a, b in zip(after, imbalanced) if b < n_max // 2)  # small classes grew
    original = _rows(before)
    assert all(original.get(r, y) == y for r, y in _rows(train).items())


def test_nested_sampler_is_seeded_so_runs_repeat():
    a, b = prepare(make_cfg("resampling=smote_tomek")), prepare(make_cfg("resampling=smote_tomek"))
    assert np.array_equal(a.dataset.train.x, b.dataset.train.x)
    c = prepare(make_cfg("resampling=smote_tomek", "seed=1"))
    assert not np.array_equal(a.dataset.train.x, c.dataset.train.x)


def test_sampling_strategy_dict_by_class_name_or_index_sets_those_counts_only():
    prep = prepare(make_cfg("resampling=smote", "resampling.sampler.sampling_strategy={9:50,8:40}"))
    c = prep.class_counts
    assert c["train_resampled"] == c["train_imbalanced"][:8] + [40, 50]
    under = prepare(make_cfg("resampling=undersample", "resampling.sampler.sampling_strategy={0:20}")).class_counts
    assert under["train_resampled"] == [20] + under["train_imbalanced"][1:]


def test_sampling_strategy_names_like_minority_pass_through_to_imblearn():
    c = prepare(make_cfg("resampling=oversample", "resampling.sampler.sampling_strategy=minority")).class_counts
    assert c["train_resampled"] == c["train_imbalanced"][:9] + [c["train_imbalanced"][0]]


def test_float_sampling_strategy_works_for_two_classes():
    c = prepare(make_cfg("dataset=breast_cancer", "resampling=smote",
                         "resampling.sampler.sampling_strategy=0.8")).class_counts
    big, small = max(c["train_imbalanced"]), min(c["train_imbalanced"])
    assert sorted(c["train_resampled"]) == [int(0.8 * big), big] and small < int(0.8 * big)


@pytest.mark.parametrize("override,match", [
    ("resampling.sampler.sampling_strategy=0.5", r"is a float, which imblearn takes only for two classes; this "
                                                 r"dataset has 10\. .*sampling_strategy=\{0:100,1:100\}"),
    ("resampling.sampler.sampling_strategy={x:50}", r"sampling_strategy names 'x', which is not a class"),
    ("resampling.sampler.sampling_strategy={9:1}", r"resampling=smote: resampling.sampler.sampling_strategy="
                                                   r"\{9: 1\} does not fit this train split"),
])
def test_bad_sampling_strategy_is_one_clear_message(override, match):
    with pytest.raises(UserError, match=match):
        prepare(make_cfg("resampling=smote", override))


@pytest.mark.parametrize("option,sampler", [("adasyn", "ADASYN"), ("smote_tomek", "SMOTE"),
                                            ("borderline_smote", "BorderlineSMOTE"), ("smote_enn", "SMOTE")])
def test_a_class_of_one_sample_is_refused_by_every_neighbour_sampler(option, sampler):
    with pytest.raises(UserError, match=rf"resampling={option}: class\(es\) '7', '8', '9' have a single train "
                                        rf"sample, and {sampler} needs at least two"):
        prepare(make_cfg(f"resampling={option}", "imbalance.ratio=200"))


@pytest.mark.parametrize("option,used", [("smote_tomek", "resampling.used.smote.k_neighbors"),
                                         ("borderline_smote", "resampling.used.k_neighbors"),
                                         ("near_miss", "resampling.used.n_neighbors")])
def test_neighbour_settings_are_lowered_to_the_smallest_class_and_recorded(option, used, caplog):
    prep = prepare(make_cfg(f"resampling={option}"))  # the longtail tail class has 2 samples
    expected = 2 if option == "near_miss" else 1
    assert prep.params[used] == expected
    assert "class '9' has 2 train samples" in caplog.text


def test_adasyn_lowers_n_neighbors_too(caplog):
    prep = prepare(make_cfg("dataset=synthetic", "resampling=adasyn", "imbalance.ratio=200"))
    assert prep.params == {"resampling.used.n_neighbors": 2}  # the tail class keeps 3 of 600
    assert "using n_neighbors=2" in caplog.text


def _separated(n_big: int = 60, n_small: int = 12) -> Split:
    """Two far-apart clusters: no sample has a neighbour of the other class."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (n_big, 4)), rng.normal(50, 1, (n_small, 4))]).astype(np.float32)
    return Split(x, np.repeat([0, 1], [n_big, n_small]))


def test_borderline_smote_generating_nothing_warns_and_logs_it(caplog):
    cfg = make_cfg("resampling=borderline_smote")
    train = _separated()
    with caplog.at_level(logging.WARNING):
        res = resampling.apply(train, cfg.resampling, ["a", "b"], seed=0)
    assert res.train.counts(2) == [60, 12]
    assert res.params["resampling.not_grown"] == "b" and res.metrics["resampling/classes_not_grown"] == 1
    assert "generated no samples for class(es) 'b' (asked for 48)" in caplog.text


def test_adasyn_without_neighbours_of_other_classes_is_a_clear_message():
    with pytest.raises(UserError, match=r"resampling=adasyn: a class it oversamples has no sample near another "
                                        r"class.* Use resampling=smote"):
        resampling.apply(_separated(), make_cfg("resampling=adasyn").resampling, ["a", "b"], seed=0)


def test_slow_samplers_warn_with_an_estimate_before_they_start(caplog, monkeypatch):
    sampler = resampling.build(make_cfg("resampling=smote_tomek").resampling, [str(c) for c in range(10)], 0)
    with caplog.at_level(logging.WARNING):
        assert resampling.warn_if_slow(sampler, (1000, 64), "smote_tomek") < 1
        assert not caplog.text
        minutes = resampling.warn_if_slow(sampler, (60000, 784), "smote_tomek") / 60
    assert minutes > 10 and f"expect about {minutes:.0f} min on this 60000 x 784 train split" in caplog.text
    fast = resampling.build(make_cfg("resampling=smote").resampling, [str(c) for c in range(10)], 0)
    assert resampling.warn_if_slow(fast, (60000, 784), "smote") is None

    calls = []
    monkeypatch.setattr(resampling, "warn_if_slow", lambda *a: calls.append("warn"))
    original = type(sampler).fit_resample
    monkeypatch.setattr(type(sampler), "fit_resample", lambda self, x, y: calls.append("fit") or original(self, x, y))
    prepare(make_cfg("resampling=smote_tomek"))
    assert calls == ["warn", "fit"]


def test_balanced_sampler_keeps_the_split_and_hands_balanced_counts_to_the_loss():
    plain, balanced = prepare(make_cfg()), prepare(make_cfg("resampling=balanced_sampler"))
    for part in ("train", "val", "test"):
        assert np.array_equal(getattr(plain.dataset, part).x, getattr(balanced.dataset, part).x)
        assert np.array_equal(getattr(plain.dataset, part).y, getattr(balanced.dataset, part).y)
    n = len(plain.dataset.train.y)
    assert balanced.balanced_batches and not plain.balanced_batches
    assert balanced.class_counts["train_resampled"] == [round(n / 10)] * 10
    assert balanced.class_counts["train_imbalanced"] == plain.class_counts["train_resampled"]


def test_balanced_epoch_indices_draw_every_class_equally_often():
    y = torch.tensor([0] * 1000 + [1] * 100 + [2] * 10)
    generator = torch.Generator().manual_seed(0)
    idx = epoch_indices(y, generator, balanced=True)
    assert len(idx) == len(y)
    share = torch.bincount(y[idx], minlength=3) / len(idx)
    assert torch.allclose(share, torch.full((3,), 1 / 3), atol=0.03)  # the data are 90% class 0
    for batch in idx.split(222):  # balanced within batches too, not only over the epoch
        assert (torch.bincount(y[batch], minlength=3) > 40).all()
    shuffle = epoch_indices(y, generator)
    assert torch.equal(shuffle.sort().values, torch.arange(len(y)))


def test_balanced_sampler_run_uses_uniform_loss_weights(run_cfg, store):
    result = run(run_cfg("resampling=balanced_sampler", "loss=weighted"))
    client = MlflowClient(store)
    r = client.get_run(result.run_id)
    assert r.info.status == "FINISHED" and r.data.tags["resampling"] == "balanced_sampler"
    weights = json.loads(open(client.download_artifacts(result.run_id, "loss_weights.json")).read())
    assert weights["weight"] == pytest.approx([1.0] * 10)


# prepare() runs every sampler (above and in test_data.py); these two also check a nested and an unseeded one train.
@pytest.mark.parametrize("option", ["smote_tomek", "near_miss"])
def test_sampler_trains_a_finished_run_and_logs_its_time(run_cfg, store, option):
    result = run(run_cfg(f"resampling={option}", "trainer.epochs=1"))
    r = MlflowClient(store).get_run(result.run_id)
    assert r.info.status == "FINISHED" and r.data.tags["resampling"] == option
    assert r.data.metrics["time/resample_s"] > 0


def test_smote_finds_its_neighbours_in_standardised_units(tmp_path):
    """A column in thousands beside one in fractions: SMOTE runs after standardisation (statistics of the real train
    rows), so each new row lies between a minority row and one of its k nearest minority neighbours measured in
    standardised units; in raw units the column in thousands alone would choose them."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(0)
    n_major, n_minor = 120, 30
    grams = np.r_[rng.normal(5000, 3000, n_major), rng.normal(5000, 3000, n_minor)].round(1)
    ratio = np.r_[rng.uniform(0.0, 0.6, n_major), rng.uniform(0.4, 1.0, n_minor)].round(4)
    label = ["major"] * n_major + ["minor"] * n_minor
    path = tmp_path / "units.csv"
    path.write_text("grams,ratio,label\n" + "".join(f"{g},{r},{y}\n" for g, r, y in zip(grams, ratio, label)))
    prep = prepare(make_cfg("dataset=csv", f"dataset.path={path}", "dataset.target=label", "resampling=smote",
                            "resampling.sampler.k_neighbors=3"))
    train, minor = prep.dataset.train, prep.dataset.classes.index("minor")
    real = train.x[: len(train.y) - (prep.class_counts["train_resampled"][minor]
                                     - prep.class_counts["train_imbalanced"][minor])]
    real_minor = real[train.y[: len(real)] == minor]
    new = train.x[len(real):]
    assert len(new) > 10 and np.allclose(real.mean(axis=0), 0, atol=1e-5)  # real rows standardised to mean 0

    def between(points: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
        """For each point, whether it lies on a segment from a row to one of that row's k nearest rows."""
        neighbours = NearestNeighbors(n_neighbors=k + 1).fit(rows).kneighbors(rows, return_distance=False)[:, 1:]
        a = rows[:, None, :]
        b = rows[neighbours]  # (rows, k, 2)
        d = b - a
        lam = np.clip(((points[:, None, None, :] - a) * d).sum(-1) / (d ** 2).sum(-1).clip(1e-12), 0, 1)
        gap = np.linalg.norm(a + lam[..., None] * d - points[:, None, None, :], axis=-1)
        return (gap < 1e-4).any(axis=(1, 2))

    assert between(new, real_minor, 3).all()
    std = prep.dataset.train.x[: len(real)].std(axis=0)  # 1 after scaling; raw units are these times the scale
    raw = real_minor * np.array([3000.0, 0.2]) / std  # the same rows with the columns' spreads put back roughly
    assert not between(new * np.array([3000.0, 0.2]) / std, raw, 3).all()  # raw units would choose others
