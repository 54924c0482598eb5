"""Classifiers built by hydra's instantiate from conf/model/; each takes the input shape and class count."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class NormedLinear(nn.Module):
    """Cosine classifier: logit_c = <x / |x|, w_c / |w_c|> in [-1, 1], no bias.

    The head Cao et al. (NeurIPS 2019) pair with the LDAM loss, whose `scale` turns cosines into logits.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's initialisation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(x, dim=-1), F.normalize(self.weight, dim=-1))


def classifier(in_features: int, num_classes: int, normed_head: bool = False) -> nn.Module:
    """The last layer of every model: nn.Linear, or NormedLinear with model.normed_head=true."""
    return NormedLinear(in_features, num_classes) if normed_head else nn.Linear(in_features, num_classes)


class LogReg(nn.Module):
    """Multinomial logistic regression on the flattened input (dropout, if any, on the input)."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, dropout: float = 0.0,
                 normed_head: bool = False) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Dropout(dropout),
                                 classifier(math.prod(in_shape), num_classes, normed_head))

    def forward(self, x):
        return self.net(x)


class MLP(nn.Module):
    """Fully connected ReLU network on the flattened input, dropout after each hidden layer."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (256, 128),
                 dropout: float = 0.0, normed_head: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(classifier(width, num_classes, normed_head))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class CNN(nn.Module):
    """Two conv-ReLU-pool blocks and a small head.

    Images (C, H, W) use 2-D convolutions; feature vectors (F,) are read as a one-channel 1-D signal.
    """

    def __init__(self, in_shape: Sequence[int], num_classes: int, channels: Sequence[int] = (32, 64),
                 hidden: int = 128, dropout: float = 0.0, normed_head: bool = False) -> None:
        super().__init__()
        if len(in_shape) not in (1, 3):
            raise ValueError(f"cnn takes images (C, H, W) or vectors (F,), got input shape {tuple(in_shape)}")
        two_d = len(in_shape) == 3
        conv, pool, adaptive = ((nn.Conv2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d) if two_d
                                else (nn.Conv1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d))
        self.unsqueeze = not two_d
        in_ch, size = (in_shape[0], min(in_shape[1:])) if two_d else (1, in_shape[0])
        layers: list[nn.Module] = []
        for ch in channels:
            layers += [conv(in_ch, ch, 3, padding=1), nn.ReLU()]
            if size >= 4:  # pool while the map is at least 4 wide, so small inputs keep some spatial extent
                layers.append(pool(2))
                size //= 2
            in_ch = ch
        out = min(size, 4)
        layers += [adaptive(out), nn.Flatten()]
        features = in_ch * out ** (2 if two_d else 1)
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  classifier(hidden, num_classes, normed_head))

    def forward(self, x):
        if self.unsqueeze:
            x = x.unsqueeze(1)
        return self.head(self.features(x))
