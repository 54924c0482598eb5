"""Scoring a model on a split: its logits, the per-epoch metrics of val, and the final scores of val and test (the
imbalance metrics and, when asked, post-hoc logit adjustment)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from trainer.data.types import Tensors
from trainer.evaluate.metrics import classification_metrics, imbalance_report
from trainer.models.losses import posthoc_adjust, predictive_logits
from trainer.models.regularization import penalty

EVAL_BATCH = 1024


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits [N, C] of the whole set x [N, ...], computed in eval mode in large batches, left on the device."""
    model.eval()
    return torch.cat([model(x[i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)])


def evaluate(model: nn.Module, data: Tensors, loss_fn: nn.Module, classes: list[str], l1: float = 0.0,
             l2: float = 0.0, per_class: bool = False, logits: torch.Tensor | None = None) -> dict[str, float]:
    """Metrics of a split: classification metrics plus `loss`, the objective (variant + penalties).

    logits: the model's logits of the split when the caller has them already (predict), to save a pass."""
    logits = predict(model, data.x) if logits is None else logits
    out = classification_metrics(predictive_logits(loss_fn, logits), data.y, classes, per_class=per_class)
    with torch.inference_mode():
        pen = penalty(model, l1, l2)
        if getattr(loss_fn, "is_plain_ce", False) and pen is None:
            out["loss"] = out["ce"]  # the same number: no second pass over the set
        else:
            loss = loss_fn(logits.float(), data.y)
            out["loss"] = float(loss if pen is None else loss + pen)
    return out


def posthoc_metrics(logits: torch.Tensor, target: torch.Tensor, loss_fn: nn.Module, counts: Sequence[int],
                    classes: list[str], tau: float) -> dict[str, float]:
    """Test metrics after post-hoc logit adjustment (eval.posthoc_tau), as test/posthoc/<metric>, beside the raw
    test/<metric>: the model's test logits minus tau * log(prior of the train counts), Menon et al. (ICLR 2021)."""
    adjusted = posthoc_adjust(predictive_logits(loss_fn, logits), counts, tau)
    return {f"test/posthoc/{k}": v for k, v in classification_metrics(adjusted, target, classes, per_class=True).items()}


@dataclass
class Scores:
    """The final scores of a trained model."""

    val: dict[str, float]
    test: dict[str, float]  # classification metrics, loss and recall/<class>
    imbalance: dict[str, float]  # test auroc, gmean, shot accuracies, ... (trainer.evaluate.metrics)
    tags: dict[str, str]  # how to read them: shot thresholds, minority class, unscored classes
    probs: np.ndarray  # [N, C] test class probabilities, for the figures
    target: np.ndarray  # [N] test labels
    posthoc: dict[str, float] = field(default_factory=dict)  # test/posthoc/* with eval.posthoc_tau

    def test_metrics(self) -> dict[str, float]:
        """Every test metric under its MLflow key: test/<metric>, test/posthoc/<metric>."""
        return {f"test/{k}": v for k, v in (self.test | self.imbalance).items()} | self.posthoc


def final_scores(model: nn.Module, val: Tensors, test: Tensors, loss_fn: nn.Module, classes: list[str],
                 regularization: tuple[float, float], counts: dict[str, list[int]],
                 shot_thresholds: Sequence[float] | None = None, posthoc_tau: float | None = None) -> Scores:
    """Val and test metrics of the trained model, the imbalance metrics of test (shot groups by the train counts
    before resampling) and, with posthoc_tau, test after post-hoc logit adjustment by the counts it trained on.
    One pass over test serves its metrics, the post-hoc ones and the figures' probabilities."""
    final_val = evaluate(model, val, loss_fn, classes, *regularization)
    logits = predict(model, test.x)
    final_test = evaluate(model, test, loss_fn, classes, *regularization, per_class=True, logits=logits)
    probs = torch.softmax(predictive_logits(loss_fn, logits).float(), dim=-1).cpu().numpy()
    target = test.y.cpu().numpy()
    imbalanced, tags = imbalance_report(probs, target, classes, counts["train_imbalanced"], shot_thresholds)
    posthoc = ({} if posthoc_tau is None else
               posthoc_metrics(logits, test.y, loss_fn, counts["train_resampled"], classes, posthoc_tau))
    return Scores(final_val, final_test, imbalanced, tags, probs, target, posthoc)
