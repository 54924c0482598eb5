"""The compare command (scripts/compare.py): print the tables of trainer.analysis.grouping's comparisons with their
verdicts, and write report.md, report.html, table.csv and figures, also to the sweep's parent run.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.analysis import report, stats
from trainer.analysis.grouping import (DEFAULT_METRIC, Across, Comparison, Selection, across, comparisons_of,
                                       pair_label, safe_name, select)
from trainer.analysis.report import Part, cd_figure, curves_figure, differences_figure
from trainer.errors import UserError
from trainer.evaluate.metrics import lower_is_better
from trainer.sweep.orphans import end_orphans
from trainer.tracking.store import refresh_statistics, require_store, resolve_uri
from trainer.train.divergence import TAG as DIVERGED
from trainer.words import counted, value

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

CURVE_METRIC = "val/ce"


def _cell(mean: float, std: float, n: int, group_n: int) -> str:
    if n == 0:
        return "–"
    text = value(mean) if math.isnan(std) else f"{value(mean)} ± {value(std)}"
    return text + (f" (n={n})" if n != group_n else "")


def _p(p: float) -> str:
    return "–" if math.isnan(p) else f"{p:.3g}"


def how_tested(d: stats.Difference) -> str:
    """How a difference was tested: 'Wilcoxon, 3 pairs', 'corrected t = 1.23, 10 pairs' or 'Mann-Whitney, unpaired'."""
    if d.test == "–":
        return "–"
    test = d.test if math.isnan(d.statistic) else f"{d.test} = {d.statistic:.2f}"
    return f"{test}, {counted(d.n, 'pair')}" if d.paired else f"{test}, unpaired"


DIFF_HEADER = "Δ vs baseline [95% CI]"


def rows_for_display(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the table as text: options, n, mean ± std of the ranking metric, the difference to
    the baseline with its interval, p, Holm's p and the test, then mean ± std of the other metrics."""
    header = ["rank", *(c.keys or ["runs"]), "n", c.metric, DIFF_HEADER, "p", "p Holm", "test", *c.metrics[1:]]
    out = []
    for row, label in zip(c.rows, c.groups):
        cells = [str(row["rank"]), *([row[k] or "–" for k in c.keys] or ["all runs"]), str(row["n"])]
        m = c.metric
        cells.append(_cell(row[f"{m} mean"], row[f"{m} std"], row[f"{m} n"], row["n"]))
        d = c.diffs.get(label)
        if d is None:
            cells += ["baseline", "", "", ""]
        else:
            interval = "" if math.isnan(d.low) else f" [{value(d.low, sign=True)}, {value(d.high, sign=True)}]"
            cells += ["–" if math.isnan(d.mean) else f"{value(d.mean, sign=True)}{interval}", _p(d.p), _p(d.p_holm),
                      how_tested(d)]
        cells += [_cell(row[f"{x} mean"], row[f"{x} std"], row[f"{x} n"], row["n"]) for x in c.metrics[1:]]
        out.append(cells)
    return header, out


def verdict(c: Comparison, alpha: float = stats.ALPHA) -> list[str]:
    """Plain sentences under the table: which groups differ from the baseline after Holm's correction, which
    do not, and whether the number of seeds allowed any test to reach alpha at all."""
    if not c.diffs:
        return []
    out = []
    differ = [f"{label} ({value(d.mean, sign=True)})" for label, d in c.diffs.items() if d.p_holm <= alpha]
    same = [label for label, d in c.diffs.items() if not d.p_holm <= alpha]
    out.append(f"Differ from {c.baseline} at {alpha} after Holm's correction over "
               f"{counted(len(c.diffs), 'comparison')}: "
               + (", ".join(differ) if differ else "none"))
    if same:
        out.append(f"No significant difference from {c.baseline}: {', '.join(same)}")
    m = len(c.diffs)
    floor = [(label, d) for label, d in c.diffs.items() if d.min_p * m > alpha]  # Holm's first step: p * m
    if floor:
        label, d = max(floor, key=lambda x: x[1].min_p)
        who = "every comparison" if len(floor) == m else ", ".join(x for x, _ in floor)
        ties = d.paired and d.nonzero < d.n
        size = (counted(d.n, "pair") + (f" ({d.nonzero} with a non-zero difference)" if ties else "")
                if d.paired else f"{counted(d.n, 'run')} per group")
        need = (f"{stats.pairs_needed(m, alpha)} pairs with a non-zero difference (seeds)" if d.paired
                else f"{stats.runs_needed_unpaired(m, alpha)} runs per group")
        out.append(f"n too small for {who}: with {size} the smallest possible {d.test} p is {d.min_p:.3g}, "
                   f"times {counted(m, 'comparison')} for Holm's correction {d.min_p * m:.3g}, above {alpha}: "
                   "no difference "
                   f"there can be significant whatever the data. {need[0].upper() + need[1:]} are the least that "
                   f"can reach {alpha}" + ("; a tied pair (the same value in both groups) does not count" if ties
                                           else ""))
    unmatched = sorted({pair_label(k) for d in c.diffs.values() for k in d.unmatched if len(k) <= 2 and d.paired})
    if unmatched:
        out.append(f"Left out of the pairs (present in one group only): {', '.join(unmatched)}")
    if any(not d.paired for d in c.diffs.values()):
        out.append("Unpaired: groups without a common seed are compared by Mann-Whitney U on their runs.")
    return out


