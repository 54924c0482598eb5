"""Figures of a run: what each one draws, that a run logs them, and that start-up does not pay for matplotlib."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from matplotlib.image import AxesImage
from mlflow.tracking import MlflowClient

from helpers import ROOT, train_cli
from trainer.evaluate import figures
from trainer.run import run

CLASSES = ["cat", "dog", "bird"]
NAMES = {"confusion_matrix.png", "reliability.png", "curves.png", "recall_vs_frequency.png"}


def _one_hot_probs(pred: list[int], confidence: list[float], num_classes: int = 3) -> np.ndarray:
    """Probabilities whose argmax is pred and whose max is confidence (the rest shared evenly)."""
    probs = np.zeros((len(pred), num_classes))
    for i, (p, c) in enumerate(zip(pred, confidence)):
        probs[i] = (1 - c) / (num_classes - 1)
        probs[i, p] = c
    return probs


def _inputs(target, pred, confidence, resampled=None) -> figures.FigureInputs:
    history = [{"epoch": e, "train/ce": 1.0 / e, "val/ce": 1.2 / e, "train/loss": 2.0 / e, "val/loss": 2.5 / e}
               for e in (1, 2, 3)]
    counts = {"train_imbalanced": [40, 10, 2], "train_resampled": resampled or [40, 10, 2]}
    return figures.FigureInputs(_one_hot_probs(pred, confidence), np.array(target), CLASSES, counts, history,
                                best_epoch=2, subtitle=figures.subtitle("focal", "smote", "loss=focal,seed=1"))


def test_confusion_matrix_is_normalised_by_true_class_with_class_names():
    inp = _inputs(target=[0, 0, 0, 0, 1, 1, 2], pred=[0, 0, 0, 1, 1, 2, 0], confidence=[0.9] * 7)
    fig = figures.confusion_matrix_figure(inp)
    ax = fig.axes[0]
    matrix = next(c for c in ax.get_children() if isinstance(c, AxesImage)).get_array()
    np.testing.assert_allclose(matrix, [[0.75, 0.25, 0], [0, 0.5, 0.5], [1, 0, 0]])
    assert [t.get_text() for t in ax.get_yticklabels()] == CLASSES
    assert "loss=focal" in fig.get_suptitle() and "resampling=smote" in fig.get_suptitle()


def test_reliability_diagram_bars_are_the_accuracy_of_each_confidence_bin():
    # 4 samples at confidence 0.95 (3 right), 2 at 0.5 (1 right): two filled bins of 15
    inp = _inputs(target=[0, 0, 0, 1, 1, 2], pred=[0, 0, 0, 0, 1, 0], confidence=[0.95] * 4 + [0.5] * 2)
    fig = figures.reliability_figure(inp)
    top = fig.axes[0]
    accuracy_bars = top.containers[0]
    assert sorted(round(b.get_height(), 6) for b in accuracy_bars) == [0.5, 0.75]
    ece = (4 * abs(0.75 - 0.95) + 2 * abs(0.5 - 0.5)) / 6
    assert f"ECE = {ece:.3f}" in fig.get_suptitle()
    counts = [b.get_height() for b in fig.axes[1].containers[0]]
    assert sum(counts) == 6 and sorted(c for c in counts if c) == [2, 4]


def test_curves_show_train_and_val_ce_and_loss_per_epoch():
    inp = _inputs(target=[0, 1, 2], pred=[0, 1, 2], confidence=[0.9] * 3)
    fig = figures.curves_figure(inp)
    ce_ax, loss_ax = fig.axes
    lines = {line.get_label(): list(line.get_ydata()) for ax in (ce_ax, loss_ax) for line in ax.get_lines()}
    assert lines["val/ce"] == pytest.approx([1.2, 0.6, 0.4]) and lines["train/loss"] == pytest.approx([2.0, 1.0, 2 / 3])
    assert "best val/balanced_ce (epoch 2)" in lines


def test_recall_against_frequency_shows_counts_before_and_after_resampling():
    inp = _inputs(target=[0, 0, 1, 1, 2, 2], pred=[0, 0, 1, 0, 0, 0], confidence=[0.9] * 6, resampled=[40, 40, 40])
    fig = figures.recall_vs_frequency_figure(inp)
    ax, right = fig.axes
    before, after = ax.containers
    assert [b.get_height() for b in before] == [40, 10, 2] and [b.get_height() for b in after] == [40, 40, 40]
    assert list(right.get_lines()[0].get_ydata()) == pytest.approx([1.0, 0.5, 0.0])


def test_a_run_logs_its_figures(run_cfg, store):
    result = run(run_cfg("loss=weighted"))
    client = MlflowClient(store)
    logged = {a.path.split("/")[-1] for a in client.list_artifacts(result.run_id, "figures")}
    assert logged == NAMES
    path = client.download_artifacts(result.run_id, "figures/confusion_matrix.png")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert client.get_run(result.run_id).data.metrics["time/figures_s"] > 0


def test_a_cli_run_keeps_its_figures_in_its_hydra_output_folder(tmp_path):
    proc = train_cli("trainer.epochs=1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = list((tmp_path / "outputs" / "runs").glob("*/*/figures/*.png"))
    assert {p.name for p in saved} == NAMES


def test_importing_the_trainer_does_not_import_matplotlib():
    code = "import sys, trainer.run, trainer.evaluate.figures; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


LONG_NAME = ("dataset=csv,dataset.path=/home/researcher/projects/imbalance/data/keel/yeast4.dat,dataset.target=Class,"
             "loss=weighted,seed=2,split.fold=3,split.folds=5")


def _inside(fig, text) -> bool:
    fig.canvas.draw()
    box, page = text.get_window_extent(), fig.bbox
    return box.x0 >= page.x0 and box.x1 <= page.x1 and box.y0 >= page.y0 and box.y1 <= page.y1


@pytest.mark.parametrize("name", sorted(figures.FIGURES))
def test_a_long_run_name_wraps_inside_the_figure_above_the_plot(name):
    # every CSV run's name (its dataset.path among the overrides) ran past both edges of the figures
    inp = _inputs(target=[0, 0, 1, 1, 2, 2], pred=[0, 0, 1, 0, 0, 0], confidence=[0.9] * 6)
    inp.subtitle = figures.subtitle("weighted", "none", LONG_NAME)
    fig = figures.FIGURES[name](inp)
    title = fig._suptitle
    assert _inside(fig, title) and title.get_text().count("\n") >= 2
    assert "".join(title.get_text().split("\n")[1:]).replace(" ", "") == inp.subtitle.replace(" ", "")
    plot_top = max(ax.get_window_extent().y1 for ax in fig.axes)
    assert title.get_window_extent().y0 > plot_top  # the plot starts below its title


def _many(n: int, seed: int = 0) -> figures.FigureInputs:
    rng = np.random.default_rng(seed)
    counts = rng.permutation(np.arange(1, n + 1) * 3).tolist()  # distinct, and not in index order
    target = np.repeat(np.arange(n), 3)
    probs = rng.dirichlet(np.ones(n), size=len(target))
    probs[np.arange(len(target)), target] += 1.0
    classes = [f"a rather long class name number {i}" for i in range(n)]
    return figures.FigureInputs(probs, target, classes, {"train_imbalanced": counts, "train_resampled": counts},
                                [{"epoch": 1, "train/ce": 1.0, "val/ce": 1.0, "train/loss": 1.0, "val/loss": 1.0}], 1,
                                figures.subtitle("plain", "none", "loss=plain"))


@pytest.mark.parametrize("name", ["confusion_matrix", "recall_vs_frequency"])
def test_five_hundred_classes_are_ordered_by_frequency_with_readable_labels_from_head_to_tail(name):
    # 500 overlapping tick labels made both axes black
    inp = _many(500)
    fig = figures.FIGURES[name](inp)
    fig.canvas.draw()
    ax = fig.axes[0]
    counts = inp.class_counts["train_imbalanced"]
    head, tail = int(np.argmax(counts)), int(np.argmin(counts))
    for labels in [ax.get_xticklabels()] + ([ax.get_yticklabels()] if name == "confusion_matrix" else []):
        texts = [t.get_text() for t in labels]
        assert 10 <= len(texts) <= figures.MAX_TICKS + 1
        # the most frequent class first, the least frequent last, each cut in the middle: their ends tell them apart
        assert texts[0].startswith("a rather") and texts[0].endswith(f"number {head}") and "…" in texts[0]
        assert texts[-1].endswith(f"number {tail}") and len(texts[-1]) == figures.LABEL_CHARS
        # neighbours do not overlap: the gap between their ticks, across the (rotated) text, exceeds a line
        positions = [t.get_window_extent() for t in labels]
        gaps = np.diff(sorted(b.x0 if t.get_rotation() else b.y0 for t, b in zip(labels, positions)))
        across = np.sin(np.radians(labels[0].get_rotation() or 90))
        assert gaps.min() * across > 1.2 * labels[0].get_fontsize() * fig.dpi / 72
        assert all(_inside(fig, t) for t in labels)
    assert "500 classes by training samples, most to fewest" in ax.get_xlabel()
    if name == "confusion_matrix":  # rows and columns follow that order: the head class's row comes first
        matrix = next(c for c in ax.get_children() if isinstance(c, AxesImage)).get_array()
        cm = figures.confusion_matrix(inp.target, inp.probs.argmax(axis=1), 500)
        assert matrix[0, 0] == cm[head, head] / cm[head].sum()
    else:  # bars fall from head to tail
        heights = [b.get_height() for b in ax.containers[0]]
        assert heights == sorted(heights, reverse=True)
