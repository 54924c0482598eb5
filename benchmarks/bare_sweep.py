"""The researcher's own sweep script, the sweep case's floor: the same prepared data, one fresh model per run, the
bare loop for as many epochs as the harness's run took, one run after another, torch's default thread count.

python -m benchmarks.bare_sweep EPOCHS [OVERRIDES...]: EPOCHS the epochs of each run, comma-separated; OVERRIDES the
Hydra overrides of the data (as train.py takes them). Prints its wall seconds (from its start, the imports of torch,
Hydra and the trainer's data path included) and the summed seconds of its epochs.
"""
from __future__ import annotations

import sys
import time


def main(argv: list[str] | None = None) -> None:
    start = time.time()
    # Imported once the clock runs: the script's wall time is a researcher's script's, its imports included.
    import torch

    from benchmarks.bare_loop import bare_epochs
    from benchmarks.config import compose
    from benchmarks.workload import build_model
    from trainer.data.prepare import prepare

    args = sys.argv[1:] if argv is None else argv
    epochs = [int(e) for e in args[0].split(",")]
    ds = prepare(compose(args[1:])).dataset
    t = lambda a: torch.as_tensor(a)  # noqa: E731
    x, y, xv, yv = t(ds.train.x), t(ds.train.y), t(ds.val.x), t(ds.val.y)
    train = 0.0
    for i, n in enumerate(epochs):
        model = build_model("mlp", tuple(x.shape[1:]), len(ds.classes), seed=i)
        train += sum(bare_epochs(model, x, y, xv, yv, 32, n, seed=i))
    print(time.time() - start, train)


if __name__ == "__main__":
    main()
