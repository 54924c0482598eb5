"""What trainer.batch_size makes of the train split, checked before the first step: a batch of one sample that a
BatchNorm layer cannot train on is refused, a batch larger than the split is said."""
from __future__ import annotations

import logging

import torch
from torch import nn

from trainer.errors import UserError

log = logging.getLogger(__name__)


def last_batch(n: int, batch_size: int) -> int:
    """The size of an epoch's last batch when n samples are cut into batches of batch_size (the loop's slicing)."""
    return n % batch_size or min(n, batch_size)


def single_value_norms(model: nn.Module, sample: torch.Tensor) -> list[str]:
    """The BatchNorm layers of model that see one value per channel when a batch holds one sample (BatchNorm1d on
    features, or BatchNorm2d after the image has shrunk to 1x1): in training mode torch refuses such a batch with
    "Expected more than 1 value per channel". Found by one forward pass of `sample` (one input) in eval mode,
    which changes no running statistic; [] at once for a model without BatchNorm."""
    base = getattr(model, "_orig_mod", model)  # torch.compile's wrapper: look at the eager module, compile nothing
    norms = {name: m for name, m in base.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    if not norms:
        return []
    found: list[str] = []
    hooks = [m.register_forward_hook(lambda m, args, out, name=name: found.append(name)
                                     if args[0].numel() == args[0].shape[1] else None)
             for name, m in norms.items()]
    training = base.training
    try:
        base.eval()
        with torch.no_grad():
            base(sample[:1])
    finally:
        base.train(training)
        for h in hooks:
            h.remove()
    return found


def check_batches(model: nn.Module, train_x: torch.Tensor, n_train: int, batch_size: int, model_name: str) -> None:
    """UserError when an epoch's last batch (or every batch) would hold one sample and a BatchNorm layer of the model
    sees one value per channel on it (torch's ValueError mid-epoch otherwise), naming batch sizes that work; a
    warning when batch_size exceeds the train split, so that each epoch is a single full-batch step.

    train_x: the train inputs (only the first is used, for one forward pass); n_train: the samples an epoch draws."""
    if last_batch(n_train, batch_size) == 1:
        norms = single_value_norms(model, train_x)
        if norms:
            fits = [b for b in _near_sizes(batch_size) if last_batch(n_train, b) > 1][:2]
            which = "every batch holds" if batch_size == 1 else "the last batch of every epoch holds"
            raise UserError(f"trainer.batch_size={batch_size}: the train split holds {n_train:,} samples, so {which} "
                            f"one sample, and model={model_name} cannot train on it (its BatchNorm layer {norms[0]} "
                            "would see one value per channel). Choose a batch size that leaves at least two, e.g. "
                            + " or ".join(f"trainer.batch_size={b}" for b in fits) + ".")
    if batch_size > n_train:
        log.warning("trainer.batch_size=%d is larger than the train split (%d samples): each epoch is one "
                    "optimizer step on the whole split (full-batch training)", batch_size, n_train)


def _near_sizes(batch_size: int) -> list[int]:
    """Batch sizes of at least 2, nearest to batch_size first (13: 12, 14, 11, 15, ...)."""
    out = []
    for d in range(1, batch_size + 64):
        out += [b for b in (batch_size - d, batch_size + d) if b >= 2]
    return out
