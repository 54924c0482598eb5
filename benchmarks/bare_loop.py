"""The loop a researcher writes by hand, the harness's yardstick: shuffled slices of device tensors, cross-entropy,
Adam, and a val pass computing CE and accuracy."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F


def bare_epochs(model, x, y, xv, yv, batch_size: int, epochs: int, seed: int) -> list[float]:
    """The ten-line loop a researcher writes by hand; seconds of each epoch (train pass + val CE and accuracy)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        perm = torch.randperm(len(y), generator=g).to(y.device)
        for i in range(0, len(y), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.inference_mode():
            logits = torch.cat([model(xv[i:i + 1024]) for i in range(0, len(yv), 1024)])
            ce, acc = F.cross_entropy(logits, yv).item(), (logits.argmax(1) == yv).float().mean().item()
        del ce, acc
        times.append(time.perf_counter() - start)
    return times
