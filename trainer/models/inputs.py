"""On-device input preparation for image datasets: training augmentation and normalisation, per batch.

Placed as a module in front of the model, so the training loop stays unaware of it: model.train() turns the
augmentation on, model.eval() (validation, test) turns it off. Pixels arrive on the 0..255 scale, as uint8, or
as float32 after a resampler has interpolated them.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from trainer.data.standardize import channel_stats
from trainer.data.types import Dataset


def random_crop_flip(x: torch.Tensor, padding: int) -> torch.Tensor:
    """Each image shifted by a random crop of its zero-padded self and mirrored left-right with probability 1/2.

    One gather for the whole batch, on whatever device x is on (the same as torchvision's RandomCrop(padding)
    followed by RandomHorizontalFlip, drawn independently per image).
    """
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dev = x.device
    dy = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=dev)
    dx = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=dev)
    flip = torch.rand(n, 1, 1, device=dev) < 0.5
    cols = torch.arange(w, device=dev).view(1, 1, w)
    cols = torch.where(flip, w - 1 - cols, cols) + dx
    rows = torch.arange(h, device=dev).view(1, h, 1) + dy
    index = (rows * (w + 2 * padding) + cols).view(n, 1, h * w).expand(n, c, h * w)
    return padded.flatten(2).gather(2, index).view(n, c, h, w)


class ImageInput(nn.Module):
    """Pixels (0..255, uint8 or float) -> float, augmented in train mode if asked -> normalised per channel."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, augment: bool = False) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.augment = augment

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.training and self.augment:
            x = random_crop_flip(x, padding=max(1, min(x.shape[-2:]) // 8))  # 4 px on 32 px, as for CIFAR
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"channels={self.mean.shape[1]}, augment={self.augment}"


def with_inputs(model: nn.Module, ds: Dataset, dataset_cfg: DictConfig) -> nn.Module:
    """model itself for feature data; for images, ImageInput followed by model, normalising with the statistics
    of the real train images (ds.pixel_stats, taken before resampling), or of ds.train when it has none."""
    if not ds.images:
        return model
    mean, std = ds.pixel_stats if ds.pixel_stats is not None else channel_stats(ds.train.x)
    inputs = ImageInput(mean, std, augment=bool(dataset_cfg.get("augment", False)))
    return nn.Sequential(OrderedDict(inputs=inputs, model=model))
