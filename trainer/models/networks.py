"""Classifiers built by hydra's instantiate from conf/model/; each takes the input shape and class count."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainer.errors import UserError


def build_network(model_cfg: Any, in_shape: Sequence[int], num_classes: int, dropout: float = 0.0,
                  vocabulary: Any = None) -> nn.Module:
    """The model conf/model/ describes (its _target_ and settings), for inputs of in_shape and num_classes outputs;
    a text model (trainer.models.text, trainer.models.transformer) also gets the tokenizer's vocabulary.

    A UserError raised while building (a model that does not fit the data) comes out as itself, not wrapped in
    Hydra's InstantiationException, so the run ends with its one-line message.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    settings = {k: v for k, v in model_cfg.items() if k != "name"}
    text = {} if vocabulary is None else {"vocabulary": vocabulary}
    try:
        return instantiate(settings, in_shape=in_shape, num_classes=num_classes, dropout=dropout, **text)
    except InstantiationException as e:
        if isinstance(e.__cause__, UserError):
            raise e.__cause__ from None
        raise


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


def resnet18(in_shape: Sequence[int], num_classes: int, weights: str | None = None, dropout: float = 0.0,
             small_stem_below: int = 64, normed_head: bool = False) -> nn.Module:
    """torchvision's ResNet-18 for images (C, H, W), with num_classes outputs.

    Inputs smaller than small_stem_below px get the CIFAR-style stem (3x3 conv, stride 1, no max-pool): the
    ImageNet stem would shrink a 32 px image to 8 px before the first block. `weights` names torchvision
    weights (IMAGENET1K_V1, DEFAULT) or null for a random initialisation; with weights, the new stem (if any)
    and the classifier are fresh. Dropout, if any, acts on the pooled features before the classifier, which is
    a cosine classifier with normed_head.
    """
    import torchvision.models as tvm

    if len(in_shape) != 3:
        raise UserError(f"model=resnet18 takes images (C, H, W), but this dataset gives feature vectors of shape "
                        f"{tuple(in_shape)}: use model=mlp, logreg or cnn.")
    try:
        net = tvm.resnet18(weights=weights) if weights else tvm.resnet18(num_classes=num_classes)
    except KeyError as e:
        raise UserError(f"model.weights={weights} is not a torchvision weight of ResNet-18: use null, DEFAULT or "
                        f"{', '.join(w.name for w in tvm.ResNet18_Weights)}.") from e
    except OSError as e:  # URLError: no network to fetch the weights
        raise UserError(f"model.weights={weights}: downloading the weights failed ({e}). Run once on a machine with "
                        "internet (torch keeps them in ~/.cache/torch/hub/checkpoints), or use model.weights=null.") \
            from e
    channels, size = in_shape[0], min(in_shape[1:])
    if size < small_stem_below:
        net.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif channels != net.conv1.in_channels:
        stem = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        if weights and channels == 1:  # a grey image is the sum of equal R, G and B: sum the pretrained kernels
            stem.weight.data = net.conv1.weight.data.sum(dim=1, keepdim=True)
        net.conv1 = stem
    if weights or dropout or normed_head:
        head = classifier(net.fc.in_features, num_classes, normed_head)
        net.fc = nn.Sequential(nn.Dropout(dropout), head) if dropout else head
    return net
