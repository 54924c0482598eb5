"""The memory case's measured process: features generated first (their bytes are the unit), then, from the resident
memory at that point, the harness's data path on them: split, long-tail imbalance, resampling, standardisation,
device tensors, and one training epoch. Linux only (/proc/self/status, clear_refs).

python -m benchmarks.memory_child N RESAMPLING: N rows of 64 float32 features, RESAMPLING none or smote. Prints one
JSON line: feature_mb, baseline_rss_mb, peak_rss_mb and peak_over_baseline_mb.
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace

import torch
from omegaconf import OmegaConf

from benchmarks.workload import synthetic
from trainer.data import imbalance, resampling, splits
from trainer.data.standardize import standardize
from trainer.data.types import Split, Tensors
from trainer.models.losses import build_loss
from trainer.models.networks import MLP
from trainer.train.loop import FitConfig, fit

SAMPLERS = {"none": None, "smote": {"_target_": "imblearn.over_sampling.SMOTE", "k_neighbors": 5}}


def status_mb(field: str) -> float:
    """A field of /proc/self/status (VmRSS, VmHWM) in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    n, how = int(args[0]), args[1]
    x, y = (t.numpy() for t in synthetic(n, 64, 10))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # peak RSS := current RSS: imports' transients do not count
    baseline = status_mb("VmRSS")
    ds = splits.split(x, y, [str(c) for c in range(10)], 0.1, 0.1, 0, tabular=True)
    del x, y
    train = imbalance.apply(ds.train, OmegaConf.create({"name": "longtail", "ratio": 10}), 10, 0)
    res = resampling.apply(train, OmegaConf.create({"name": how, "sampler": SAMPLERS[how]}), ds.classes, 0)
    del train
    ds = standardize(replace(ds, train=res.train))
    del res

    def tensors(s: Split) -> Tensors:
        return Tensors(torch.as_tensor(s.x), torch.as_tensor(s.y))

    model = MLP((64,), 10)
    fit(model, build_loss(OmegaConf.create({"name": "plain"}), [1] * 10), torch.optim.Adam(model.parameters()),
        tensors(ds.train), tensors(ds.val), ds.classes, FitConfig(epochs=1, batch_size=512, progress=False),
        torch.Generator().manual_seed(0), on_epoch=lambda e, m: None)
    peak = status_mb("VmHWM")
    print(json.dumps({"feature_mb": n * 64 * 4 / 2**20, "baseline_rss_mb": baseline, "peak_rss_mb": peak,
                      "peak_over_baseline_mb": peak - baseline}))


if __name__ == "__main__":
    main()
