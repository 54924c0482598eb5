"""Compare the runs of a sweep (or an experiment): group them by the options that differ, aggregate over
seeds, rank by a metric, and write the table and the val/ce curves as files and to the sweep's parent run.

Used by scripts/compare.py; every step is a plain function over MlflowClient results, testable on its own.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.config import UserError
from trainer.tracking import GROUPS, _probe_http, resolve_uri

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

DEFAULT_METRIC = "test/balanced_accuracy"
CURVE_METRIC = "val/ce"
WORST_RECALL = "test/worst_class_recall"  # derived: the lowest test/recall/<class> of a run
COLUMNS = (DEFAULT_METRIC, "test/macro_f1", "test/accuracy", WORST_RECALL, "test/ce", "test/ece", "best/val/ce")
FILES = ("table.md", "table.csv", "curves.png")
# Params that are not options a user chose: seeds are what we aggregate over; the rest is bookkeeping,
# values a run decided itself (*.used.*), or the same as a group tag (<group>.name).
_NOT_OPTIONS = re.compile(r"^(seed|torch\.threads|tracking\..*|trainer\.device|.*\.used\..*|("
                          + "|".join(GROUPS) + r")\.name)$")


@dataclass
class Selection:
    """The runs to compare and where they came from."""

    runs: list[Run]
    name: str                          # folder name under outputs/compare/
    description: str                   # one line saying what was selected
    parent_run_id: str | None = None   # the sweep's parent run, where the files are logged
    skipped: list[str] = field(default_factory=list)  # runs left out because they did not finish


def lower_is_better(metric: str) -> bool:
    """Losses, calibration error and times rank ascending; accuracies, F1 and recalls descending."""
    last = metric.rsplit("/", 1)[-1]
    return last in {"ce", "loss", "ece", "epoch"} or metric.startswith("time/")


def _all_runs(client: MlflowClient, experiment_ids: list[str], filter_string: str = "") -> list[Run]:
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string, max_results=1000, page_token=token,
                                  order_by=["attributes.start_time ASC"])
        runs += list(page)
        token = page.token
        if not token:
            return runs


def check_store(uri: str) -> None:
    """Refuse a sqlite store that does not exist (MLflow would create an empty one and find nothing in it)
    and an unreachable server (MLflow's client would retry it for minutes)."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise UserError(f"there is no MLflow store at {uri}. Run compare.py in the folder you trained in, or "
                        "pass --tracking-uri (the trainer's tracking.uri).")
    if uri.startswith(("http://", "https://")):
        _probe_http(uri)


def select(client: MlflowClient, uri: str, experiment: str | None = None, parent: str | None = None) -> Selection:
    """The finished runs of --parent's sweep, of --experiment, or of the latest sweep in the store."""
    from mlflow.exceptions import MlflowException

    if experiment is not None:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            names = ", ".join(repr(e.name) for e in client.search_experiments()) or "none"
            raise UserError(f"--experiment {experiment!r}: no such experiment in {uri} (experiments there: {names}).")
        runs = [r for r in _all_runs(client, [exp.experiment_id]) if r.data.tags.get("sweep") != "parent"]
        selection = Selection(runs, _safe(experiment), f"experiment {experiment!r}")
    else:
        if parent is None:
            ids = [e.experiment_id for e in client.search_experiments()]
            latest = client.search_runs(ids, "tags.sweep = 'parent'", max_results=1,
                                        order_by=["attributes.start_time DESC"]) if ids else []
            if not latest:
                raise UserError(f"no sweep in {uri}: run one (python train.py -m loss=plain,weighted seed=0,1), "
                                "or pick runs with --experiment NAME or --parent RUN_ID.")
            parent_run = latest[0]
        else:
            try:
                parent_run = client.get_run(parent)
            except MlflowException as e:
                raise UserError(f"--parent {parent}: no run with that id in {uri}.") from e
        pid = parent_run.info.run_id
        runs = _all_runs(client, [parent_run.info.experiment_id], f"tags.mlflow.parentRunId = '{pid}'")
        if not runs:
            raise UserError(f"--parent {pid}: run {parent_run.info.run_name!r} has no child runs; give the id of "
                            "a sweep's parent run (its name starts with 'sweep').")
        selection = Selection(runs, f"sweep-{pid[:8]}", f"sweep {parent_run.info.run_name!r} ({pid})", pid)
    selection.skipped = [f"{r.info.run_name} ({r.info.status})" for r in selection.runs
                         if r.info.status != "FINISHED"]
    selection.runs = [r for r in selection.runs if r.info.status == "FINISHED"]
    if not selection.runs:
        raise UserError(f"{selection.description} has no finished run to compare "
                        f"({len(selection.skipped)} not finished: {', '.join(selection.skipped)}).")
    return selection


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "runs"


def options(run: Run) -> dict[str, str]:
    """What was chosen for a run: its group tags (loss=focal) and its settings as params (loss.gamma=2)."""
    out = {g: run.data.tags[g] for g in GROUPS if g in run.data.tags}
    out |= {k: v for k, v in sorted(run.data.params.items()) if not _NOT_OPTIONS.match(k)}
    return out


