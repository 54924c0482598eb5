"""The report of one comparison: the figures (curves, an interval plot of the differences, the critical-difference
diagram) and the files (report.md, a self-contained report.html with the figures inline, table.csv, the PNGs).

A report is a list of parts (text, table, figure) rendered twice, as markdown and as HTML, so both always hold
the same numbers.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.analysis import stats

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from mlflow.tracking import MlflowClient

    from trainer.analysis.grouping import Across, Comparison


@dataclass
class Part:
    """One piece of a report: kind "heading" | "text" | "table" | "figure"."""

    kind: str
    text: str = ""                                  # heading or paragraph; a figure's file name
    header: list[str] | None = None                 # table
    rows: list[list[str]] | None = None             # table
    left: int = 1                                   # table: columns aligned left
    figure: Figure | None = None


def curves_figure(client: MlflowClient, c: Comparison, title: str, metric: str = "val/ce") -> Figure:
    """metric against epoch, one line per group: the mean over its runs, each run's last value carried forward once
    it has stopped (early stopping), so that the mean does not jump when a run drops out; the min-max spread of the
    runs as a band; and, on a second axis, how many of the group's runs were still training at each epoch."""
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(9, 5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    colors = [f"C{i}" for i in range(10)]
    drawn = 0
    training = None
    for i, (label, runs) in enumerate(c.groups.items()):
        histories = [{m.step: m.value for m in client.get_metric_history(r.info.run_id, metric)} for r in runs]
        histories = [h for h in histories if h]
        if not histories:
            continue
        epochs = np.arange(1, max(max(h) for h in histories) + 1)
        # (runs, epochs): each run's value, carried forward after its last epoch; NaN before its first
        table = np.array([[h.get(e, np.nan) for e in epochs] for h in histories], dtype=float)
        running = (epochs[None, :] <= np.array([max(h) for h in histories])[:, None]).sum(axis=0)
        for row in table:
            last = np.nan
            for j, v in enumerate(row):
                last = v if not np.isnan(v) else last
                row[j] = last
        color = colors[i % len(colors)]
        ax.plot(epochs, np.nanmean(table, axis=0), color=color, linestyle="-" if i < 10 else "--",
                label=f"{i + 1}. {label} (n={len(runs)})")
        if len(histories) > 1:
            ax.fill_between(epochs, np.nanmin(table, axis=0), np.nanmax(table, axis=0), color=color, alpha=0.2,
                            linewidth=0)
            if running.min() < len(histories):  # some runs stopped early: show how many were still training
                training = training or ax.twinx()
                training.step(epochs, running, where="mid", color=color, linewidth=0.8, linestyle=":")
        drawn += 1
    if not drawn:
        ax.text(0.5, 0.5, f"no run logged {metric}", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel="epoch", ylabel=metric)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8, title="rank. group (runs)", title_fontsize=8)
    if training is not None:
        training.set_ylabel("runs still training (dotted)")
        training.yaxis.set_major_locator(MaxNLocator(integer=True))
        training.set_ylim(bottom=0)
    fig.suptitle(f"{metric} per epoch: mean over a group's runs, each run's last value carried forward after it "
                 f"stopped; band from min to max\n{title}", fontsize=10)
    return fig


