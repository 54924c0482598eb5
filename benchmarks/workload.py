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


def build_model(name: str, in_shape: tuple[int, ...], num_classes: int, seed: int,
                vocabulary: object = None) -> torch.nn.Module:
    """conf/model/<name>.yaml's network, its weights drawn from seed (no dropout); text models take the
    vocabulary (trainer.data.types.Vocabulary) of their token ids."""
    torch.manual_seed(seed)
    return build_network(OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml"), in_shape, num_classes, 0.0,
                         vocabulary)


def token_ids(n: int, length: int, vocab_size: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable tokenised documents: (n, length) int64 ids, 2 ([CLS]) first, then 16..length-1 tokens drawn
    Zipf-like from a vocabulary of which each class favours its own slice, padded with 0 after; and the classes."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    ranks = torch.arange(1, vocab_size - 2, dtype=torch.float64)
    draws = torch.multinomial((1 / ranks).expand(n, -1), length - 1, replacement=True, generator=g) + 3
    own = torch.rand(n, length - 1, generator=g) < 0.3
    slice_ = (vocab_size - 3) // classes
    draws = torch.where(own, 3 + y[:, None] * slice_ + draws % slice_, draws)
    lengths = torch.randint(16, length, (n,), generator=g)
    ids = torch.cat([torch.full((n, 1), 2), draws], dim=1)
    ids[torch.arange(length)[None, :] > lengths[:, None]] = 0
    return ids, y