def summary_line(c: Comparison) -> str:
    """What was compared and how, as the line above a table: the grouping, the spread, the pairing, and which
    test and interval the design calls for, and why."""
    by = ", ".join(c.keys) if c.keys else "nothing (every run has the same options)"
    order = "lower" if lower_is_better(c.metric) else "higher"
    n = sum(row["n"] for row in c.rows)
    if c.design is not None:
        how = (f"mean ± sample std over each group's runs ({c.design.describe()}), ranked by {c.metric} ({order} is "
               f"better); Δ: paired by seed and fold against {c.baseline}, tested by the corrected repeated k-fold "
               "t-test (Bouckaert & Frank 2004; Nadeau & Bengio 2003) with its 95% interval, since the folds of a "
               "seed share most of their training rows and a test that took their pairs as independent would be "
               "over-confident; two-sided p and Holm-corrected p.")
    else:
        how = (f"mean ± sample std over each group's runs (one per seed), ranked by {c.metric} ({order} is better); "
               f"Δ: paired by seed against {c.baseline}, Wilcoxon signed-rank test over the seeds (each seed a new "
               "split, so the pairs are independent), 95% bootstrap interval; two-sided p and Holm-corrected p.")
    return f"{counted(n, 'run')} in {counted(len(c.groups), 'group')} by {by}; {how}"


def ranks_for_display(a: Across) -> tuple[list[str], list[list[str]]]:
    """Groups by average rank: the rank on each block and the average."""
    order = sorted(range(len(a.groups)), key=lambda j: a.friedman.average_ranks[j])
    header = ["group", "average rank", *a.blocks]
    rows = [[a.groups[j], f"{a.friedman.average_ranks[j]:.2f}", *(f"{a.friedman.ranks[i, j]:g} ({value(a.table[i, j])})"
                                                                   for i in range(len(a.blocks)))] for j in order]
    return header, rows


def across_verdict(a: Across) -> list[str]:
    """The Friedman result and which groups' average ranks differ by more than Nemenyi's CD."""
    f = a.friedman
    k, n = len(a.groups), len(a.blocks)
    out = [f"Friedman over {counted(n, 'value')} of {a.key}, {counted(k, 'group')}: chi2 = {f.statistic:.3f}, "
           f"p = {_p(f.p)}"
           + ("" if k >= 3 else " (needs 3 groups)")
           + f"; Nemenyi critical difference at {f.alpha}: {f.cd:.3f} ranks."]
    best = int(f.average_ranks.argmin())
    beyond = [a.groups[j] for j in range(k) if f.average_ranks[j] - f.average_ranks[best] > f.cd]
    out.append(f"Ranked worse than the best, {a.groups[best]}, by more than CD: {', '.join(beyond) or 'none'}.")
    if not f.p <= f.alpha:
        out.append("The Friedman test does not reject equal ranks: read the post-hoc differences as not established.")
    if a.left_out:
        out.append(f"Left out (not run, or without the metric, on every {a.key}): {', '.join(a.left_out)}.")
    return out


