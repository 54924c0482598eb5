"""Which weights a run ends with, and how much training it gets: the monitored metric (val/balanced_ce among
them), trainer.keep (the best epoch or the last), trainer.patience=null (no early stopping), and trainer.steps
holding the number of optimizer steps equal whatever the train split's size."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from mlflow.tracking import MlflowClient

from trainer.config import validate
from trainer.errors import ConfigError
from trainer.evaluate.metrics import classification_metrics
from trainer.run import run


def _history(store: str, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(MlflowClient(store).get_metric_history(run_id, key), key=lambda m: m.step)]


def test_balanced_ce_is_the_mean_over_classes_of_each_class_mean_cross_entropy():
    logits = torch.tensor([[2.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 3.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 1.0]])
    target = torch.tensor([0, 0, 0, 1, 2])
    ce = F.cross_entropy(logits, target, reduction="none")
    expected = (ce[:3].mean() + ce[3] + ce[4]) / 3  # class 0's three samples count as much as class 1's one
    out = classification_metrics(logits, target, ["a", "b", "c"])
    assert out["balanced_ce"] == pytest.approx(float(expected)) and out["ce"] == pytest.approx(float(ce.mean()))
    absent = classification_metrics(logits[:4], target[:4], ["a", "b", "c"])  # no sample of c: left out, not 0
    assert absent["balanced_ce"] == pytest.approx(float((ce[:3].mean() + ce[3]) / 2))


def test_the_monitor_picks_the_epoch_and_keep_says_which_weights_are_scored(run_cfg, store):
    last = run(run_cfg("trainer.epochs=6", "trainer.patience=null", "trainer.keep=last",
                       "trainer.monitor=val/balanced_ce", "optim.lr=0.05"))
    ce = _history(store, last.run_id, "val/ce")
    assert last.kept_epoch == last.epochs_run == 6 and last.val["ce"] == pytest.approx(ce[-1])  # the last epoch's
    balanced = _history(store, last.run_id, "val/balanced_ce")
    assert last.best_epoch == 1 + balanced.index(min(balanced))
    assert MlflowClient(store).get_run(last.run_id).data.metrics["kept/epoch"] == 6

    best = run(run_cfg("trainer.epochs=6", "trainer.patience=null", "trainer.monitor=val/balanced_accuracy",
                       "optim.lr=0.05"))  # no early stopping, the best epoch kept (trainer.keep's default)
    accuracy = _history(store, best.run_id, "val/balanced_accuracy")
    assert best.epochs_run == 6 and best.best_epoch == best.kept_epoch == 1 + accuracy.index(max(accuracy))
    assert best.val["balanced_accuracy"] == pytest.approx(max(accuracy))  # the best epoch's weights, restored


def test_a_step_budget_trains_that_many_steps_whatever_the_train_split_size(run_cfg, store):
    budget = ("trainer.steps=80", "trainer.epochs=1", "trainer.patience=null", "imbalance=none")
    full = run(run_cfg(*budget))  # digits: 1,078 train samples, 34 steps of 32 an epoch
    small = run(run_cfg(*budget, "resampling=undersample", "imbalance=longtail"))  # a few samples a class
    assert _history(store, full.run_id, "train/steps") == [34, 68, 80]  # the budget ends epoch 3 after 12 steps
    assert full.steps == small.steps == 80 and full.epochs_run == 3  # trainer.epochs=1 is not what counts
    assert small.epochs_run > 3 and _history(store, small.run_id, "train/steps")[-1] == 80
    assert len(_history(store, small.run_id, "train/ce")) == small.epochs_run


@pytest.mark.parametrize("override", ["trainer.steps=0", "trainer.steps=1.5", "trainer.monitor=val/balanced",
                                      "trainer.keep=first"])
def test_bad_budgets_and_monitors_are_refused(run_cfg, override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        validate(run_cfg(override))
