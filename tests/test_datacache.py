"""trainer.data.cache: jobs of a multirun that prepare the same data share it; anything preparation reads splits it."""
from __future__ import annotations

import numpy as np

from helpers import make_cfg
from trainer.data import cache as datacache
from trainer.data.prepare import prepare


def test_jobs_differing_in_loss_model_or_optimiser_share_one_preparation():
    datacache.clear()
    calls = []

    def counted(cfg):
        calls.append(cfg)
        return prepare(cfg)

    a, hit_a = datacache.cached(make_cfg("loss=plain"), counted)
    b, hit_b = datacache.cached(make_cfg("loss=focal", "model=logreg", "optim=sgd"), counted)
    assert (hit_a, hit_b) == (False, True) and b is a and len(calls) == 1
    fresh = prepare(make_cfg("loss=focal"))
    np.testing.assert_array_equal(fresh.dataset.train.x, a.dataset.train.x)  # what the job would have prepared
    assert fresh.class_counts == a.class_counts


def test_the_seed_and_each_data_setting_give_their_own_preparation():
    datacache.clear()
    base = datacache.key(make_cfg())
    for overrides in (["seed=1"], ["imbalance.ratio=10"], ["noise=symmetric"], ["resampling=smote"],
                      ["split.val=0.3"], ["dataset=breast_cancer"], ["ssl=pseudo_label"]):
        assert datacache.key(make_cfg(*overrides)) != base, overrides
    assert datacache.key(make_cfg("loss=weighted", "trainer.epochs=3")) == base


def test_the_oldest_entries_go_beyond_the_byte_limit(monkeypatch):
    datacache.clear()
    monkeypatch.setattr(datacache, "MAX_BYTES", 1)
    datacache.cached(make_cfg("seed=1"), prepare)
    _, hit = datacache.cached(make_cfg("seed=2"), prepare)
    assert not hit and len(datacache._cache) == 1  # the newest stays even above the limit
    _, hit = datacache.cached(make_cfg("seed=1"), prepare)
    assert not hit
