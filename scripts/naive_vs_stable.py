"""Print the README table: the textbook cross-entropy (loss=naive) beside the stable form (loss=plain) on
extreme logits, in float32 as training runs. Usage: python scripts/naive_vs_stable.py"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainer.models.losses import CrossEntropy, NaiveCE  # noqa: E402

CASES = [  # (logits, target, what it shows)
    ([2.0, 1.0, 0.0], 0, "ordinary logits"),
    ([0.0, -50.0], 1, "confident and wrong"),
    ([100.0, 0.0], 0, "a logit above 88: exp overflows"),
    ([1e4, -1e4], 1, "magnitude 1e4, target on the smallest"),
    ([-1e4, -1e4], 0, "all logits -1e4: exp underflows"),
]
LOSSES = {"naive": NaiveCE(), "naive, clip": NaiveCE(clip=True), "stable (plain)": CrossEntropy()}


def row(logits: list[float], target: int) -> list[str]:
    """Loss and d loss / d z_target of each form, as table cells."""
    cells = []
    for loss in LOSSES.values():
        z = torch.tensor([logits], requires_grad=True)
        value = loss(z, torch.tensor([target]))
        (grad,) = torch.autograd.grad(value, z)
        cells.append(f"{value.item() + 0.0:.4g} / {grad[0, target].item() + 0.0:.3g}")
    return cells


def main() -> None:
    print("| case | logits | target | " + " | ".join(f"{name}: loss / grad" for name in LOSSES) + " |")
    print("|---|---|---|" + "---|" * len(LOSSES))
    for logits, target, what in CASES:
        print(f"| {what} | {logits} | {target} | " + " | ".join(row(logits, target)) + " |")


if __name__ == "__main__":
    main()
