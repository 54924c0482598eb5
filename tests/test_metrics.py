"""Our scikit-learn based metrics agree with torchmetrics' reference implementations."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainer.metrics import classification_metrics

torchmetrics = pytest.importorskip("torchmetrics", reason="torchmetrics is a dev dependency (pip install -e '.[dev]')")


@pytest.mark.parametrize("seed,num_classes,n", [(0, 10, 500), (1, 2, 300), (2, 5, 64)])
def test_metrics_equal_torchmetrics_on_random_inputs(seed, num_classes, n):
    from torchmetrics.classification import (MulticlassAccuracy, MulticlassCalibrationError, MulticlassF1Score,
                                             MulticlassRecall)

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
