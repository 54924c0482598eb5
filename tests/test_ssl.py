"""ssl=pseudo_label: which labels are withheld, which pseudo-labels join an epoch, and what the run records."""
from __future__ import annotations

import numpy as np
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from torch import nn

from helpers import make_cfg
from trainer.data import ssl
from trainer.data.prepare import prepare
from trainer.data.types import Split
from trainer.run import run
from trainer.train.loop import Tensors, epoch_train_set, pseudo_labels

PSEUDO = OmegaConf.create({"name": "pseudo_label", "labeled_fraction": 0.3, "warmup_epochs": 2, "threshold": 0.9})


def test_withhold_labels_keeps_the_fraction_of_each_class_and_partitions_the_split():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), [100, 40, 5, 1])
    train = Split(rng.normal(size=(len(y), 3)).astype(np.float32), y)
    labeled, unlabeled = ssl.withhold_labels(train, PSEUDO, 4, seed=0)
    assert labeled.counts(4) == [30, 12, 2, 1]  # round(0.3 n), at least one per class
    assert unlabeled.counts(4) == [70, 28, 3, 0]
    original = {r.tobytes(): c for r, c in zip(train.x, train.y)}
    parts = [r.tobytes() for r in np.concatenate([labeled.x, unlabeled.x])]
    assert sorted(parts) == sorted(original)  # a partition: nothing lost, nothing repeated
    assert all(original[r.tobytes()] == c for r, c in zip(labeled.x, labeled.y))
    again, _ = ssl.withhold_labels(train, PSEUDO, 4, seed=0)
    other, _ = ssl.withhold_labels(train, PSEUDO, 4, seed=1)
    assert np.array_equal(again.x, labeled.x) and not np.array_equal(other.x, labeled.x)
    same, none = ssl.withhold_labels(train, OmegaConf.create({"name": "none"}), 4, seed=0)
    assert same is train and none is None


def test_prepare_withholds_train_labels_only():
    base = prepare(make_cfg("imbalance=none"))
    prep = prepare(make_cfg("imbalance=none", "ssl=pseudo_label"))
    c, ds = prep.class_counts, prep.dataset
    assert c["train_labeled"] == [max(1, round(0.5 * n)) for n in c["train_imbalanced"]]
    assert ds.train.counts(10) == c["train_resampled"] == c["train_labeled"]
    assert len(ds.train.y) + len(ds.unlabeled.y) == len(base.dataset.train.y)
    for part in ("val", "test"):
        assert np.array_equal(getattr(ds, part).x, getattr(base.dataset, part).x)
        assert np.array_equal(getattr(ds, part).y, getattr(base.dataset, part).y)


def test_unlabeled_pool_is_standardised_with_the_train_statistics():
    prep = prepare(make_cfg("dataset=breast_cancer", "imbalance=none", "ssl=pseudo_label"))
    pool = prep.dataset.unlabeled.x
    assert np.allclose(pool.mean(0), 0, atol=0.25) and not np.allclose(pool.mean(0), 0, atol=1e-4)
    assert np.allclose(prep.dataset.train.x.mean(0), 0, atol=1e-4)


def test_confident_keeps_rows_above_the_threshold_with_their_argmax():
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 9.0], [2.0, 2.0, 0.0]])
    idx, labels = ssl.confident(logits, 0.9)
    assert idx.tolist() == [0, 2] and labels.tolist() == [0, 2]


def test_pseudo_labels_join_the_epoch_after_the_warmup_only():
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[10.0, 0.0], [0.0, 10.0]]))  # confident where one coordinate dominates
    train = Tensors(torch.zeros(3, 2), torch.tensor([0, 1, 0]))
    pool = ssl.PseudoLabeling(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]), warmup_epochs=2, threshold=0.9)
    for epoch in (1, 2):
        assert pseudo_labels(model, pool, epoch) is None
        data, metrics = epoch_train_set(train, pool, pseudo_labels(model, pool, epoch))
        assert data is train and metrics == {"ssl/pseudo_labels": 0.0}
    chosen = pseudo_labels(model, pool, 3)
    data, metrics = epoch_train_set(train, pool, chosen)
    assert metrics == {"ssl/pseudo_labels": 2.0}
    assert torch.equal(data.x, torch.cat([train.x, pool.x[:2]])) and data.y.tolist() == [0, 1, 0, 0, 1]
    assert pseudo_labels(model, None, 3) is None and epoch_train_set(train, None, None) == (train, {})


def test_pseudo_label_run_logs_the_count_every_epoch(run_cfg, store):
    result = run(run_cfg("imbalance=none", "ssl=pseudo_label", "ssl.warmup_epochs=1", "ssl.threshold=0.5",
                         "trainer.epochs=3", "optim.lr=0.01"))
    client = MlflowClient(store)
    r = client.get_run(result.run_id)
    assert r.info.status == "FINISHED" and r.data.tags["ssl"] == "pseudo_label"
    history = {m.step: m.value for m in client.get_metric_history(result.run_id, "ssl/pseudo_labels")}
    assert sorted(history) == [1, 2, 3] and history[1] == 0
    pool = len(prepare(run_cfg("imbalance=none", "ssl=pseudo_label")).dataset.unlabeled.y)
    assert 0 < history[2] <= pool and 0 < history[3] <= pool
