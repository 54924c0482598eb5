"""Speed settings of the model's forward pass: bf16 autocast, channels-last images, torch.compile.

Applied as a wrapper around the model, so that every forward pass (training, evaluation, pseudo-labelling,
figures) runs the same way and the training loop stays unaware of them.
"""
from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn

from trainer.errors import UserError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


class Accelerated(nn.Module):
    """The model under autocast to `dtype` (None: float32), with 4-D inputs made channels-last.

    Logits come back as float32, so that losses and metrics are computed in full precision.
    """

    def __init__(self, net: nn.Module, dtype: torch.dtype | None, channels_last: bool) -> None:
        super().__init__()
        self.net, self.dtype, self.channels_last = net, dtype, channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=x.device.type, dtype=self.dtype or torch.float32,
                            enabled=self.dtype is not None):
            return self.net(x).float()


def has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def accelerate(model: nn.Module, cfg: DictConfig, device: torch.device) -> nn.Module:
    """Wrap the model as trainer.precision, trainer.channels_last and trainer.compile ask (itself by default)."""
    dtype = PRECISIONS[cfg.get("precision", "fp32")]
    if dtype is not None and device.type == "cpu" and not torch.backends.mkldnn.is_available():
        raise UserError("trainer.precision=bf16 needs a CUDA device or a CPU build with oneDNN: use "
                        "trainer.precision=fp32 here.")
    setting = cfg.get("channels_last", "auto")
    channels_last = has_conv2d(model) and (device.type == "cuda" if setting == "auto" else bool(setting))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if dtype is not None or channels_last:
        model = Accelerated(model, dtype, channels_last)
    if cfg.get("compile", False):
        model = torch.compile(model)
    return model
