"""Our metrics equal scikit-learn's and torchmetrics' definitions on random and corner-case inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score
from torchmetrics.classification import (MulticlassAccuracy, MulticlassCalibrationError, MulticlassF1Score,
                                         MulticlassRecall)
from torchmetrics.functional.classification import multiclass_calibration_error

from trainer.evaluate.metrics import (class_keys, classification_metrics, imbalance_metrics, imbalance_report,
                                      minority_class, shot_groups, shot_thresholds)


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
    # sklearn's default labels: the classes in the truth or the predictions
    assert ours["macro_f1"] == pytest.approx(f1_score(yn, pred, average="macro", zero_division=0))
    present = [k for k in labels if (yn == k).any()]
    recalls = recall_score(yn, pred, labels=present, average=None, zero_division=0)
    assert [ours[f"recall/{k}"] for k in present] == pytest.approx(list(recalls))
    assert all(f"recall/{k}" not in ours for k in labels if k not in present)
    ece = multiclass_calibration_error(torch.softmax(logits, -1), y, c, n_bins=15, norm="l1").item()
    assert ours["ece"] == pytest.approx(ece, abs=1e-6)


def test_a_class_missing_from_the_truth_is_left_out_of_balanced_accuracy_as_in_sklearn():
    y = torch.tensor([0, 0, 1, 1])
    logits = F.one_hot(torch.tensor([0, 2, 1, 1]), 3).float() * 5  # class 2 predicted, never true
    ours = classification_metrics(logits, y, ["a", "b", "c"], per_class=True)
    with pytest.warns(UserWarning):
        ref = balanced_accuracy_score(y.numpy(), np.array([0, 2, 1, 1]))
    assert ours["balanced_accuracy"] == pytest.approx(ref) == pytest.approx(0.75)
    assert "recall/c" not in ours  # no test sample: not scored, rather than a recall of 0
    assert ours["macro_f1"] == pytest.approx(f1_score(y.numpy(), [0, 2, 1, 1], average="macro", zero_division=0))


def test_a_class_without_test_samples_is_never_scored_zero():
    # a class with no test sample must not be logged as test/recall/<class> = 0.0 while accuracy was 1.0
    y = torch.tensor([0, 0, 1, 1])
    logits = F.one_hot(y, 3).float() * 5
    ours = classification_metrics(logits, y, ["a", "b", "c"], per_class=True)
    assert ours["accuracy"] == ours["balanced_accuracy"] == ours["macro_f1"] == 1.0
    assert ours["recall/a"] == ours["recall/b"] == 1.0 and "recall/c" not in ours
    extra, tags = imbalance_report(torch.softmax(logits, -1).numpy(), y.numpy(), ["a", "b", "c"], [50, 30, 5])
    assert extra["gmean"] == extra["auroc"] == 1.0
    assert extra["many_shot_accuracy"] == 1.0 and "few_shot_accuracy" not in extra  # c, the few-shot class
    assert tags["eval.unscored_classes"] == "c"


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


# ---- class names as metric keys ------------------------------------------------------------------------------

NAMES = ["<50K", ">50K", "<=50K", ">=50K", "T-shirt/top", "a_b", "a/b", "A/B", "", "..", "café au lait", "x:y",
         "?", "!", "50%", "R&D", "C++", "lt50K", "cat", "Cat"]


def test_class_keys_are_valid_distinct_unnested_and_readable():
    from mlflow.utils.validation import _validate_metric_name

    keys = class_keys(NAMES)
    assert len({k.casefold() for k in keys}) == len(NAMES)  # distinct even where a store ignores case
    for key in keys:
        _validate_metric_name(f"test/posthoc/recall/{key}")  # raises on a bad character or a path-like key
        assert "/" not in key and ":" not in key
    by_name = dict(zip(NAMES, keys))
    assert by_name["<50K"] != by_name[">50K"] and "50K" in by_name["<50K"] and "50K" in by_name[">50K"]
    assert by_name["T-shirt/top"] == "T-shirt_top"
    assert by_name["a_b"] == "a_b" and by_name["lt50K"] == "lt50K" and by_name["cat"] == "cat"  # valid names stay
    assert by_name["café au lait"] == "café au lait"


def test_class_key_collisions_are_resolved_the_same_way_every_time():
    assert class_keys(NAMES) == class_keys(list(NAMES))
    assert class_keys(["a/b", "a_b"]) == ["a_b_2", "a_b"]  # the name that is already a key keeps it
    assert class_keys(["?", "!"]) == ["_", "__2"]
    assert class_keys([str(i) for i in range(10)]) == [str(i) for i in range(10)]


def test_recall_keys_of_names_that_differ_only_in_symbols_stay_apart():
    y = torch.tensor([0, 0, 1, 1, 2])
    out = classification_metrics(F.one_hot(torch.tensor([0, 1, 1, 1, 2]), 3).float(), y,
                                 ["<50K", ">50K", "T-shirt/top"], per_class=True)
    assert out["recall/lt50K"] == 0.5 and out["recall/gt50K"] == 1.0 and out["recall/T-shirt_top"] == 1.0


# ---- metrics for imbalance ----------------------------------------------------------------------------------

def _probs(seed: int, n: int, c: int, weights=None):
    g = torch.Generator().manual_seed(seed)
    y = torch.multinomial(torch.tensor(weights or [1.0] * c), n, replacement=True, generator=g)
    logits = torch.randn(n, c, generator=g) * 2
    logits[torch.arange(n), y] += torch.rand(n, generator=g) * 2
    return torch.softmax(logits, -1), y


@pytest.mark.parametrize("counts", [[90, 10], [10, 90]])
def test_two_class_metrics_equal_torchmetrics_and_imblearn_with_the_train_minority_as_positive(counts):
    from imblearn.metrics import geometric_mean_score
    from torchmetrics.functional.classification import binary_auroc, binary_average_precision

    probs, y = _probs(0, 400, 2, [0.8, 0.2])
    pos = minority_class(counts)
    assert pos == int(np.argmin(counts))
    ours = imbalance_metrics(probs.numpy(), y.numpy(), counts, (100, 20))
    positive = (y == pos).long()
    assert ours["auroc"] == pytest.approx(binary_auroc(probs[:, 1], y).item(), abs=1e-6)
    assert ours["average_precision"] == pytest.approx(binary_average_precision(probs[:, pos], positive).item(),
                                                      abs=1e-6)
    pred = probs.argmax(1).numpy()
    assert ours["gmean"] == pytest.approx(geometric_mean_score(y.numpy(), pred))
    assert ours["minority_f1"] == pytest.approx(f1_score(y.numpy(), pred, pos_label=pos))


def test_multiclass_auroc_is_the_macro_one_vs_rest_of_torchmetrics_over_the_classes_present():
    from imblearn.metrics import geometric_mean_score
    from torchmetrics.functional.classification import binary_auroc, multiclass_auroc

    probs, y = _probs(1, 500, 5)
    ours = imbalance_metrics(probs.numpy(), y.numpy(), [100] * 5, (100, 20))
    assert ours["auroc"] == pytest.approx(multiclass_auroc(probs, y, 5, average="macro").item(), abs=1e-6)
    assert ours["gmean"] == pytest.approx(geometric_mean_score(y.numpy(), probs.argmax(1).numpy()))
    assert "average_precision" not in ours and "minority_f1" not in ours  # two-class metrics only
    keep = y != 3  # class 3 has no sample: left out, not scored as 0.5 or 0
    ours = imbalance_metrics(probs[keep].numpy(), y[keep].numpy(), [100] * 5, (100, 20))
    per_class = [binary_auroc(probs[keep][:, c], (y[keep] == c).long()).item() for c in (0, 1, 2, 4)]
    assert ours["auroc"] == pytest.approx(np.mean(per_class), abs=1e-6)
    assert ours["gmean"] == pytest.approx(geometric_mean_score(y[keep].numpy(), probs[keep].argmax(1).numpy(),
                                                               labels=[0, 1, 2, 4]))


def test_shot_thresholds_are_the_lt_papers_scaled_for_small_datasets():
    assert shot_thresholds([500, 5]) == (100, 20) and shot_thresholds([5000, 50]) == (100, 20)
    assert shot_thresholds([108, 2]) == pytest.approx((21.6, 4.32))
    assert shot_thresholds([108, 2], [50, 10]) == (50, 10)  # eval.shot_thresholds: used as given
    groups = shot_groups([101, 100, 20, 19, 500], (100, 20))
    assert groups == {"many_shot": [0, 4], "medium_shot": [1, 2], "few_shot": [3]}


def test_shot_accuracies_are_mean_recalls_of_their_groups_and_an_empty_group_is_not_logged():
    probs, y = _probs(2, 600, 6)
    counts = [400, 300, 60, 50, 30, 10]
    ours = imbalance_metrics(probs.numpy(), y.numpy(), counts, (100, 20))
    pred = probs.argmax(1).numpy()
    for group, labels in [("many_shot", [0, 1]), ("medium_shot", [2, 3, 4]), ("few_shot", [5])]:
        assert ours[f"{group}_accuracy"] == pytest.approx(recall_score(y.numpy(), pred, labels=labels,
                                                                       average="macro"))
    ours = imbalance_metrics(probs.numpy(), y.numpy(), [400, 300, 200, 150, 120, 110], (100, 20))
    assert "many_shot_accuracy" in ours and "medium_shot_accuracy" not in ours and "few_shot_accuracy" not in ours
