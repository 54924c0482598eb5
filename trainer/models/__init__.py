"""Model and objective: networks, losses, optimizers, on-device inputs, speed wrappers.

The networks are importable from here as well: configs name them so (`_target_: trainer.models.MLP`), and runs
logged with those names must keep resuming and reproducing.
"""
from trainer.models.networks import CNN, MLP, LogReg, NormedLinear, resnet18
from trainer.models.text import NgramBag, TextCNN
from trainer.models.transformer import transformer

__all__ = ["CNN", "MLP", "LogReg", "NgramBag", "NormedLinear", "TextCNN", "resnet18", "transformer"]
