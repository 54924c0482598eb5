"""Checkpoints: everything a run needs to continue bit-identically, written atomically, read without pickle.

One file per run, `checkpoint.pt` in the run's output folder, replaced after an epoch at most every
trainer.persist_every_s seconds, after the last epoch, and when a signal stops training part-way. A crash while
writing leaves the previous complete file in place.
"""
from __future__ import annotations

import copy
import os
import random
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainer.errors import UserError
from trainer.train.loop import EpochProgress, LoopState

FILENAME = "checkpoint.pt"
ARTIFACT_DIR = "checkpoint"  # the copy logged when a run ends, however it ends
FORMAT = "ce-harness-checkpoint"
VERSION = 1


class CheckpointError(UserError):
    """A checkpoint file that cannot be used: truncated, not ours, or from another run."""

    def __init__(self, path: Path, why: str) -> None:
        self.path = path
        super().__init__(f"checkpoint {path}: {why}")


def snapshot(*, run_id: str, model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
             state: LoopState, generator: torch.Generator,
             copy_state: Callable[[Any], Any] = copy.deepcopy) -> dict[str, Any]:
    """Everything a checkpoint holds, copied now, so that it can be written while training goes on.

    copy_state copies each state_dict (by default a deep copy; trainer.train.persist copies into buffers it keeps
    from one epoch to the next)."""
    payload = {
        "format": FORMAT, "version": VERSION, "run_id": run_id,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "loss": loss_fn.state_dict(),
        "rng": _rng_states(generator), "loop": _loop_to_dict(state),
    }
    # state_dict()s hold the live tensors, which the next step changes in place: copy them. best_weights is
    # already a copy that fit replaces rather than changes.
    for part in ("model", "optimizer", "loss"):
        payload[part] = copy_state(payload[part])
    return payload


def write(path: Path, payload: dict[str, Any]) -> None:
    """Write a snapshot to a temporary file next to path, then rename it over path (atomic on POSIX).

    A crash at any moment (SIGKILL, power loss) leaves either the previous complete file or the new one. A write that
    fails (a full disk: torch says "enforce fail at inline_container.cc") is a CheckpointError naming the file, the
    reason and the space left; the previous file stays.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())  # the rename must never expose a file whose bytes are not yet on disk
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        raise CheckpointError(path, _unwritten(e, path)) from e
    finally:
        tmp.unlink(missing_ok=True)


def _unwritten(e: BaseException, path: Path) -> str:
    """Why a checkpoint could not be written, in one line: the OSError under torch's RuntimeError when there is one."""
    from trainer.runtime.writable import free_space

    cause = next((c for c in (e, e.__context__, e.__cause__) if isinstance(c, OSError)), None)
    reason = (cause.strerror or str(cause)) if cause is not None else str(e).strip().splitlines()[0][:200]
    room = free_space(path.parent)
    kept = "the previous checkpoint is kept" if path.is_file() else "no earlier checkpoint exists"
    return (f"could not be written ({reason}{'; ' + room if room else ''}); {kept}. Free some space, or write the "
            "outputs elsewhere (hydra.run.dir=..., hydra.sweep.dir=... for -m)")


def load(path: Path, run_id: str | None = None) -> dict[str, Any]:
    """Read a checkpoint with torch.load(weights_only=True); CheckpointError naming the file if it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about foreign pickle protocols before refusing them
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, a foreign pickle, an empty file: torch raises many kinds
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(path, f"cannot be read as a checkpoint (truncated or not a torch file: "
                                    f"{first_line[:200]})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(path, f"is not a {FORMAT} file (it has no format={FORMAT!r} entry)")
    if payload.get("version") != VERSION:
        raise CheckpointError(path, f"has format version {payload.get('version')!r}; this code reads {VERSION}")
    if run_id is not None and payload.get("run_id") != run_id:
        raise CheckpointError(path, f"belongs to run {payload.get('run_id')}, not to run {run_id}")
    return payload


def owner(path: Path) -> str | None:
    """The run id a checkpoint file belongs to; None if it is not a readable checkpoint. Memory-maps the file,
    so asking costs no read of the weights."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - truncated, foreign or missing: not a checkpoint of any run
        return None
    return payload.get("run_id") if isinstance(payload, dict) and payload.get("format") == FORMAT else None


def restore(payload: dict[str, Any], *, model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
            generator: torch.Generator, device: torch.device) -> LoopState:
    """Put a loaded checkpoint's weights, optimizer, loss and random states back; return the loop state."""
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    loss_fn.load_state_dict(payload["loss"])
    _restore_rng(payload["rng"], generator)
    return _loop_from_dict(payload["loop"], device)


def log_artifact(path: Path) -> None:
    """Log the checkpoint as an artifact when the run ends, however it ends, so another machine can resume it."""
    import logging

    import mlflow

    if not path.is_file():
        return
    try:
        mlflow.log_artifact(str(path), ARTIFACT_DIR)
    except Exception as e:  # the store may be what failed; the error that ends the run matters more
        logging.getLogger(__name__).warning("could not log the checkpoint %s as an artifact: %s", path, e)


def _rng_states(generator: torch.Generator) -> dict[str, Any]:
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
        # only when CUDA is in use: asking for its state would start CUDA in a CPU run on a GPU machine
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "generator": generator.get_state(),
    }


def _restore_rng(states: dict[str, Any], generator: torch.Generator) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    n = states["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    generator.set_state(states["generator"])


def _loop_to_dict(s: LoopState) -> dict[str, Any]:
    p = s.progress
    progress = None if p is None or p.values is None else {
        "generator_state": p.generator_state, "steps": p.steps, "values": p.values.cpu(),
        "pseudo": None if p.pseudo is None else [t.cpu() for t in p.pseudo]}
    return {"epoch": s.epoch, "steps": s.steps, "best_score": s.best_score, "best_epoch": s.best_epoch,
            "best_weights": s.best_weights, "wait": s.wait, "done": s.done, "history": [dict(h) for h in s.history],
            "progress": progress, "seconds": s.seconds}


def _loop_from_dict(d: dict[str, Any], device: torch.device) -> LoopState:
    p = d["progress"]
    progress = None if p is None else EpochProgress(
        p["generator_state"], p["steps"], p["values"].to(device),
        None if p["pseudo"] is None else tuple(t.to(device) for t in p["pseudo"]))
    best = None if d["best_weights"] is None else {k: v.to(device) for k, v in d["best_weights"].items()}
    # "steps" is absent from checkpoints written before step budgets: their runs counted epochs only
    return LoopState(epoch=d["epoch"], steps=d.get("steps", 0), best_score=d["best_score"],
                     best_epoch=d["best_epoch"], best_weights=best, wait=d["wait"], done=d["done"],
                     history=[dict(h) for h in d["history"]], progress=progress, seconds=d["seconds"])
