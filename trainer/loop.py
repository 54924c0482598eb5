"""The training loop: device-resident tensors indexed per batch, one host read per epoch, early stopping."""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer import ssl
from trainer.config import UserError
from trainer.losses import predictive_logits
from trainer.metrics import classification_metrics

EVAL_BATCH = 1024


@dataclass(frozen=True)
class Tensors:
    """A split on the training device."""

    x: torch.Tensor
    y: torch.Tensor


@dataclass(frozen=True)
class FitConfig:
    epochs: int
    batch_size: int
    patience: int | None = None  # epochs without a val/ce improvement before stopping; None: never stop early
    min_delta: float = 0.0
    l1: float = 0.0
    l2: float = 0.0
    grad_clip: float | None = None  # max total gradient norm; None: no clipping
    balanced_batches: bool = False  # class-balanced draws with replacement instead of a shuffle (balanced_sampler)
    progress: bool | None = None  # None: a progress bar only when stderr is a terminal


@dataclass
class FitResult:
    epochs_run: int
    best_epoch: int
    best_val_ce: float
    stopped_early: bool


class NonFiniteLoss(UserError):
    def __init__(self, epoch: int, step: int) -> None:
        super().__init__(
            f"the training loss became non-finite (NaN or inf) at epoch {epoch}, step {step}. Lower optim.lr, "
            "check the loss settings, or try trainer.grad_clip; the weights of the last good epoch are kept.")


