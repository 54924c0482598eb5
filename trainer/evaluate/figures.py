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
MAX_NAMED_CLASSES = 30  # beyond this classes are ordered by training samples and every k-th is named (MAX_TICKS)
MAX_TICKS = 20
LABEL_CHARS = 20  # class names longer than this are cut in the middle in tick labels
TITLE_SIZE = 10  # points
LINE_IN = TITLE_SIZE * 1.25 / 72  # the height of a title line, in inches
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
    monitor: str = "val/balanced_ce"   # the metric that picked best_epoch (trainer.monitor)
    kept_epoch: int | None = None      # the epoch whose weights the model kept, when not best_epoch (the last)


def subtitle(loss: str, resampling: str, run_name: str, max_chars: int = 240) -> str:
    """The second title of every figure of a run: its loss, its resampling and its name (wrapped to the figure's
    width when drawn; a name longer than max_chars is cut)."""
    name = run_name if len(run_name) <= max_chars else run_name[:max_chars - 3] + "..."
    return f"loss={loss} · resampling={resampling} · run '{name}'"


def wrap(text: str, width_in: float, size: float = TITLE_SIZE) -> str:
    """text broken into lines that fit width_in inches at `size` points: after a space, a comma or a slash where it
    can (a run name is overrides joined by commas, a path has slashes), inside a word only where one is too long.
    Widths are estimated (0.6 em a character, more than DejaVu Sans' average): measuring each text would cost
    a draw."""
    import re

    per_line = max(int(width_in * 72 / (0.6 * size)), 10)
    lines, line = [], ""
    for token in re.findall(r"[^ ,/]*[ ,/]?", text):
        while len(token) > per_line:  # a word longer than a line: cut it
            if line:
                lines.append(line)
                line = ""
            lines.append(token[:per_line])
            token = token[per_line:]
        if len(line) + len(token.rstrip(" ")) > per_line and line:
            lines.append(line)
            line = ""
        line += token
    lines.append(line)
    return "\n".join(part.rstrip(" ") for part in lines if part.strip())


def _figure(width: float, height: float, title: str, subtitle: str, left: float = 0.8, bottom: float = 0.7,
            right: float = 0.3, **spacing: float) -> Figure:
    """A figure with fixed margins in inches and its title above, the subtitle wrapped to the width (the top margin
    grows with its lines): matplotlib's layout engines measure every text to place the axes, which made them half
    of the time the figures cost."""
    from matplotlib.figure import Figure

    text = f"{title}\n{wrap(subtitle, width - 0.4)}"
    top = 0.25 + LINE_IN * (text.count("\n") + 1)
    fig = Figure(figsize=(width, height + top - 0.75), dpi=DPI)  # the plot keeps its height as the title grows
    height = height + top - 0.75
    fig.subplots_adjust(left=left / width, bottom=bottom / height, right=1 - right / width, top=1 - top / height,
                        **spacing)
    fig.suptitle(text, fontsize=TITLE_SIZE, y=1 - 0.12 / height, va="top")
    return fig


def _rotation(labels: list[str]) -> int:
    return 45 if max(map(len, labels)) > 3 or len(labels) > 12 else 0


