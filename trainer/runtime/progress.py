"""Messages in the job's log (Hydra writes it to train.log in the job's folder) for steps that take long."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from trainer.words import value

log = logging.getLogger("trainer")

HEARTBEAT_S = 30.0  # a step still running says so this often: a cluster job's log shows it is alive


@contextmanager
def step(what: str, heartbeat_s: float = HEARTBEAT_S) -> Iterator[None]:
    """Log `what ...` now, `what: still running (N s)` every heartbeat_s seconds, and `what: done in N s`."""
    start = time.perf_counter()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(heartbeat_s):
            log.info("%s: still running (%.0f s)", what, time.perf_counter() - start)

    log.info("%s ...", what)
    thread = threading.Thread(target=beat, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
    log.info("%s: done in %.1f s", what, time.perf_counter() - start)


def epoch_line(epoch: int, epochs: int, metrics: dict[str, float], seconds: float, steps: int | None = None,
               monitor: str = "val/ce") -> str:
    """One epoch in the log: `epoch 3/50  train/ce 0.4123  val/ce 0.3981  val/balanced_accuracy 0.8812  0.04 s`,
    and the monitored metric when it is another; with a step budget `epoch 3/12 (step 360/1000)  ...`."""
    keys = ("train/ce", "val/ce", "val/balanced_accuracy")
    shown = [f"{k} {value(metrics[k])}" for k in (*keys, *([monitor] if monitor not in keys else [])) if k in metrics]
    where = f"epoch {epoch}/{epochs}" + (f" (step {metrics.get('train/steps', 0):.0f}/{steps})" if steps else "")
    return "  ".join([where, *shown, f"{seconds:.2f} s"])