def differences_figure(c: Comparison, title: str, alpha: float = stats.ALPHA) -> Figure:
    """Each group's mean difference to the baseline with its 95% interval (corrected t over k-fold designs, bootstrap
    over seeds), one row per group in table order; filled markers where Holm's p <= alpha, hollow where not; a line
    at zero."""
    from matplotlib.figure import Figure

    labels = [label for label in c.groups if label in c.diffs]
    fig = Figure(figsize=(8, 1.2 + 0.45 * max(1, len(labels))), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for y, label in enumerate(labels):
        d = c.diffs[label]
        if math.isnan(d.mean):
            continue
        low, high = (d.low, d.high) if not math.isnan(d.low) else (d.mean, d.mean)
        significant = d.p_holm <= alpha
        ax.errorbar(d.mean, y, xerr=[[d.mean - low], [high - d.mean]], fmt="o", color="C0" if d.paired else "C1",
                    markerfacecolor=("C0" if d.paired else "C1") if significant else "white", capsize=4)
    ax.axvline(0, color="0.3", linewidth=1)
    ax.set_yticks(range(len(labels)), [f"{label}{'' if c.diffs[label].paired else ' (unpaired)'}"
                                       for label in labels], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"Δ {c.metric} vs {c.baseline}")
    ax.grid(axis="x", alpha=0.3)
    interval = "corrected t interval" if c.design is not None else "bootstrap interval"
    fig.suptitle(f"difference to the baseline, 95% {interval}; filled: Holm p <= {alpha}\n{title}",
                 fontsize=10)
    return fig


def cd_figure(a: Across, metric: str) -> Figure:
    """Critical-difference diagram (Demšar 2006, figure 1): the average-rank axis (1 = best, on the left), one
    label per group, a bar over the groups whose ranks lie within Nemenyi's CD of each other, the CD on top."""
    from matplotlib.figure import Figure

    f = a.friedman
    k = len(a.groups)
    order = sorted(range(k), key=lambda j: f.average_ranks[j])
    ranks = [f.average_ranks[j] for j in order]
    cliques: list[tuple[int, int]] = []  # maximal runs of rank-ordered groups within CD of each other
    for s in range(k):
        e = max(t for t in range(s, k) if ranks[t] - ranks[s] <= f.cd)
        if e > s and not any(cs <= s and e <= ce for cs, ce in cliques):
            cliques.append((s, e))
    half = (k + 1) // 2
    labels = [f"{a.groups[j]} ({f.average_ranks[j]:.2f})" for j in order]
    label_in = 0.07 * max(len(t) for t in labels) + 0.3   # inches a label needs at fontsize 8
    width = 9.0
    margin = label_in / (width - 2 * label_in) * max(k - 1, 1)  # the same in rank units
    top = 0.6 + 0.2 * len(cliques)
    fig = Figure(figsize=(width, 1.4 + 0.3 * (half + len(cliques))), dpi=100)
    ax = fig.add_axes((0, 0, 1, 0.82))
    ax.set_xlim(1 - margin, k + margin)
    ax.set_ylim(top + half + 0.2, -1.2)
    ax.axis("off")
    ax.hlines(0, 1, k, color="black")
    for r in range(1, k + 1):
        ax.vlines(r, -0.15, 0, color="black")
        ax.text(r, -0.25, str(r), ha="center", va="bottom", fontsize=8)
    for i, r in enumerate(ranks):  # the better half labelled on the left, the rest on the right
        left = i < half
        y = top + (i if left else k - 1 - i)
        end = 1 - 0.1 * margin if left else k + 0.1 * margin
        ax.plot([r, r, end], [0, y, y], color="0.2", linewidth=0.8)
        ax.text(end, y, labels[i], ha="right" if left else "left", va="center", fontsize=8)
    for n, (s, e) in enumerate(cliques):
        ax.hlines(0.35 + 0.2 * n, ranks[s] - 0.03, ranks[e] + 0.03, color="black", linewidth=3)
    if not math.isnan(f.cd):
        ax.hlines(-0.9, 1, 1 + f.cd, color="black")
        ax.text(1 + f.cd / 2, -0.95, f"CD = {f.cd:.2f}", ha="center", va="bottom", fontsize=8)
    p = "–" if math.isnan(f.p) else f"{f.p:.3g}"
    fig.suptitle(f"average rank of {metric} over {len(a.blocks)} values of {a.key} (Friedman p = {p});\n"
                 f"bars join groups within Nemenyi's critical difference (alpha {f.alpha})", fontsize=9)
    return fig


def markdown_table(header: list[str], rows: list[list[str]], left: int) -> str:
    """A GitHub-flavoured markdown table; the first `left` columns left-aligned, the rest right-aligned;
    columns padded so that it also reads well in a terminal."""
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i < left else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join("-" * (w + 2) if i < left else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *map(line, rows)])


