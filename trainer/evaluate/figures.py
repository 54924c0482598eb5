"""Figures of one finished run: confusion matrix, reliability diagram, learning curves, recall against frequency.

matplotlib is imported inside the functions (about a second at start-up otherwise). Figures are built as
plain `matplotlib.figure.Figure` objects, not through pyplot: no global figure registry to leak from or
close, and PNGs are rendered by the Agg canvas whatever backend the user's environment selects.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trainer.evaluate.metrics import ECE_BINS, calibration_bins, confusion_matrix, ece_of_bins, from_confusion

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
MAX_ANNOTATED_CLASSES = 20  # beyond this the numbers in the confusion matrix cells become unreadable
COLORS = {"train": "#1f77b4", "val": "#ff7f0e", "best": "#7f7f7f"}


@dataclass
class FigureInputs:
    """What the figures of a run need: its test predictions, class counts, per-epoch history and labels."""

    probs: np.ndarray                  # [N, C] test-set class probabilities
    target: np.ndarray                 # [N] true test labels
    classes: list[str]
    class_counts: dict[str, list[int]]  # as in class_counts.json: train_imbalanced, train_resampled, ...
    history: list[dict[str, float]]    # one dict per epoch: "epoch", "train/ce", "val/ce", "train/loss", ...
    best_epoch: int                    # the epoch the monitored val metric liked best
    subtitle: str                      # names the run's loss and resampling
    monitor: str = "val/ce"            # the metric that picked best_epoch (trainer.monitor)
    kept_epoch: int | None = None      # the epoch whose weights the model kept, when not best_epoch (the last)


def subtitle(loss: str, resampling: str, run_name: str, max_chars: int = 70) -> str:
    """The second title line of every figure of a run: its loss, its resampling and its name."""
    name = run_name if len(run_name) <= max_chars else run_name[:max_chars - 3] + "..."
    return f"loss={loss} · resampling={resampling} · run '{name}'"


def _figure(width: float, height: float, left: float = 0.8, bottom: float = 0.7, right: float = 0.3,
            top: float = 0.75, **spacing: float) -> Figure:
    """A figure with fixed margins in inches (the two-line title above): matplotlib's layout engines measure
    every text to place the axes, which made them half of the time the figures cost."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    fig.subplots_adjust(left=left / width, bottom=bottom / height, right=1 - right / width, top=1 - top / height,
                        **spacing)
    return fig


def _rotation(classes: list[str]) -> int:
    return 45 if max(map(len, classes)) > 3 or len(classes) > 12 else 0


def confusion_matrix_figure(inp: FigureInputs) -> Figure:
    """Test confusion matrix normalised by true class: row i holds where the samples of class i went."""
    n = len(inp.classes)
    cm = confusion_matrix(inp.target, inp.probs.argmax(axis=1), n).astype(np.float64)
    support = cm.sum(axis=1, keepdims=True)
    cm = np.divide(cm, support, out=np.zeros_like(cm), where=support > 0)
    size = min(max(6.5, 4.5 + 0.35 * n), 14)  # at least wide enough for the two-line title
    rotation = _rotation(inp.classes)
    label_room = 0.08 * max(map(len, inp.classes)) if rotation else 0.0
    fig = _figure(size, size * 0.9, left=0.8 + label_room, bottom=0.7 + label_room, right=0.6)
    ax = fig.add_subplot()
    image = ax.imshow(cm, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), inp.classes, rotation=rotation, ha="right" if rotation else "center")
    ax.set_yticks(range(n), inp.classes)
    if n <= MAX_ANNOTATED_CLASSES:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.suptitle(f"Confusion matrix on test, normalised by true class (rows sum to 1)\n{inp.subtitle}",
                 fontsize=10)
    return fig


def reliability_figure(inp: FigureInputs, n_bins: int = ECE_BINS) -> Figure:
    """Reliability diagram: accuracy against confidence in equal-width bins, with the count of each bin below."""
    confidence = inp.probs.max(axis=1).astype(np.float64)
    correct = inp.probs.argmax(axis=1) == inp.target
    total, conf_sum, acc_sum = calibration_bins(confidence, correct, n_bins)
    ece = ece_of_bins(conf_sum, acc_sum, len(confidence))
    width = 1.0 / n_bins
    left = np.arange(n_bins) * width
    filled = total > 0
    accuracy = np.divide(acc_sum, total, out=np.zeros(n_bins), where=filled)
    mean_conf = np.divide(conf_sum, total, out=np.zeros(n_bins), where=filled)

    fig = _figure(6, 6.5, hspace=0.08)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.bar(left[filled], accuracy[filled], width=width, align="edge", color="#1f77b4", edgecolor="white",
            label="accuracy in bin")
    # Gap drawn as an outline from accuracy to mean confidence, so it reads the same above or below the bar.
    top.bar(left[filled], mean_conf[filled] - accuracy[filled], bottom=accuracy[filled], width=width, align="edge",
            fill=False, hatch="//", edgecolor="#d62728", linewidth=1, label="gap to mean confidence")
    top.plot([0, 1], [0, 1], linestyle="--", color="black", linewidth=1, label="perfect calibration")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(left, total, width=width, align="edge", color="#7f7f7f", edgecolor="white")
    bottom.set(xlabel="confidence (max softmax probability)", ylabel="samples")
    fig.suptitle(f"Reliability diagram on test, {n_bins} bins, ECE = {ece:.3f}\n{inp.subtitle}", fontsize=10)
    return fig


