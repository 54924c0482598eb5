"""The optimizer, with weight decay on weight matrices and kernels only, as torchvision's reference scripts do."""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig
from torch import nn

# Normalization layers, whose affine weights (scale) are exempt from weight decay like biases are.
NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm,
               nn.LocalResponseNorm)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two optimizer groups: weights with weight_decay, and biases and normalization parameters without it
    (one group of all parameters when weight_decay is 0).

    Decaying a bias or a normalization scale only pulls the layer's offset or gain towards zero, which does not
    regularise the function (torchvision's reference scripts set norm_weight_decay=0 for the same reason).
    """
    if not weight_decay:  # nothing to exempt: one group, and the optimizer's per-group work is done once a step
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": 0.0}]
    no_decay_ids = {id(p) for m in model.modules() if isinstance(m, NORM_LAYERS) for p in m.parameters(recurse=False)}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exempt = id(p) in no_decay_ids or name.endswith("bias") or p.ndim <= 1
        (no_decay if exempt else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(cfg: DictConfig, model: nn.Module) -> Any:
    """instantiate the optimizer of conf/optim/ over the model's parameter groups (see param_groups)."""
    from hydra.utils import instantiate

    settings = {k: v for k, v in cfg.items() if k != "name"}
    # Built partial, then called: passed through instantiate, the groups' dicts would become DictConfigs.
    make = instantiate(settings, _partial_=True)
    return make(param_groups(model, float(cfg.get("weight_decay", 0.0))))
