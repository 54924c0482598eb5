"""What both loops train: a learnable synthetic problem, and a model built from the repository's conf/model.

Kept apart from the harness's modules: the memory case's child and the sweep case's bare script import it, and
neither should pay for MLflow or the trainer's training path."""
from __future__ import annotations

import torch
from omegaconf import OmegaConf

from benchmarks.repo import ROOT
from trainer.models.networks import build_network


def synthetic(n: int, features: int | tuple[int, ...], classes: int,
              seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A learnable synthetic problem: random inputs labelled by a random linear teacher (fast to make)."""
    g = torch.Generator().manual_seed(seed)
    shape = (features,) if isinstance(features, int) else features
    x = torch.randn(n, *shape, generator=g)
    teacher = torch.randn(x[0].numel(), classes, generator=g)
    y = (x.reshape(n, -1) @ teacher + 0.5 * torch.randn(n, classes, generator=g)).argmax(1)
    return x, y


def build_model(name: str, in_shape: tuple[int, ...], num_classes: int, seed: int) -> torch.nn.Module:
    """conf/model/<name>.yaml's network, its weights drawn from seed (no dropout)."""
    torch.manual_seed(seed)
    return build_network(OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml"), in_shape, num_classes, 0.0)