def curves_figure(inp: FigureInputs) -> Figure:
    """train/val ce (plain cross-entropy) and train/val loss (the objective) per epoch, best epoch marked."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(10, 4.2, wspace=0.25)
    axes = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in inp.history]
    for ax, key, label in ((axes[0], "ce", "ce: plain cross-entropy of the true class"),
                           (axes[1], "loss", "loss: the objective minimised")):
        for split in ("train", "val"):
            ax.plot(epochs, [h[f"{split}/{key}"] for h in inp.history], marker="." if len(epochs) < 30 else None,
                    color=COLORS[split], label=f"{split}/{key}")
        if inp.best_epoch:
            ax.axvline(inp.best_epoch, color=COLORS["best"], linestyle=":",
                       label=f"best {inp.monitor} (epoch {inp.best_epoch})")
        if inp.kept_epoch and inp.kept_epoch != inp.best_epoch:
            ax.axvline(inp.kept_epoch, color=COLORS["best"], linestyle="--", label=f"kept (epoch {inp.kept_epoch})")
        ax.set(title=label, xlabel="epoch", ylabel=key)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Learning curves\n{inp.subtitle}", fontsize=10)
    return fig


def recall_vs_frequency_figure(inp: FigureInputs) -> Figure:
    """Training samples per class (bars) against test recall per class (line): what imbalance does."""
    n = len(inp.classes)
    cm = confusion_matrix(inp.target, inp.probs.argmax(axis=1), n)
    # a class absent from test has no recall: no point drawn
    recall = np.where(cm.sum(axis=1) > 0, from_confusion(cm)["recall"], np.nan)
    imbalanced = inp.class_counts["train_imbalanced"]
    resampled = inp.class_counts["train_resampled"]
    x = np.arange(n)
    rotation = _rotation(inp.classes)
    label_room = 0.08 * max(map(len, inp.classes)) if rotation else 0.0
    fig = _figure(min(max(6.5, 4 + 0.6 * n), 16), 4.5 + label_room, bottom=0.7 + label_room, right=0.8)
    ax = fig.add_subplot()
    if list(resampled) != list(imbalanced):
        ax.bar(x - 0.2, imbalanced, width=0.4, color="#aec7e8", label="train samples before resampling")
        ax.bar(x + 0.2, resampled, width=0.4, color="#1f77b4", label="train samples the model saw")
    else:
        ax.bar(x, imbalanced, width=0.6, color="#1f77b4", label="train samples")
    ax.set(xlabel="class", ylabel="training samples")
    ax.set_xticks(x, inp.classes, rotation=rotation, ha="right" if rotation else "center")
    right = ax.twinx()
    right.plot(x, recall, color="#d62728", marker="o", label="test recall")
    right.set(ylim=(0, 1.05), ylabel="test recall")
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="lower left", fontsize=8)
    fig.suptitle(f"Per-class test recall against training class frequency\n{inp.subtitle}", fontsize=10)
    return fig


FIGURES = {
    "confusion_matrix": confusion_matrix_figure,
    "reliability": reliability_figure,
    "curves": curves_figure,
    "recall_vs_frequency": recall_vs_frequency_figure,
}


def make_figures(inp: FigureInputs) -> dict[str, Figure]:
    """Every figure of a run, by name."""
    return {name: build(inp) for name, build in FIGURES.items()}


def save(inp: FigureInputs, output_dir: Path) -> tuple[Path, float]:
    """Draw every figure of a run into output_dir/figures/<name>.png; return that folder and the seconds it took.

    Each figure is rendered once, by the Agg canvas (mlflow.log_figure would render it a second time for the
    same PNG). Needs numpy and matplotlib only: trainer.evaluate.figure_worker calls it in a process without torch or
    mlflow.
    """
    import time

    start = time.perf_counter()
    folder = output_dir / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    for name, fig in make_figures(inp).items():
        fig.savefig(folder / f"{name}.png")
    return folder, time.perf_counter() - start


def log_saved(folder: Path, seconds: float, run_id: str, uri: str, step: int) -> None:
    """Log a folder of figures to run_id (in the store at uri) as figures/, and time/figures_s (seconds, at step).
    A finished run takes them as well as a running one."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    client.log_artifacts(run_id, str(folder), "figures")
    client.log_metric(run_id, "time/figures_s", seconds, step=step)


def draw_and_log(inp: FigureInputs, output_dir: Path, run_id: str, uri: str, step: int) -> float:
    """Draw every figure of a finished run into output_dir/figures, log them to it with time/figures_s; return
    that time (seconds)."""
    folder, seconds = save(inp, output_dir)
    log_saved(folder, seconds, run_id, uri, step)
    return seconds
