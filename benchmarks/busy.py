"""A process that keeps every core busy until killed: large matrix products on torch's default thread count (the
contention case's neighbour). python -m benchmarks.busy"""
from __future__ import annotations

import torch


def main() -> None:
    a = torch.randn(1500, 1500)
    while True:
        a @ a


if __name__ == "__main__":
    main()
