"""A run's figures once it has ended (eval.figures): drawn now (in the background process when one was started),
their inputs logged for scripts/figures.py to draw later, or none. They never fail the run: it is FINISHED."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from trainer.runtime.signals import Interrupted
from trainer.tracking.provenance import script
from trainer.tracking.record import SUMMARY_STEP, RunRecord

if TYPE_CHECKING:
    from trainer.data.prepare import Prepared
    from trainer.train.loop import FitResult

log = logging.getLogger(__name__)


def figures_mode(cfg: DictConfig) -> str:
    """eval.figures: now (drawn when the run ends), later (their inputs logged, drawn by scripts/figures.py), off."""
    return OmegaConf.select(cfg, "eval.figures", default="now")


def draw_figures(cfg: DictConfig, record: RunRecord, prep: Prepared, result: FitResult, scores: object,
                 background: bool, monitor: str) -> None:
    """The run's figures into its output folder and its record (in the background process when it was started), or
    what they need for later (eval.figures=later), or none; a failure is a warning: the run's results stand."""
    from trainer.evaluate import deferred, figure_worker, figures

    mode = figures_mode(cfg)
    if mode == "off":
        record.client.set_tag(record.run_id, deferred.TAG, deferred.OFF)
        return
    inputs = figures.FigureInputs(scores.probs, scores.target, prep.dataset.classes, prep.class_counts,
                                  result.history, result.best_epoch,
                                  figures.subtitle(cfg.loss.name, cfg.resampling.name, record.opening.run_name),
                                  monitor=monitor, kept_epoch=result.kept_epoch)
    try:
        if mode == "later":
            deferred.defer(inputs, record.run_id, record.opening.uri, SUMMARY_STEP)
        else:
            figure_worker.draw(inputs, record.folder, record.run_id, record.opening.uri, SUMMARY_STEP, background)
    except Interrupted as e:  # the run is FINISHED: what its figures need is kept for later
        deferred.defer(inputs, record.run_id, record.opening.uri, SUMMARY_STEP)
        raise FiguresInterrupted(e.signum, record.run_id) from None
    except Exception as e:  # noqa: BLE001 - the run ended FINISHED with its metrics
        log.warning("figures of run %s failed: %s: %s", record.run_id, type(e).__name__, e)


class FiguresInterrupted(Interrupted):
    """A signal while a FINISHED run drew its figures (or waited to hand them over): their inputs are logged."""

    def __init__(self, signum: int, run_id: str) -> None:
        super().__init__(signum, f"run {run_id} had FINISHED; its figures were not drawn, their inputs are logged: "
                                 f"python {script('scripts/figures.py')} {run_id}")
