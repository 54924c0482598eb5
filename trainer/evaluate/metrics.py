"""Imbalance-aware classification metrics of a whole evaluation set, from its logits in one pass.

The per-epoch metrics come from the confusion matrix and a 15-bin confidence histogram, computed with numpy
after one device-to-host copy per set. Measured on this stack (2-core CPU): scikit-learn's metric functions cost
about 6.5 ms per epoch even on 360 samples (their input checks dominate), more than a whole digits epoch,
and importing torchmetrics costs about 3 s at start-up because it imports torchvision. The formulas below
are tested to equal scikit-learn's and torchmetrics' on random inputs (tests/test_metrics.py).

The end-of-run metrics imbalance needs (imbalance_metrics: AUROC, AUC-PR, G-mean, minority F1, many/medium/
few-shot accuracy) are computed once, by scikit-learn and scipy. A class with no sample in a set is never scored
(no recall of 0): it is left out of per-class recall and of every mean over classes. See docs/metrics.md.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

ECE_BINS = 15


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of metric is better: losses and calibration error (ce, balanced_ce, loss, ece),
    epochs and times rank ascending; accuracies, F1, recalls and AUCs descending. Takes a name with or without its
    split (ce, val/ce, best/val/ce, time/train_s)."""
    last = metric.rsplit("/", 1)[-1]
    return last in {"ce", "balanced_ce", "loss", "ece", "epoch"} or metric.startswith("time/")