def report_parts(sel: Selection, comparisons: list[Comparison], a: Across | None, client: MlflowClient,
                 notes: list[str]) -> list[Part]:
    """The report: a line on what was selected, per block (dataset) its table, verdict, notes and figures,
    then across blocks the ranks, the Friedman test and the critical-difference diagram."""
    parts = [Part("text", f"{sel.description}: {counted(len(sel.runs), 'finished run')}.")]
    parts += [Part("text", f"Note: {n}.") for n in notes]
    for i, c in enumerate(comparisons):
        suffix = f"-{safe_name(c.title)}" if c.title else ""
        if c.title:
            parts.append(Part("heading", c.title))
        header, rows = rows_for_display(c)
        parts += [Part("text", summary_line(c)), Part("table", header=header, rows=rows, left=1 + max(1, len(c.keys)))]
        parts += [Part("text", line + ".") for line in verdict(c)]
        parts += [Part("text", f"Note: {w}.") for w in c.warnings]
        if c.diffs:
            parts.append(Part("figure", f"diffs{suffix}.png", figure=differences_figure(c, c.title or sel.description)))
        parts.append(Part("figure", f"curves{suffix}.png",
                          figure=curves_figure(client, c, c.title or sel.description, CURVE_METRIC)))
    if a is not None:
        header, rows = ranks_for_display(a)
        parts += [Part("heading", f"Across {a.key}: average ranks"), Part("table", header=header, rows=rows, left=1)]
        parts += [Part("text", line) for line in across_verdict(a)]
        parts.append(Part("figure", "cd.png", figure=cd_figure(a, comparisons[0].metric)))
    return parts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python scripts/compare.py",
        description="Compare runs: group them by the options that change results, pair them by seed, test every "
                    "group against the best (or --baseline) with Holm-corrected Wilcoxon tests and bootstrap "
                    "intervals; --across ranks groups over datasets (Friedman, Nemenyi). Writes report.md, "
                    "report.html, table.csv and figures (also logged to the sweep's parent run under compare/).")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--parent", metavar="RUN_ID", help="the parent run of a sweep (default: the latest sweep)")
    which.add_argument("--experiment", metavar="NAME", help="every run of this experiment instead of one sweep")
    p.add_argument("--filter", metavar="FILTER", help="only the selected runs that match this MLflow search filter, "
                                                      "e.g. \"params.`trainer.monitor` = 'val/balanced_ce'\"")
    p.add_argument("--metric", default=DEFAULT_METRIC, help=f"rank by this metric (default {DEFAULT_METRIC})")
    p.add_argument("--baseline", metavar="GROUP", help="test the groups against this one, e.g. 'loss=plain' or "
                                                        "plain (default: the best group)")
    p.add_argument("--across", metavar="KEY", help="rank the groups on every value of KEY (dataset, or an option "
                                                    "such as imbalance.ratio): average ranks, Friedman, CD diagram")
    p.add_argument("--out", type=Path, help="output folder (default outputs/compare/<sweep-id or experiment>/)")
    p.add_argument("--tracking-uri", help="MLflow store, resolved like the trainer's tracking.uri (default: "
                                          "$MLFLOW_TRACKING_URI, else sqlite:///<working directory>/mlflow.db)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """The compare command: print the tables, write the report, log it to the parent run. Exit 2 on user error."""
    args = parse_args(argv)
    try:
        return _main(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2


def _main(args: argparse.Namespace) -> int:
    from mlflow.tracking import MlflowClient

    uri = resolve_uri(args.tracking_uri)
    require_store(uri)
    end_orphans(uri)  # a killed sweep's runs are KILLED, not RUNNING, in what follows
    refresh_statistics(uri)  # a large sqlite store reads metric histories through the right index
    client = MlflowClient(uri)
    sel = select(client, uri, experiment=args.experiment, parent=args.parent, where=args.filter)
    comparisons = comparisons_of(sel.runs, args.metric, args.across, args.baseline)
    a = across(comparisons, args.across) if args.across else None
    notes = ([f"{counted(len(sel.skipped), 'run')} not finished, left out: {', '.join(sel.skipped)}"]
             if sel.skipped else [])
    diverged = [r.info.run_name for r in sel.runs if r.data.tags.get(DIVERGED)]
    if diverged:
        notes.append(f"{counted(len(diverged), 'run')} diverged (tag {DIVERGED}: finished at chance-level scores, "
                     f"which pull their group's mean down): {', '.join(diverged)}")
    if sel.running:
        notes.insert(0, "the sweep is still running (its parent run is RUNNING): these are the runs that finished "
                        "so far; compare again when it ends")
    if len(comparisons) > 1 and a is None:
        notes.append(f"the runs learn from {len(comparisons)} data conditions (dataset, imbalance, noise): one table "
                     "each, never one ranking; --across KEY ranks the groups over them")
    parts = report_parts(sel, comparisons, a, client, notes)
    print(report.markdown([p for p in parts if p.kind != "figure"]), flush=True)

    out = args.out or Path("outputs") / "compare" / sel.name
    paths = report.write(out, parts, comparisons, f"Comparison of {sel.description}")
    print(f"wrote {out}/: {', '.join(p.name for p in paths)}")
    if sel.parent_run_id:
        for p in paths:
            client.log_artifact(sel.parent_run_id, str(p), "compare")
        print(f"logged them to the sweep's parent run {sel.parent_run_id} under compare/ (open report.html there)")
    else:
        print("not logged to MLflow: --experiment selects runs, not a sweep with a parent run")
    return 0
