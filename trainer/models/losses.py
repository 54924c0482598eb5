"""Cross-entropy variants, all computed from logits with log-softmax, built by build_loss(cfg, class_counts).

Every module's forward(logits[N, C], target[N]) returns the batch mean. Class weights follow
torch.nn.functional.cross_entropy: a weighted mean divides by the sum of the target weights. Only `naive`
takes the log of a probability, on purpose, to show what the stable forms avoid.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, ListConfig
from torch import nn

from trainer.errors import ConfigError

# log(1e-4): the log of the clamped zero of a one-hot label in the reverse cross-entropy of Wang et al.'s code.
SCE_LOG_ZERO = math.log(1e-4)


def _counts(counts: Sequence[int]) -> torch.Tensor:
    # A class absent from the counts is treated as having one sample: its weight, prior and margin stay finite.
    return torch.as_tensor(counts, dtype=torch.float64).clamp(min=1)


def class_weights(counts: Sequence[int], scheme: str, beta: float = 0.999) -> torch.Tensor:
    """Per-class weights from train counts, scaled to sum to the number of classes C.

    inverse: 1 / n_c; inverse_sqrt: 1 / sqrt(n_c);
    effective_number: (1 - beta) / (1 - beta^n_c) (Cui et al., "Class-Balanced Loss Based on Effective
    Number of Samples", CVPR 2019). A class absent from the counts is treated as having one sample, so
    its weight stays finite.
    """
    n = _counts(counts)
    if scheme == "inverse":
        w = 1.0 / n
    elif scheme == "inverse_sqrt":
        w = n.rsqrt()
    elif scheme == "effective_number":
        w = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), n)) if beta > 0 else torch.ones_like(n)
    else:
        raise ConfigError("loss.scheme", scheme, "one of inverse | inverse_sqrt | effective_number")
    return (w * len(n) / w.sum()).float()


def log_prior(counts: Sequence[int]) -> torch.Tensor:
    """log(n_c / sum_k n_k), the log of the train label prior (an absent class counts as one sample)."""
    n = _counts(counts)
    return (n / n.sum()).log().float()


def posthoc_adjust(logits: torch.Tensor, counts: Sequence[int], tau: float) -> torch.Tensor:
    """Post-hoc logit adjustment: logits - tau * log(prior) (Menon et al., "Long-tail learning via logit
    adjustment", ICLR 2021), the balanced-error prediction of a model trained with any loss."""
    return logits - tau * log_prior(counts).to(logits.device, logits.dtype)


def _log_p_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits, dim=-1).gather(-1, target[:, None]).squeeze(-1)


def _one_minus_p(log_p: torch.Tensor) -> torch.Tensor:
    # 1 - p_y from log p_y without forming p_y: exact where p_y is close to 1.
    return -torch.expm1(log_p)


class CrossEntropy(nn.Module):
    """-w_y sum_c q_c log softmax(z)_c, q = (1 - smoothing) one_hot(y) + smoothing / C; batch mean divided by
    the sum of the target weights w_y (by N without weights).

    Without smoothing this is torch.nn.functional.cross_entropy(logits, target, weight). With smoothing and
    weights it is not PyTorch's weighted label smoothing, which weights each class's smoothing term by that
    class's w_c: for counts [100, 10, 1] and inverse weights a class-0 sample's loss is then minimised with
    0.73 of the probability on class 2. Here the per-sample weight w_y multiplies the whole smoothed
    cross-entropy (Szegedy et al., CVPR 2016, re-weighted per sample), so every sample's optimum is its q.
    """

    def __init__(self, weight: torch.Tensor | None = None, smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.smoothing = float(smoothing)

    @property
    def is_plain_ce(self) -> bool:
        """True when this is the plain, unweighted cross-entropy: the trainer then reads train/ce off the loss."""
        return self.weight is None and self.smoothing == 0.0

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.to(logits.dtype)
        if weight is None or self.smoothing == 0.0:
            return F.cross_entropy(logits, target, weight=weight, label_smoothing=self.smoothing)
        per_sample = F.cross_entropy(logits, target, label_smoothing=self.smoothing, reduction="none")
        w = weight[target]
        return (w * per_sample).sum() / w.sum()


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
        logp = _log_p_target(logits, target)
        loss = -logp
        if self.gamma != 0:
            # 1 - p_y can be exactly 0; the floor keeps the gradient of x^gamma (gamma < 1) finite there.
            one_minus_p = _one_minus_p(logp).clamp(min=torch.finfo(logp.dtype).tiny)
            loss = loss * one_minus_p.pow(self.gamma)
        if self.alpha is not None:
            loss = loss * self.alpha.to(logits.dtype)[target]
        return loss.mean()


class LogitAdjusted(nn.Module):
    """Cross-entropy on shifted logits, CE(z + offset, y), with a fixed per-class offset.

    logit_adjusted: offset_c = tau * log(pi_c), pi the train label prior (Menon et al., "Long-tail
    learning via logit adjustment", ICLR 2021).
    balanced_softmax: offset_c = log(n_c) (Ren et al., "Balanced Meta-Softmax for Long-Tailed Visual
    Recognition", NeurIPS 2020); the same loss as tau = 1, since softmax ignores the constant log(sum n).
    At test time the model predicts with the raw logits z.
    """

    def __init__(self, offset: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("offset", offset)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits + self.offset.to(logits.dtype), target)


class LDAMLoss(nn.Module):
    """Label-distribution-aware margin loss (Cao et al., "Learning Imbalanced Datasets with Label-Distribution-
    Aware Margin Loss", NeurIPS 2019): CE(s * (z - m_y e_y), y), weighted as F.cross_entropy.

    m_c = max_margin * (min_k n_k / n_c)^(1/4): proportional to n_c^(-1/4), the rarest class gets max_margin.
    Deferred re-weighting (DRW): from the epoch after drw_epoch on, the class-balanced weights
    (1 - beta) / (1 - beta^n_c), scaled to sum to C, weight the loss; before that it is unweighted.
    The model predicts with s * z (no margin), so `logit_scale` = s tells the metrics which logits to score.
    """

    def __init__(self, counts: Sequence[int], max_margin: float = 0.5, scale: float = 30.0,
                 drw_epoch: int | None = None, drw_beta: float = 0.9999) -> None:
        super().__init__()
        quarter = _counts(counts).pow(-0.25)
        self.register_buffer("margins", (max_margin * quarter / quarter.max()).float())
        self.register_buffer("drw_weight", None if drw_epoch is None else class_weights(counts, "effective_number",
                                                                                          drw_beta))
        self.logit_scale = float(scale)
        self.drw_epoch = drw_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the training loop at the start of each (1-based) epoch."""
        self.epoch = epoch

    @property
    def weight(self) -> torch.Tensor | None:
        """The class weights in force this epoch: None until drw_epoch epochs are done, then the DRW weights."""
        if self.drw_epoch is None or self.epoch <= self.drw_epoch:
            return None
        return self.drw_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        margin = F.one_hot(target, logits.shape[-1]).to(logits.dtype) * self.margins.to(logits.dtype)[target, None]
        weight = self.weight
        weight = None if weight is None else weight.to(logits.dtype)
        return F.cross_entropy(self.logit_scale * (logits - margin), target, weight=weight)


class PolyLoss(nn.Module):
    """Poly-1 loss: CE + epsilon * (1 - p_y) (Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
    Classification Loss Functions", ICLR 2022)."""

    def __init__(self, epsilon: float = 1.0) -> None:
        super().__init__()
        self.epsilon = float(epsilon)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = _log_p_target(logits, target)
        return (-logp + self.epsilon * _one_minus_p(logp)).mean()


class GeneralizedCE(nn.Module):
    """Generalized cross-entropy (1 - p_y^q) / q (Zhang & Sabuncu, "Generalized Cross Entropy Loss for Training
    Deep Neural Networks with Noisy Labels", NeurIPS 2018): CE as q -> 0, MAE (1 - p_y) at q = 1.

    Computed as -expm1(q log p_y) / q, so p_y is never formed and small q loses no precision.
    """

    def __init__(self, q: float = 0.7) -> None:
        super().__init__()
        self.q = float(q)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (-torch.expm1(self.q * _log_p_target(logits, target)) / self.q).mean()


class SymmetricCE(nn.Module):
    """Symmetric cross-entropy alpha * CE + beta * RCE (Wang et al., "Symmetric Cross Entropy for Robust
    Learning with Noisy Labels", ICCV 2019).

    RCE = -sum_c p_c log q_c with the one-hot label's zeros clamped to 1e-4 as in the authors' code, which
    is -A * (1 - p_y) with A = log(1e-4).
    """

    def __init__(self, alpha: float = 0.1, beta: float = 1.0) -> None:
        super().__init__()
        self.alpha, self.beta = float(alpha), float(beta)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = _log_p_target(logits, target)
        return (self.alpha * -logp + self.beta * -SCE_LOG_ZERO * _one_minus_p(logp)).mean()


class NaiveCE(nn.Module):
    """The textbook cross-entropy, kept to show what the stable forms avoid: p = exp(z) / sum exp(z), then
    -sum_c y_c log(p_c + eps), or with clip -sum_c y_c log(clip(p_c, eps, 1 - eps)) as Keras does.

    Not for training: exp overflows for logits above ~88 (float32) and the loss is NaN, with or without
    clipping (clipping a NaN gives NaN); a target probability that underflows saturates the loss at
    -log(eps) (34.54 for 1e-15) with a vanishing (or, clipped, zero) gradient.
    """

    def __init__(self, eps: float = 1e-15, clip: bool = False) -> None:
        super().__init__()
        self.eps, self.clip = float(eps), bool(clip)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        e = logits.exp()
        p = e / e.sum(dim=-1, keepdim=True)
        logp = p.clamp(self.eps, 1 - self.eps).log() if self.clip else (p + self.eps).log()
        y = F.one_hot(target, logits.shape[-1]).to(logits.dtype)
        return -(y * logp).sum(dim=-1).mean()


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


def _label_smoothed(cfg: DictConfig, counts: Sequence[int]) -> nn.Module:
    scheme = cfg.get("scheme")
    weight = None if scheme is None else class_weights(counts, scheme, cfg.get("beta", 0.999))
    return CrossEntropy(weight=weight, smoothing=cfg.smoothing)


def _class_balanced(cfg: DictConfig, counts: Sequence[int]) -> nn.Module:
    weight = class_weights(counts, "effective_number", cfg.beta)
    if cfg.base == "ce":
        return CrossEntropy(weight=weight)
    if cfg.base == "focal":
        return FocalLoss(gamma=cfg.gamma, alpha=weight)
    raise ConfigError("loss.base", cfg.base, "one of ce | focal")


BUILDERS: dict[str, Callable[[DictConfig, Sequence[int]], nn.Module]] = {
    "plain": lambda cfg, n: CrossEntropy(),
    "weighted": lambda cfg, n: CrossEntropy(weight=class_weights(n, cfg.scheme, cfg.get("beta", 0.999))),
    "label_smoothed": _label_smoothed,
    "focal": lambda cfg, n: FocalLoss(gamma=cfg.gamma, alpha=_focal_alpha(cfg.get("alpha"), n)),
    "class_balanced": _class_balanced,
    "logit_adjusted": lambda cfg, n: LogitAdjusted(cfg.tau * log_prior(n)),
    "balanced_softmax": lambda cfg, n: LogitAdjusted(_counts(n).log().float()),
    "ldam": lambda cfg, n: LDAMLoss(n, cfg.max_margin, cfg.scale, cfg.get("drw_epoch"), cfg.get("drw_beta", 0.9999)),
    "poly": lambda cfg, n: PolyLoss(cfg.epsilon),
    "gce": lambda cfg, n: GeneralizedCE(cfg.q),
    "sce": lambda cfg, n: SymmetricCE(cfg.alpha, cfg.beta),
    "naive": lambda cfg, n: NaiveCE(cfg.eps, cfg.clip),
}


def build_loss(cfg: DictConfig, class_counts: Sequence[int]) -> nn.Module:
    """Build the loss variant cfg.name from the class counts the model trains on."""
    builder = BUILDERS.get(cfg.name)
    if builder is None:
        raise ConfigError("loss", cfg.name, "one of " + " | ".join(BUILDERS))
    return builder(cfg, list(class_counts))


def predictive_logits(loss: nn.Module, logits: torch.Tensor) -> torch.Tensor:
    """The logits the trained model predicts with: the model's output times the loss's `logit_scale` (ldam's s),
    so that ce, ece and the other metrics score the distribution the loss trained."""
    scale = getattr(loss, "logit_scale", None)
    return logits if scale is None else logits * scale


def loss_weights(loss: nn.Module) -> dict[str, list[float]]:
    """The class weights, alphas, offsets or margins a built loss uses, for the record."""
    return {name: buf.tolist() for name, buf in loss.named_buffers() if buf is not None}
