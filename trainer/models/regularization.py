"""The weight penalties of regularization=l1 | l2 | elastic, added to the objective the optimizer minimises."""
from __future__ import annotations

import torch
from torch import nn


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
