"""Imbalance-aware classification metrics of a whole evaluation set, from its logits in one pass."""
from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn.functional as F

ECE_BINS = 15


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


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE with equal-width confidence bins: sum_b |B_b|/N * |accuracy(B_b) - confidence(B_b)|."""
    _, conf_sum, acc_sum = calibration_bins(confidence, correct, n_bins)
    return float(np.abs(acc_sum - conf_sum).sum() / max(len(confidence), 1))


def classification_metrics(logits: torch.Tensor, target: torch.Tensor, classes: list[str] | int,
                           per_class: bool = False) -> dict[str, float]:
    """ce, accuracy, balanced_accuracy, macro_f1 and ece of a set; with per_class, recall/<name> of each class.

    ce is the plain mean cross-entropy of the true class. The logits are read to the host once.
    """
    from sklearn.metrics import balanced_accuracy_score, f1_score, recall_score

    ce = F.cross_entropy(logits.float(), target)
    probs = torch.softmax(logits.float(), dim=-1)
    conf, pred = probs.max(dim=-1)
    ce, conf, pred, y = ce.item(), conf.double().cpu().numpy(), pred.cpu().numpy(), target.cpu().numpy()
    names = [str(c) for c in range(classes)] if isinstance(classes, int) else classes
    labels = list(range(len(names)))
    out = {
        "ce": ce,
        "accuracy": float((pred == y).mean()),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "ece": expected_calibration_error(conf, pred == y),
    }
    if per_class:
        recalls = recall_score(y, pred, labels=labels, average=None, zero_division=0)
        out.update({f"recall/{metric_key(n)}": float(r) for n, r in zip(names, recalls)})
    return out


def metric_key(name: str) -> str:
    """A class name made safe for an MLflow metric key (letters, digits, _ - . space / only)."""
    return re.sub(r"[^\w\-. /]", "_", name)
