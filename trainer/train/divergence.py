"""A run whose cross-entropy diverged: finite, but far above what a uniform guess scores, where training left it.

A uniform guess over C classes has cross-entropy ln C on any data. A model that ends training with its train and
val cross-entropy both FACTOR times above that learned nothing usable: its optimizer blew the weights up (Adam at
optim.lr=1e6 ends at a val cross-entropy of 9e18 and chance accuracy, and exits 0). Nothing non-finite happened, so
nothing stopped it; this says so, once, after training.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

FACTOR = 10.0  # far above: a working model's train/ce falls below ln C within an epoch or two
TAG = "diverged"


@dataclass(frozen=True)
class Divergence:
    since: int  # the first epoch of the last stretch of epochs above the limit
    train_ce: float  # at the last epoch
    val_ce: float
    limit: float  # FACTOR * ln C
    classes: int

    @property
    def message(self) -> str:
        return (f"training diverged: train/ce and val/ce have been above {FACTOR:g} x ln {self.classes} = "
                f"{self.limit:.3g} (a uniform guess's cross-entropy) since epoch {self.since} and end at "
                f"{self.train_ce:.3g} and {self.val_ce:.3g}: the model learned nothing usable. Lower optim.lr, or "
                "set trainer.grad_clip")


def find(history: list[dict[str, float]], num_classes: int) -> Divergence | None:
    """The divergence of a run from its per-epoch history (dicts with "epoch", "train/ce", "val/ce"), None if it
    ended with train/ce or val/ce at most FACTOR * ln(num_classes)."""
    limit = FACTOR * math.log(num_classes)

    def above(h: dict[str, float]) -> bool:
        return h["train/ce"] > limit and h["val/ce"] > limit  # NaN compares false: that is NonFiniteLoss's to say

    if not history or not above(history[-1]):
        return None
    since = len(history)
    while since > 1 and above(history[since - 2]):
        since -= 1
    last = history[-1]
    return Divergence(int(history[since - 1]["epoch"]), last["train/ce"], last["val/ce"], limit, num_classes)