def calibration_bins(confidence: np.ndarray, correct: np.ndarray,
                     n_bins: int = ECE_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width confidence bin: (number of samples, sum of confidences, number correct).

    Bins are [lo, hi), confidence 1.0 in the last one, as torchmetrics' MulticlassCalibrationError bins them.
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    total = np.bincount(which, minlength=n_bins)
    conf_sum = np.bincount(which, weights=confidence, minlength=n_bins)
    acc_sum = np.bincount(which, weights=correct.astype(np.float64), minlength=n_bins)
    return total, conf_sum, acc_sum


def ece_of_bins(conf_sum: np.ndarray, acc_sum: np.ndarray, n: int) -> float:
    """ECE from calibration_bins' sums over n samples: sum_b |B_b|/N * |accuracy(B_b) - confidence(B_b)|."""
    return float(np.abs(acc_sum - conf_sum).sum() / max(n, 1))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE with equal-width confidence bins (see calibration_bins and ece_of_bins)."""
    _, conf_sum, acc_sum = calibration_bins(confidence, correct, n_bins)
    return ece_of_bins(conf_sum, acc_sum, len(confidence))


def confusion_matrix(target: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs: row i holds where the samples of class i went."""
    return np.bincount(target * num_classes + pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def from_confusion(cm: np.ndarray) -> dict[str, float | np.ndarray]:
    """accuracy, balanced_accuracy, macro_f1, per-class recall and which classes the truth holds (present), of a
    confusion matrix (rows: true class).

    As scikit-learn defines them with its default labels: balanced accuracy averages recall over the classes
    present in the truth; macro F1 averages 2TP / (2TP + FP + FN) over the classes present in the truth or the
    predictions (a class neither holds has no F1, rather than 0). recall is 0 where a class is absent: read it
    with present.
    """
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
    f1_den = support + predicted
    f1 = np.divide(2 * tp, f1_den, out=np.zeros_like(tp), where=f1_den > 0)
    return {
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[f1_den > 0].mean()) if (f1_den > 0).any() else 0.0,
        "recall": recall,
        "present": present,
    }


def classification_metrics(logits: torch.Tensor, target: torch.Tensor, classes: list[str] | int,
                           per_class: bool = False) -> dict[str, float]:
    """ce, balanced_ce, accuracy, balanced_accuracy, macro_f1 and ece of a set; with per_class, recall/<key> of
    each class the set holds (key: class_keys; a class without samples has no recall, rather than 0).

    ce is the plain mean cross-entropy of the true class, -log softmax(z)_y, over the set. balanced_ce is its mean
    over each class's samples, averaged over the classes the set holds: the cross-entropy under a uniform class
    prior, which weighs every class as balanced_accuracy does (the "class-balanced" loss of Cui et al., CVPR 2019,
    with inverse-frequency weights, read as a metric). The set is read to the host once.
    """
    import torch  # here: the figure process (trainer.evaluate.figure_worker) imports this module without torch

    names = [str(c) for c in range(classes)] if isinstance(classes, int) else classes
    num_classes = len(names)
    logits = logits.float()
    with torch.no_grad():
        # Everything from the max and the logsumexp: no softmax over the whole set is materialised.
        lse = torch.logsumexp(logits, dim=-1)
        top, pred = logits.max(dim=-1)
        per_sample = lse - logits.gather(1, target[:, None]).squeeze(1)
        by_class = torch.zeros(num_classes, dtype=torch.float64, device=logits.device).index_add_(
            0, target, per_sample.double())
        host = torch.cat([per_sample.mean().view(1), torch.exp(top - lse), pred.float(), target.float()]).cpu().numpy()
        by_class = by_class.cpu().numpy()
    n = len(target)
    ce_mean = float(host[0])
    conf_np = host[1:n + 1].astype(np.float64)
    pred_np, y_np = host[n + 1:2 * n + 1].astype(np.int64), host[2 * n + 1:].astype(np.int64)
    support = np.bincount(y_np, minlength=num_classes)
    scores = from_confusion(confusion_matrix(y_np, pred_np, num_classes))
    out = {
        "ce": ce_mean,
        "balanced_ce": float((by_class[support > 0] / support[support > 0]).mean()) if n else 0.0,
        "accuracy": scores["accuracy"],
        "balanced_accuracy": scores["balanced_accuracy"],
        "macro_f1": scores["macro_f1"],
        "ece": expected_calibration_error(conf_np, pred_np == y_np),
    }
    if per_class:
        out.update({f"recall/{key}": float(r) for key, r, p in zip(class_keys(names), scores["recall"],
                                                                    scores["present"]) if p})
    return out


# --- class names as metric keys ------------------------------------------------------------------------------

# Symbols that carry the meaning of a class name ("<=50K" vs ">50K"): spelt out rather than blanked.
SYMBOLS = {"<=": "le", ">=": "ge", "<": "lt", ">": "gt", "=": "eq", "+": "plus", "%": "pct", "&": "and"}
_SYMBOL = re.compile("|".join(re.escape(k) for k in SYMBOLS))
# MLflow takes letters, digits, _ - . space : / in keys; / nests a key and : is refused on Windows.
_NOT_ALLOWED = re.compile(r"[^\w\-. ]+")
MAX_CLASS_KEY = 200  # MLflow keys hold 250 characters; test/posthoc/recall/ takes 20


def _key_of(name: str) -> str:
    key = _SYMBOL.sub(lambda m: SYMBOLS[m[0]], unicodedata.normalize("NFC", str(name)))
    return _NOT_ALLOWED.sub("_", key).strip()[:MAX_CLASS_KEY].strip()


def class_keys(names: Sequence[str]) -> list[str]:
    """One MLflow metric-key part per class name, in the same order: valid, distinct, never nested.

    A name MLflow accepts stays as it is. Otherwise <, >, <=, >=, =, +, %, & are spelt out (lt, gt, le, ge, eq,
    plus, pct, and: "<50K" -> "lt50K", ">50K" -> "gt50K"), any other run of characters but letters, digits,
    _ - . and space becomes "_" ("T-shirt/top" -> "T-shirt_top"), and an empty name or one of dots becomes
    class_<index>. Keys that still collide (compared case-insensitively, as some databases do) get _2, _3, ...:
    names kept as they are first, then the others in class order, so the result depends on the names only.
    """
    base = []
    for i, name in enumerate(names):
        key = _key_of(name)
        base.append(key if key.strip(".") else f"class_{i}")
    keys: list[str | None] = [None] * len(base)
    taken: set[str] = set()
    order = sorted(range(len(base)), key=lambda i: (base[i] != str(names[i]), i))  # unchanged names first
    for i in order:
        key, n = base[i], 2
        while key.casefold() in taken:
            key, n = f"{base[i]}_{n}", n + 1
        keys[i] = key
        taken.add(key.casefold())
    return keys  # type: ignore[return-value]


# --- end-of-run metrics for imbalance: from scikit-learn and scipy, once per run --------------------------------

# Many / medium / few-shot: classes with > 100, 20..100 and < 20 training samples (Liu et al., "Large-Scale
# Long-Tailed Recognition in an Open World", CVPR 2019), as the long-tail papers report them on ImageNet-LT and
# CIFAR-100-LT. CIFAR-100-LT, whose head class has 500 training samples, is the smallest benchmark reported with
# them; a dataset whose largest class has n_max < 500 samples gets them scaled by n_max / 500.
SHOT_THRESHOLDS = (100.0, 20.0)
SHOT_REFERENCE_MAX = 500
SHOT_GROUPS = ("many_shot", "medium_shot", "few_shot")


def shot_thresholds(train_counts: Sequence[int], given: Sequence[float] | None = None) -> tuple[float, float]:
    """(many, few): many-shot classes have more than `many` training samples, few-shot ones fewer than `few`.

    given (eval.shot_thresholds) is used as it is; by default SHOT_THRESHOLDS times min(1, n_max / 500).
    """
    if given is not None:
        return float(given[0]), float(given[1])
    scale = min(1.0, max(train_counts) / SHOT_REFERENCE_MAX)
    return SHOT_THRESHOLDS[0] * scale, SHOT_THRESHOLDS[1] * scale


def shot_groups(train_counts: Sequence[int], thresholds: tuple[float, float]) -> dict[str, list[int]]:
    """The classes of each shot group: many (n > many), medium (few <= n <= many), few (n < few)."""
    many, few = thresholds
    groups = {g: [] for g in SHOT_GROUPS}
    for c, n in enumerate(train_counts):
        groups["many_shot" if n > many else "few_shot" if n < few else "medium_shot"].append(c)
    return groups


def minority_class(train_counts: Sequence[int]) -> int:
    """The class with the fewest training samples (the later one on a tie: class 1 of a balanced pair)."""
    return min(range(len(train_counts)), key=lambda c: (train_counts[c], -c))


def imbalance_metrics(probs: np.ndarray, target: np.ndarray, train_counts: Sequence[int],
                      thresholds: tuple[float, float]) -> dict[str, float]:
    """Metrics for imbalanced sets, from probabilities [N, C] (softmax of the logits) and labels [N].

    - auroc: ROC AUC, macro one-vs-rest over the classes the set holds (sklearn.metrics.roc_auc_score); for two
      classes the plain ROC AUC.
    - gmean: geometric mean of the recalls of the classes the set holds (scipy.stats.gmean of
      sklearn.metrics.recall_score), as imblearn.metrics.geometric_mean_score defines it.
    - many_shot_accuracy, medium_shot_accuracy, few_shot_accuracy: mean recall (per-class accuracy) of the classes
      of each shot group (shot_groups of train_counts) that the set holds; a group without such a class is absent.
    - two classes only, with positive = minority_class(train_counts): average_precision (AUC-PR,
      sklearn.metrics.average_precision_score) and minority_f1 (F1 of the positive class).
    A class with no sample in the set is left out of every mean; a metric it makes undefined is absent.
    """
    from scipy.stats import gmean
    from sklearn.metrics import average_precision_score, f1_score, recall_score, roc_auc_score

    num_classes = probs.shape[1]
    pred = probs.argmax(axis=1)
    present = [c for c in range(num_classes) if (target == c).any()]
    out: dict[str, float] = {}
    if not present:
        return out
    recall = dict(zip(present, recall_score(target, pred, labels=present, average=None, zero_division=0)))
    out["gmean"] = float(gmean(list(recall.values())))
    if len(present) >= 2:
        truth = target[:, None] == np.asarray(present)[None, :]  # one-vs-rest columns of the present classes
        out["auroc"] = float(roc_auc_score(truth, probs[:, present], average="macro"))
    for group, classes in shot_groups(train_counts, thresholds).items():
        scored = [recall[c] for c in classes if c in recall]
        if scored:
            out[f"{group}_accuracy"] = float(np.mean(scored))
    if num_classes == 2:
        pos = minority_class(train_counts)
        if pos in recall:
            out["minority_f1"] = float(f1_score(target, pred, pos_label=pos, average="binary", zero_division=0))
            if len(present) == 2:
                out["average_precision"] = float(average_precision_score(target == pos, probs[:, pos]))
    return out


def imbalance_report(probs: np.ndarray, target: np.ndarray, classes: Sequence[str], train_counts: Sequence[int],
                     given_thresholds: Sequence[float] | None = None) -> tuple[dict[str, float], dict[str, str]]:
    """imbalance_metrics of a set, and the tags that say how to read them: the shot thresholds used, the
    positive (minority) class of a two-class task, and the classes the set has no sample of (not scored)."""
    thresholds = shot_thresholds(train_counts, given_thresholds)
    tags = {"eval.shot_thresholds_used": f"{thresholds[0]:.4g},{thresholds[1]:.4g}"}
    if len(classes) == 2:
        tags["eval.minority_class"] = str(classes[minority_class(train_counts)])
    unscored = [str(name) for c, name in enumerate(classes) if not (target == c).any()]
    if unscored:
        tags["eval.unscored_classes"] = ", ".join(unscored)
        log.warning("no test sample of class %s: not scored (no recall logged; left out of balanced accuracy, "
                    "gmean, auroc and the shot accuracies)", ", ".join(repr(u) for u in unscored))
    return imbalance_metrics(probs, target, train_counts, thresholds), tags