def differing_keys(runs: list[Run]) -> list[str]:
    """The options that split the runs into groups: groups first, then settings, each kept only if it
    separates runs the keys before it do not (resampling.sampler._target_ adds nothing to resampling)."""
    opts = [options(r) for r in runs]
    candidates = list(dict.fromkeys(k for o in opts for k in o))
    candidates.sort(key=lambda k: (k not in GROUPS, GROUPS.index(k) if k in GROUPS else 0, k))
    keys: list[str] = []
    groups = 1
    for k in candidates:
        n = len({tuple(o.get(key, "") for key in [*keys, k]) for o in opts})
        if n > groups:
            keys.append(k)
            groups = n
    return keys


def run_metrics(run: Run) -> dict[str, float]:
    """The run's final metrics, plus test/worst_class_recall when it logged per-class recall."""
    out = dict(run.data.metrics)
    recalls = [v for k, v in out.items() if k.startswith("test/recall/")]
    if recalls:
        out[WORST_RECALL] = min(recalls)
    return out


@dataclass
class Comparison:
    """The aggregated table, one row per group of runs, best first."""

    rows: list[dict[str, Any]]     # keys, "rank", "n", then "<metric> mean|std|n" per metric
    keys: list[str]                # the options that differ (the grouping)
    metrics: list[str]             # the ranking metric first
    groups: dict[str, list[Run]]   # group label -> its runs, in table order
    warnings: list[str]

    @property
    def metric(self) -> str:
        return self.metrics[0]


def _stats(values: list[float]) -> tuple[float, float, int]:
    """mean, sample standard deviation (nan for fewer than two values) and count, of the values present."""
    import numpy as np

    v = np.array([x for x in values if not math.isnan(x)])
    if not len(v):
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v)


def compare(runs: list[Run], metric: str = DEFAULT_METRIC) -> Comparison:
    """Group runs by the options that differ, aggregate every metric over each group (mean, std, n), rank."""
    per_run = [run_metrics(r) for r in runs]
    if not any(metric in m for m in per_run):
        available = sorted({k for m in per_run for k in m if not k.startswith("test/recall/")})
        raise UserError(f"--metric {metric}: none of the {len(runs)} runs has it. Metrics they have: "
                        f"{', '.join(available)}.")
    warnings = []
    lacking = [r.info.run_name for r, m in zip(runs, per_run) if metric not in m]
    if lacking:
        warnings.append(f"{len(lacking)} of {len(runs)} runs lack {metric} and are left out of its mean: "
                        f"{', '.join(lacking)}")
    metrics = [metric] + [c for c in COLUMNS if c != metric and any(c in m for m in per_run)]
    keys = differing_keys(runs)
    members: dict[tuple[str, ...], list[int]] = {}
    for i, r in enumerate(runs):
        opts = options(r)
        members.setdefault(tuple(opts.get(k, "") for k in keys), []).append(i)
    rows = []
    for values, idx in members.items():
        row: dict[str, Any] = dict(zip(keys, values)) | {"n": len(idx), "_runs": idx}
        for m in metrics:
            row[f"{m} mean"], row[f"{m} std"], row[f"{m} n"] = _stats([per_run[i].get(m, math.nan) for i in idx])
        rows.append(row)
    sign = 1 if lower_is_better(metric) else -1
    rows.sort(key=lambda row: (math.isnan(row[f"{metric} mean"]), sign * row[f"{metric} mean"]))
    groups = {}
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
        groups[group_label(row, keys)] = [runs[i] for i in row.pop("_runs")]
    return Comparison(rows, keys, metrics, groups, warnings)


def group_label(row: dict[str, Any], keys: list[str]) -> str:
    """loss=focal, loss.gamma=1 (options a group's runs lack are left out); 'all runs' when nothing differs."""
    return ", ".join(f"{k}={row[k]}" for k in keys if row[k] != "") or "all runs"


def _cell(mean: float, std: float, n: int, group_n: int) -> str:
    if n == 0:
        return "–"
    text = f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"
    return text + (f" (n={n})" if n != group_n else "")