def penalty(model: nn.Module, l1: float, l2: float) -> torch.Tensor | None:
    """l1 * sum|w| + l2 * sum w^2 over weight matrices and kernels (parameters of 2+ dims, not biases)."""
    if not (l1 or l2):
        return None
    weights = [p for p in model.parameters() if p.ndim > 1]
    total = torch.zeros((), device=weights[0].device)
    if l1:
        total = total + l1 * sum(p.abs().sum() for p in weights)
    if l2:
        total = total + l2 * sum(p.pow(2).sum() for p in weights)
    return total


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits of the whole set, computed in eval mode in large batches, left on the device."""
    model.eval()
    return torch.cat([model(x[i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)])


def evaluate(model: nn.Module, data: Tensors, loss_fn: nn.Module, classes: list[str], l1: float = 0.0,
             l2: float = 0.0, per_class: bool = False) -> dict[str, float]:
    """Metrics of a split: classification metrics plus `loss`, the objective (variant + penalties)."""
    logits = predict(model, data.x)
    out = classification_metrics(predictive_logits(loss_fn, logits), data.y, classes, per_class=per_class)
    with torch.inference_mode():
        loss = loss_fn(logits.float(), data.y)
        pen = penalty(model, l1, l2)
        out["loss"] = float(loss if pen is None else loss + pen)
    return out


# --- which samples an epoch trains on: the per-epoch order, and pseudo-labels between epochs -------------------

def epoch_indices(y: torch.Tensor, generator: torch.Generator, balanced: bool = False) -> torch.Tensor:
    """This epoch's order of train indices (on the CPU): a shuffle, or with balanced=True len(y) class-balanced draws.

    The balanced draws come from torch's WeightedRandomSampler, each sample weighted 1 / (its class's count) and
    drawn with replacement: every class is equally likely at every position, and no sample is materialised.
    """
    if not balanced:
        return torch.randperm(len(y), generator=generator)
    from torch.utils.data import WeightedRandomSampler

    weights = (1.0 / torch.bincount(y).double())[y].cpu()
    return torch.tensor(list(WeightedRandomSampler(weights, len(y), replacement=True, generator=generator)))


def epoch_train_set(model: nn.Module, train: Tensors, pseudo: ssl.PseudoLabeling | None,
                    epoch: int) -> tuple[Tensors, dict[str, float]]:
    """The train set of this epoch: the labeled train tensors, plus (ssl=pseudo_label, after the warm-up) the
    unlabeled samples the current model labels with confidence above the threshold; their count as a metric."""
    if pseudo is None:
        return train, {}
    if epoch <= pseudo.warmup_epochs:
        return train, {"ssl/pseudo_labels": 0.0}
    idx, labels = ssl.confident(predict(model, pseudo.x), pseudo.threshold)
    data = Tensors(torch.cat([train.x, pseudo.x[idx]]), torch.cat([train.y, labels]))
    return data, {"ssl/pseudo_labels": float(len(idx))}

# ----------------------------------------------------------------------------------------------------------------


def train_epoch(model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer, data: Tensors,
                cfg: FitConfig, generator: torch.Generator, epoch: int) -> dict[str, float]:
    """One pass over the shuffled train tensors; returns train/loss and train/ce (one host read)."""
    model.train()
    n = len(data.y)
    device = data.y.device
    perm = epoch_indices(data.y, generator, cfg.balanced_batches).to(device, non_blocking=True)
    sums = torch.zeros(2, device=device, dtype=torch.float64)  # objective, plain ce
    first_bad = torch.full((), -1, device=device, dtype=torch.long)
    for step, start in enumerate(range(0, n, cfg.batch_size)):
        idx = perm[start:start + cfg.batch_size]
        xb, yb = data.x[idx], data.y[idx]
        logits = model(xb)
        loss = loss_fn(logits, yb)
        pen = penalty(model, cfg.l1, cfg.l2)
        if pen is not None:
            loss = loss + pen
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        with torch.no_grad():
            ce = F.cross_entropy(predictive_logits(loss_fn, logits.detach().float()), yb, reduction="sum")
            sums += torch.stack([loss.detach() * len(idx), ce])
            # Recorded on the device and read once per epoch, so the check costs no host sync per step.
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), step, first_bad)
    bad = int(first_bad)
    if bad >= 0:
        raise NonFiniteLoss(epoch, bad)
    loss_sum, ce_sum = sums.tolist()
    return {"loss": loss_sum / n, "ce": ce_sum / n}


def fit(model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer, train: Tensors, val: Tensors,
        classes: list[str], cfg: FitConfig, generator: torch.Generator,
        on_epoch: Callable[[int, dict[str, float]], None],
        pseudo: ssl.PseudoLabeling | None = None) -> FitResult:
    """Train for cfg.epochs (or until val/ce stops improving), then restore the weights of the best epoch.

    on_epoch(epoch, metrics) receives, once per epoch (1-based), train/ and val/ metrics and lr (and
    ssl/pseudo_labels when pseudo, the unlabeled pool of ssl=pseudo_label, is given).
    """
    from tqdm.auto import tqdm

    best_ce, best_epoch, best_state, wait = float("inf"), 0, None, 0
    bar = tqdm(range(1, cfg.epochs + 1), desc="epochs", unit="ep", disable=(None if cfg.progress is None
                                                                               else not cfg.progress))
    epoch = 0
    for epoch in bar:
        if hasattr(loss_fn, "set_epoch"):  # losses that change with the epoch (ldam's deferred re-weighting)
            loss_fn.set_epoch(epoch)
        data, ssl_metrics = epoch_train_set(model, train, pseudo, epoch)
        tr = train_epoch(model, loss_fn, optimizer, data, cfg, generator, epoch)
        va = evaluate(model, val, loss_fn, classes, cfg.l1, cfg.l2)
        metrics = {f"train/{k}": v for k, v in tr.items()} | {f"val/{k}": v for k, v in va.items()} | ssl_metrics
        metrics["lr"] = optimizer.param_groups[0]["lr"]
        on_epoch(epoch, metrics)
        bar.set_postfix({"val/ce": f"{va['ce']:.4f}", "val/bal_acc": f"{va['balanced_accuracy']:.3f}"})
        if va["ce"] < best_ce - cfg.min_delta:
            best_ce, best_epoch, wait = va["ce"], epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            wait += 1
            if cfg.patience is not None and wait >= cfg.patience:
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return FitResult(epochs_run=epoch, best_epoch=best_epoch, best_val_ce=best_ce,
                     stopped_early=epoch < cfg.epochs)