def markdown(parts: list[Part]) -> str:
    """The report as markdown; figures as links to the PNG files next to it."""
    out = []
    for p in parts:
        if p.kind == "heading":
            out.append(f"## {p.text}")
        elif p.kind == "text":
            out.append(p.text)
        elif p.kind == "table":
            out.append(markdown_table(p.header, p.rows, p.left))
        else:
            out.append(f"![{p.text}]({p.text})")
    return "\n\n".join(out) + "\n"


def to_html(parts: list[Part], title: str) -> str:
    """The report as one HTML page with every figure inline (base64 PNG): it opens anywhere, MLflow included."""
    body = []
    for p in parts:
        if p.kind == "heading":
            body.append(f"<h2>{html.escape(p.text)}</h2>")
        elif p.kind == "text":
            body.append(f"<p>{html.escape(p.text)}</p>")
        elif p.kind == "table":
            def row(cells: list[str], tag: str) -> str:
                return "<tr>" + "".join(f"<{tag}{' class=l' if i < p.left else ''}>{html.escape(c)}</{tag}>"
                                        for i, c in enumerate(cells)) + "</tr>"
            body.append("<table>" + row(p.header, "th") + "".join(row(r, "td") for r in p.rows) + "</table>")
        else:
            body.append(f'<p><img alt="{html.escape(p.text)}" src="data:image/png;base64,{_png64(p.figure)}"></p>')
    style = ("body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em}table{border-collapse:"
             "collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}.l{text-align:"
             "left}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}"
            f"</style></head><body><h1>{html.escape(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n")


def _png64(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def write_csv(path: Path, comparisons: list[Comparison]) -> None:
    """Every table as CSV rows: the block (dataset), rank, the options, n, the difference to the baseline with
    its interval and p-values, then mean, std and n of each metric."""
    keys = list(dict.fromkeys(k for c in comparisons for k in c.keys))
    metrics = list(dict.fromkeys(m for c in comparisons for m in c.metrics))
    fields = (["block", "rank", *keys, "n", "baseline", "diff", "diff low", "diff high", "p", "p holm", "test",
               "pairs"] + [f"{m} {s}" for m in metrics for s in ("mean", "std", "n")])
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fields, extrasaction="ignore")
        writer.writeheader()
        for c in comparisons:
            for row, label in zip(c.rows, c.groups):
                d = c.diffs.get(label)
                extra: dict[str, Any] = {"block": c.title, "baseline": c.baseline}
                if d is not None:
                    extra |= {"diff": d.mean, "diff low": d.low, "diff high": d.high, "p": d.p, "p holm": d.p_holm,
                              "test": d.test + ("" if d.paired else " (unpaired)"), "pairs": d.n}
                writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v
                                 for k, v in (row | extra).items()})


def _write_atomically(path: Path, write: Any) -> None:
    # A file appears complete or not at all: an interrupted compare never leaves half a report behind.
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write(out: Path, parts: list[Part], comparisons: list[Comparison], title: str) -> list[Path]:
    """report.md, report.html, table.csv and every figure as PNG in out (created if needed); returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for p in parts:
        if p.kind == "figure":
            path = out / p.text
            _write_atomically(path, lambda tmp, fig=p.figure: fig.savefig(tmp, format="png"))
            paths.append(path)
    for name, text in (("report.md", f"# {title}\n\n" + markdown(parts)), ("report.html", to_html(parts, title))):
        _write_atomically(out / name, lambda tmp, t=text: tmp.write_text(t))
        paths.append(out / name)
    _write_atomically(out / "table.csv", lambda tmp: write_csv(tmp, comparisons))
    paths.append(out / "table.csv")
    return paths