def rows_for_display(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the table as text: options, n, mean ± std per metric, and the gap to the best."""
    header = ["rank", *(c.keys or ["runs"]), "n", *c.metrics]
    header.insert(header.index(c.metric) + 1, "Δ vs best")
    best = c.rows[0][f"{c.metric} mean"]
    out = []
    for row in c.rows:
        cells = [str(row["rank"]), *([row[k] or "–" for k in c.keys] or ["all runs"]), str(row["n"])]
        for m in c.metrics:
            cells.append(_cell(row[f"{m} mean"], row[f"{m} std"], row[f"{m} n"], row["n"]))
            if m == c.metric:
                gap = row[f"{m} mean"] - best
                cells.append("–" if math.isnan(gap) else f"{gap:+.4f}")
        out.append(cells)
    return header, out


def markdown(header: list[str], rows: list[list[str]], left: int) -> str:
    """A GitHub-flavoured markdown table; the first `left` columns left-aligned, the rest right-aligned;
    columns padded so that it also reads well in a terminal."""
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i < left else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join("-" * (w + 2) if i < left else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *map(line, rows)])


def summary_line(sel: Selection, c: Comparison) -> str:
    """What was compared and how, as the line above the table."""
    by = ", ".join(c.keys) if c.keys else "nothing (every run has the same options)"
    order = "lower" if lower_is_better(c.metric) else "higher"
    return (f"{sel.description}: {len(sel.runs)} finished runs in {len(c.groups)} groups by {by}; "
            f"mean ± sample std over the runs of a group (seeds), ranked by {c.metric} ({order} is better).")


def curves_figure(client: MlflowClient, c: Comparison, title: str, metric: str = CURVE_METRIC) -> Figure:
    """metric against epoch, one line per group (mean over its runs) with the min-max spread as a band."""
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(9, 5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    colors = [f"C{i}" for i in range(10)]
    drawn = 0
    for i, (label, runs) in enumerate(c.groups.items()):
        by_epoch: dict[int, list[float]] = {}
        for r in runs:
            for m in client.get_metric_history(r.info.run_id, metric):
                by_epoch.setdefault(m.step, []).append(m.value)
        if not by_epoch:
            continue
        epochs = np.array(sorted(by_epoch))
        values = [np.array(by_epoch[e]) for e in epochs]
        color = colors[i % len(colors)]
        ax.plot(epochs, [v.mean() for v in values], color=color, linestyle="-" if i < 10 else "--",
                label=f"{i + 1}. {label} (n={len(runs)})")
        if len(runs) > 1:
            ax.fill_between(epochs, [v.min() for v in values], [v.max() for v in values], color=color, alpha=0.2,
                            linewidth=0)
        drawn += 1
    if not drawn:
        ax.text(0.5, 0.5, f"no run logged {metric}", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel="epoch", ylabel=metric)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8, title="rank. group (runs)", title_fontsize=8)
    fig.suptitle(f"{metric} per epoch: mean over seeds, band from min to max\n{title}", fontsize=10)
    return fig


def _write_atomically(path: Path, write: Any) -> None:
    # A file appears complete or not at all: an interrupted compare never leaves half a table behind.
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_csv(path: Path, c: Comparison) -> None:
    """The table as CSV: rank, one column per differing option, n, then mean, std and n of each metric."""
    import csv

    fields = ["rank", *c.keys, "n"] + [f"{m} {s}" for m in c.metrics for s in ("mean", "std", "n")]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
                         for row in c.rows)


def write_outputs(out: Path, md: str, c: Comparison, fig: Figure) -> list[Path]:
    """table.md, table.csv and curves.png in out (created if needed); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in FILES]
    _write_atomically(paths[0], lambda p: p.write_text(md + "\n"))
    _write_atomically(paths[1], lambda p: write_csv(p, c))
    _write_atomically(paths[2], lambda p: fig.savefig(p, format="png"))
    return paths


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python scripts/compare.py",
        description="Compare runs: group them by the options that differ, aggregate over seeds, rank, and write "
                    "table.md, table.csv and curves.png (also logged to the sweep's parent run under compare/).")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--parent", metavar="RUN_ID", help="the parent run of a sweep (default: the latest sweep)")
    which.add_argument("--experiment", metavar="NAME", help="every run of this experiment instead of one sweep")
    p.add_argument("--metric", default=DEFAULT_METRIC, help=f"rank by this metric (default {DEFAULT_METRIC})")
    p.add_argument("--out", type=Path, help="output folder (default outputs/compare/<sweep-id or experiment>/)")
    p.add_argument("--tracking-uri", help="MLflow store, resolved like the trainer's tracking.uri (default: "
                                          "$MLFLOW_TRACKING_URI, else sqlite:///<working directory>/mlflow.db)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """The compare command: print the table, write the files, log them to the parent run. Exit 2 on user error."""
    args = parse_args(argv)
    try:
        return _main(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2


def _main(args: argparse.Namespace) -> int:
    from mlflow.tracking import MlflowClient

    uri = resolve_uri(args.tracking_uri)
    check_store(uri)
    client = MlflowClient(uri)
    sel = select(client, uri, experiment=args.experiment, parent=args.parent)
    c = compare(sel.runs, args.metric)
    header, rows = rows_for_display(c)
    table_md = markdown(header, rows, left=1 + max(1, len(c.keys)))
    notes = c.warnings + ([f"{len(sel.skipped)} runs not finished, left out: {', '.join(sel.skipped)}"]
                          if sel.skipped else [])
    md = "\n\n".join([summary_line(sel, c), table_md] + [f"Note: {n}." for n in notes])
    print(md, flush=True)

    out = args.out or Path("outputs") / "compare" / sel.name
    paths = write_outputs(out, md, c, curves_figure(client, c, sel.description))
    print(f"\nwrote {', '.join(str(p) for p in paths)}")
    if sel.parent_run_id:
        for p in paths:
            client.log_artifact(sel.parent_run_id, str(p), "compare")
        print(f"logged them to the sweep's parent run {sel.parent_run_id} under compare/ (open it in the MLflow UI)")
    else:
        print("not logged to MLflow: --experiment selects runs, not a sweep with a parent run")
    return 0