@dataclass(frozen=True)
class ClassAxis:
    """How a figure lays out the classes along an axis: all of them in index order, each named; or, beyond
    MAX_NAMED_CLASSES, ordered by training samples (most first) with every k-th named, the first and last included."""

    order: np.ndarray  # class indices in the order drawn
    ticks: np.ndarray  # positions (into order) that get a label
    labels: list[str]  # their class names, cut at LABEL_CHARS
    title: str  # what the axis shows

    @classmethod
    def of(cls, classes: list[str], train_counts: list[int], what: str) -> ClassAxis:
        n = len(classes)
        if n <= MAX_NAMED_CLASSES:
            order = ticks = np.arange(n)
            title = what
        else:
            order = np.argsort(-np.asarray(train_counts), kind="stable")
            step = -(-n // MAX_TICKS)
            ticks = np.unique(np.r_[np.arange(0, n, step), n - 1])
            if len(ticks) > 2 and ticks[-1] - ticks[-2] < step / 2:  # the last two would overlap
                ticks = np.delete(ticks, -2)
            title = f"{what}: {n} classes by training samples, most to fewest; one in {step} named"
        labels = [_cut(classes[order[t]]) for t in ticks]
        return cls(order, ticks, labels, title)


def _cut(name: str) -> str:
    """name, or its start and end around an ellipsis when longer than LABEL_CHARS (names often differ at the end)."""
    if len(name) <= LABEL_CHARS:
        return name
    head = (LABEL_CHARS - 1) // 2
    return name[:head] + "…" + name[-(LABEL_CHARS - 1 - head):]


def confusion_matrix_figure(inp: FigureInputs) -> Figure:
    """Test confusion matrix normalised by true class: row i holds where the samples of class i went. Beyond
    MAX_NAMED_CLASSES the classes are ordered by training samples (the head top-left, the tail bottom-right)."""
    n = len(inp.classes)
    cm = confusion_matrix(inp.target, inp.probs.argmax(axis=1), n).astype(np.float64)
    support = cm.sum(axis=1, keepdims=True)
    cm = np.divide(cm, support, out=np.zeros_like(cm), where=support > 0)
    axis = ClassAxis.of(inp.classes, inp.class_counts["train_imbalanced"], "class")
    cm = cm[np.ix_(axis.order, axis.order)]
    size = min(max(6.5, 4.5 + 0.35 * n), 14)  # at least wide enough for the title
    rotation = _rotation(axis.labels)
    label_room = 0.08 * max(map(len, axis.labels)) if rotation else 0.0
    fig = _figure(size, size * 0.9, "Confusion matrix on test, normalised by true class (rows sum to 1)",
                  inp.subtitle, left=0.8 + label_room, bottom=0.7 + label_room, right=0.6)
    ax = fig.add_subplot()
    image = ax.imshow(cm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(axis.ticks, axis.labels, rotation=rotation, ha="right" if rotation else "center")
    ax.set_yticks(axis.ticks, axis.labels)
    if n <= MAX_ANNOTATED_CLASSES:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > 0.5 else "black")
    ax.set_xlabel(f"predicted {axis.title}", fontsize=9 if n > MAX_NAMED_CLASSES else None)
    ax.set_ylabel(f"true {'class' if n <= MAX_NAMED_CLASSES else 'class (same order)'}")
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

    fig = _figure(6, 6.5, f"Reliability diagram on test, {n_bins} bins, ECE = {ece:.3f}", inp.subtitle, hspace=0.08)
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
    return fig


def curves_figure(inp: FigureInputs) -> Figure:
    """train/val ce (plain cross-entropy) and train/val loss (the objective) per epoch, best epoch marked."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(10, 4.2, "Learning curves", inp.subtitle, wspace=0.25)
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
    return fig


def recall_vs_frequency_figure(inp: FigureInputs) -> Figure:
    """Training samples per class (bars) against test recall per class (points): what imbalance does. Beyond
    MAX_NAMED_CLASSES the classes are ordered by training samples and a running mean of the recall shows the trend
    from head to tail."""
    n = len(inp.classes)
    cm = confusion_matrix(inp.target, inp.probs.argmax(axis=1), n)
    # a class absent from test has no recall: no point drawn
    recall = np.where(cm.sum(axis=1) > 0, from_confusion(cm)["recall"], np.nan)
    imbalanced = np.asarray(inp.class_counts["train_imbalanced"])
    resampled = np.asarray(inp.class_counts["train_resampled"])
    axis = ClassAxis.of(inp.classes, imbalanced.tolist(), "class")
    imbalanced, resampled, recall = imbalanced[axis.order], resampled[axis.order], recall[axis.order]
    many = n > MAX_NAMED_CLASSES
    x = np.arange(n)
    rotation = _rotation(axis.labels)
    label_room = 0.08 * max(map(len, axis.labels)) if rotation else 0.0
    fig = _figure(min(max(6.5, 4 + 0.6 * n), 16), 4.5 + label_room,
                  "Per-class test recall against training class frequency", inp.subtitle,
                  left=0.8 + label_room / 2, bottom=0.7 + label_room, right=0.8)  # the first label leans left
    ax = fig.add_subplot()
    width = 1.0 if many else 0.6  # many classes: bars touch, an outline of the distribution
    if list(resampled) != list(imbalanced):
        ax.bar(x - width / 4, imbalanced, width=width / 2, color="#aec7e8", label="train samples before resampling")
        ax.bar(x + width / 4, resampled, width=width / 2, color="#1f77b4", label="train samples the model saw")
    else:
        ax.bar(x, imbalanced, width=width, color="#1f77b4", label="train samples")
    ax.set(xlabel=axis.title, ylabel="training samples", xlim=(-0.5, n - 0.5))
    ax.set_xticks(axis.ticks, axis.labels, rotation=rotation, ha="right" if rotation else "center")
    right = ax.twinx()
    if many:
        right.plot(x, recall, color="#d62728", marker=".", markersize=3, linestyle="none", label="test recall")
        k = -(-n // MAX_TICKS)
        right.plot(x, _running_mean(recall, k), color="#67000d", linewidth=2,
                   label=f"test recall, mean of {k} neighbouring classes")
    else:
        right.plot(x, recall, color="#d62728", marker="o", label="test recall")
    right.set(ylim=(0, 1.05), ylabel="test recall")
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="lower left", fontsize=8)
    return fig


def _running_mean(values: np.ndarray, k: int) -> np.ndarray:
    """The mean of each value's window of k neighbours (centred, shorter at the ends), NaN (no test sample) left out."""
    ok = ~np.isnan(values)
    kernel = np.ones(k)
    sums = np.convolve(np.where(ok, values, 0.0), kernel, mode="same")
    counts = np.convolve(ok.astype(float), kernel, mode="same")
    return np.divide(sums, counts, out=np.full(len(values), np.nan), where=counts > 0)


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
