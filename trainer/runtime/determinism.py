"""Seeds, deterministic kernels and a fixed thread count: the same config on the same machine repeats bit for bit.

On CPU the thread count changes the order of floating-point reductions, so it is fixed and logged;
on CUDA deterministic kernels cost speed and some operations have none (they warn instead of failing).
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def wanted(setting: bool | str, device: torch.device) -> bool:
    """trainer.deterministic: true, false, or auto (true on CPU, false on CUDA)."""
    return device.type == "cpu" if setting == "auto" else bool(setting)


def configure(seed: int, deterministic: bool, threads: int | None, device: torch.device) -> int:
    """Seed python, numpy and torch, fix the CPU thread count, switch deterministic kernels; return the threads."""
    if threads is not None:
        torch.set_num_threads(int(threads))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic and device.type == "cuda":
        # cuBLAS reads this when it creates its handle; without it deterministic matmuls raise.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=device.type != "cpu")
    torch.backends.cudnn.deterministic = deterministic
    if deterministic:
        torch.backends.cudnn.benchmark = False  # its autotuner may pick a different kernel on each run
    return torch.get_num_threads()
