"""Cross-entropy variants, all computed from logits with log-softmax, built by build_loss(cfg, class_counts).

Every module's forward(logits[N, C], target[N]) returns the batch mean. Class weights follow
torch.nn.functional.cross_entropy: a weighted mean divides by the sum of the target weights.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, ListConfig
from torch import nn

from trainer.config import ConfigError


def class_weights(counts: Sequence[int], scheme: str, beta: float = 0.999) -> torch.Tensor:
    """Per-class weights from train counts, scaled to sum to the number of classes C.

    inverse: 1 / n_c; inverse_sqrt: 1 / sqrt(n_c);
    effective_number: (1 - beta) / (1 - beta^n_c) (Cui et al., "Class-Balanced Loss Based on Effective
    Number of Samples", CVPR 2019). A class absent from the counts is treated as having one sample, so
    its weight stays finite.
    """
    n = torch.as_tensor(counts, dtype=torch.float64).clamp(min=1)
    if scheme == "inverse":
        w = 1.0 / n
    elif scheme == "inverse_sqrt":
        w = n.rsqrt()
    elif scheme == "effective_number":
        w = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), n)) if beta > 0 else torch.ones_like(n)
    else:
        raise ConfigError("loss.scheme", scheme, "one of inverse | inverse_sqrt | effective_number")
    return (w * len(n) / w.sum()).float()


class CrossEntropy(nn.Module):
    """-sum_c q_c log softmax(z)_c with q the (optionally smoothed) one-hot target, optionally class-weighted.

    Exactly torch.nn.functional.cross_entropy(logits, target, weight, label_smoothing=smoothing).
    """

    def __init__(self, weight: torch.Tensor | None = None, smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.smoothing = float(smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.to(logits.dtype)
        return F.cross_entropy(logits, target, weight=weight, label_smoothing=self.smoothing)


class FocalLoss(nn.Module):
    """Focal loss -alpha_y (1 - p_y)^gamma log p_y (Lin et al., "Focal Loss for Dense Object Detection", 2017).

    log p_y comes from log_softmax and 1 - p_y from -expm1(log p_y), so no probability is ever logged.
    The batch mean is a plain mean, as in torchvision.ops.sigmoid_focal_loss: for two classes with
    alpha = [1 - a, a] it equals sigmoid_focal_loss(z1 - z0, y, alpha=a, gamma) averaged.
    """

    def __init__(self, gamma: float = 2.0, alpha: torch.Tensor | None = None) -> None:
        super().__init__()
        self.gamma = float(gamma)
        self.register_buffer("alpha", alpha)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits, dim=-1).gather(-1, target[:, None]).squeeze(-1)
        loss = -logp
        if self.gamma != 0:
            # 1 - p_y can be exactly 0; the floor keeps the gradient of x^gamma (gamma < 1) finite there.
            one_minus_p = (-torch.expm1(logp)).clamp(min=torch.finfo(logp.dtype).tiny)
            loss = loss * one_minus_p.pow(self.gamma)
        if self.alpha is not None:
            loss = loss * self.alpha.to(logits.dtype)[target]
        return loss.mean()


def _focal_alpha(alpha: object, counts: Sequence[int]) -> torch.Tensor | None:
    num_classes = len(counts)
    if alpha is None:
        return None
    if alpha == "balanced":
        return class_weights(counts, "inverse")
    if isinstance(alpha, (int, float)):
        if num_classes != 2:
            raise ConfigError("loss.alpha", alpha, f"a list of {num_classes} per-class weights or 'balanced': "
                              "a single number is the weight of class 1 and means something only for two classes")
        return torch.tensor([1.0 - alpha, float(alpha)])
    if isinstance(alpha, (list, tuple, ListConfig)):
        if len(alpha) != num_classes:
            raise ConfigError("loss.alpha", list(alpha), f"a list of exactly {num_classes} weights, one per class")
        return torch.tensor([float(a) for a in alpha])
    raise ConfigError("loss.alpha", alpha, "null, a number in (0, 1), a list of per-class weights or 'balanced'")


def build_loss(cfg: DictConfig, class_counts: Sequence[int]) -> nn.Module:
    """Build the loss variant cfg.name from the class counts the model trains on."""
    name = cfg.name
    if name == "plain":
        return CrossEntropy()
    if name == "weighted":
        return CrossEntropy(weight=class_weights(class_counts, cfg.scheme, cfg.get("beta", 0.999)))
    if name == "label_smoothed":
        return CrossEntropy(smoothing=cfg.smoothing)
    if name == "focal":
        return FocalLoss(gamma=cfg.gamma, alpha=_focal_alpha(cfg.get("alpha"), class_counts))
    raise ConfigError("loss", name, "one of plain | weighted | label_smoothed | focal")


def loss_weights(loss: nn.Module) -> dict[str, list[float]]:
    """The class weights or alphas a built loss uses, for the record."""
    return {name: buf.tolist() for name, buf in loss.named_buffers() if buf is not None}
