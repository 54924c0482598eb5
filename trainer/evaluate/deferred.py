"""Figures drawn later: what a run's figures need (its FigureInputs) kept as the run's artifact figure_inputs.npz, and
drawn from it on demand, with the same content as figures drawn when the run ends.

A run with eval.figures=later logs only this file (about 5 ms, against 0.3 to 0.7 s of drawing), and so does a run
whose figures the background process had not drawn when a signal stopped the sweep; `python scripts/figures.py`
draws them later. The tag `figures` says where a run's figures stand: later (its inputs are logged), drawn (drawn
later), off (eval.figures=off: none).

Needs numpy (and matplotlib to draw); mlflow is imported inside the functions.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from trainer.evaluate.figures import FigureInputs, draw_and_log

ARTIFACT = "figure_inputs.npz"
TAG, LATER, DRAWN, OFF = "figures", "later", "drawn", "off"


def save_inputs(inp: FigureInputs, step: int, path: Path) -> None:
    """Write inp (and step, the run's last epoch, where time/figures_s goes) to path as .npz: arrays as arrays, the
    rest as JSON, so that loading it needs no pickle."""
    meta = {"classes": inp.classes, "class_counts": inp.class_counts, "history": inp.history,
            "best_epoch": inp.best_epoch, "subtitle": inp.subtitle, "monitor": inp.monitor,
            "kept_epoch": inp.kept_epoch, "step": step}
    np.savez_compressed(path, probs=inp.probs, target=inp.target, meta=np.array(json.dumps(meta)))


def load_inputs(path: Path) -> tuple[FigureInputs, int]:
    """What save_inputs wrote: the FigureInputs and the step."""
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        inp = FigureInputs(f["probs"], f["target"], meta["classes"], meta["class_counts"], meta["history"],
                           meta["best_epoch"], meta["subtitle"], meta["monitor"], meta["kept_epoch"])
    return inp, meta["step"]


def defer(inp: FigureInputs, run_id: str, uri: str, step: int) -> None:
    """Log what run_id's figures need (figure_inputs.npz) and tag it figures=later, for scripts/figures.py."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ARTIFACT
        save_inputs(inp, step, path)
        client.log_artifact(run_id, str(path))
    client.set_tag(run_id, TAG, LATER)


def draw_logged(client: object, uri: str, run_id: str, logged: Path, output_dir: Path) -> float:
    """Draw the figures of a run that deferred them, from its ARTIFACT downloaded to the file logged, into
    output_dir/figures, log them to it (figures/, time/figures_s) and tag it figures=drawn; return the seconds
    drawing took."""
    inp, step = load_inputs(logged)
    seconds = draw_and_log(inp, output_dir, run_id, uri, step)
    client.set_tag(run_id, TAG, DRAWN)
    return seconds
