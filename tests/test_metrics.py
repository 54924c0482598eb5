"""Our metrics equal scikit-learn's and torchmetrics' definitions on random and corner-case inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError, MulticlassF1Score, MulticlassRecall
from torchmetrics.functional.classification import multiclass_calibration_error

from trainer.metrics import classification_metrics


@pytest.mark.parametrize("seed,n,c,scale", [(0, 500, 5, 3.0), (1, 40, 10, 1.0), (2, 1000, 2, 5.0), (3, 7, 4, 0.1)])
def test_metrics_equal_the_reference_implementations(seed, n, c, scale):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * scale
    y = torch.randint(0, c, (n,), generator=g)
    ours = classification_metrics(logits, y, c, per_class=True)
    pred, yn = logits.argmax(1).numpy(), y.numpy()
    labels = list(range(c))
    assert ours["ce"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert ours["accuracy"] == pytest.approx(accuracy_score(yn, pred))
    assert ours["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(yn, pred))
    assert ours["macro_f1"] == pytest.approx(f1_score(yn, pred, labels=labels, average="macro", zero_division=0))
    recalls = recall_score(yn, pred, labels=labels, average=None, zero_division=0)
    assert [ours[f"recall/{k}"] for k in labels] == pytest.approx(list(recalls))
    ece = multiclass_calibration_error(torch.softmax(logits, -1), y, c, n_bins=15, norm="l1").item()
    assert ours["ece"] == pytest.approx(ece, abs=1e-6)


def test_a_class_missing_from_the_truth_is_left_out_of_balanced_accuracy_as_in_sklearn():
    y = torch.tensor([0, 0, 1, 1])
    logits = F.one_hot(torch.tensor([0, 2, 1, 1]), 3).float() * 5  # class 2 predicted, never true
    ours = classification_metrics(logits, y, ["a", "b", "c"], per_class=True)
    with pytest.warns(UserWarning):
        ref = balanced_accuracy_score(y.numpy(), np.array([0, 2, 1, 1]))
    assert ours["balanced_accuracy"] == pytest.approx(ref) == pytest.approx(0.75)
    assert ours["recall/c"] == 0.0
    assert ours["macro_f1"] == pytest.approx(f1_score(y.numpy(), [0, 2, 1, 1], labels=[0, 1, 2], average="macro",
                                                      zero_division=0))


def test_class_names_become_safe_metric_keys():
    out = classification_metrics(torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 0, 1]), ["cat/dog?", "x y"], True)
    assert "recall/cat/dog_" in out and "recall/x y" in out


@pytest.mark.parametrize("seed,num_classes,n", [(0, 10, 500), (1, 2, 300), (2, 5, 64)])
def test_metrics_equal_torchmetrics_on_random_inputs(seed, num_classes, n):
    g = torch.Generator().manual_seed(seed)
    # Scaled logits so that confidences spread over many ECE bins, and the targets agree with them often.
    target = torch.randint(0, num_classes, (n,), generator=g)
    logits = torch.randn(n, num_classes, generator=g) * 2
    logits[torch.arange(n), target] += torch.rand(n, generator=g) * 3
    classes = [f"class {c}" for c in range(num_classes)]

    ours = classification_metrics(logits, target, classes, per_class=True)

    kw = {"num_classes": num_classes}
    assert ours["ce"] == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-6)
    assert ours["accuracy"] == pytest.approx(MulticlassAccuracy(average="micro", **kw)(logits, target).item(), abs=1e-6)
    assert ours["balanced_accuracy"] == pytest.approx(MulticlassRecall(average="macro", **kw)(logits, target).item(),
                                                      abs=1e-6)
    assert ours["macro_f1"] == pytest.approx(MulticlassF1Score(average="macro", **kw)(logits, target).item(), abs=1e-6)
    assert ours["ece"] == pytest.approx(MulticlassCalibrationError(n_bins=15, norm="l1", **kw)(logits, target).item(),
                                        abs=1e-5)
    recalls = MulticlassRecall(average=None, **kw)(logits, target).tolist()
    assert [ours[f"recall/class {c}"] for c in range(num_classes)] == pytest.approx(recalls, abs=1e-6)
