"""Compare the runs of a sweep (or an experiment): group them by the options that change results, match runs
by seed (and fold), test every group against the best (or --baseline), and across datasets (or any key) rank
the groups with a Friedman test; print the table and write report.md, report.html, table.csv and figures, also
to the sweep's parent run.

Used by scripts/compare.py. The statistics are in trainer/stats.py, the report in trainer/report.py; here
are the selection of runs, their grouping and the command line.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.analysis import report
from trainer.analysis import stats
from trainer.config import UserError
from trainer.analysis.report import Part, cd_figure, curves_figure, differences_figure
from trainer.tracking.store import GROUPS, _probe_http, default_uri, resolve_uri, ui_command

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

DEFAULT_METRIC = "test/balanced_accuracy"
CURVE_METRIC = "val/ce"
WORST_RECALL = "test/worst_class_recall"  # derived: the lowest test/recall/<class> of a run
COLUMNS = (DEFAULT_METRIC, "test/macro_f1", "test/accuracy", WORST_RECALL, "test/ce", "test/ece", "best/val/ce")
DATA_GROUPS = ("dataset", "imbalance", "noise")  # what the model learns from: one table per condition
PAIR_KEYS = ("seed", "split.fold")  # the same seed (and fold) means the same split, imbalance and noise
# Params that are no option a user compares: the pairing keys; settings that change how fast or where a run
# goes, not what it learns (threads, device, checkpoint cadence, resume, anomaly detection, tracking); values a
# run decided itself (*.used.*); and <group>.name, the same as the group's tag.
_NOT_OPTIONS = re.compile(r"^(seed|split\.fold|torch\.threads|trainer\.(threads|device|persist_every_s|resume|"
                          r"detect_anomaly)|tracking\..*|.*\.used\..*|(" + "|".join(GROUPS) + r")\.name)$")
UI_RUNS = "#/experiments/{}?workflowType=machine_learning"  # MLflow 3.17 opens experiments on GenAI pages otherwise
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


def normalise(value: str) -> str:
    """One spelling per value: 1, 1.0 and 1e0 read 1; True and true read true; None and null read null."""
    low = value.strip().lower()
    if low in {"none", "null", "~"}:
        return "null"
    if low in {"true", "false"}:
        return low
    try:
        number = float(value)
    except ValueError:
        return value
    if math.isfinite(number) and number == int(number) and abs(number) < 1e15:
        return str(int(number))
    return repr(number)


def options(run: Run) -> dict[str, str]:
    """What was chosen for a run: its group tags (loss=focal) and the settings that change results as params
    (loss.gamma=2), values normalised."""
    out = {g: run.data.tags[g] for g in GROUPS if g in run.data.tags}
    out |= {k: normalise(v) for k, v in sorted(run.data.params.items()) if not _NOT_OPTIONS.match(k)}
    return out


def pair_key(run: Run) -> tuple[str, ...]:
    """(seed,) or (seed, fold): what matches a run with its counterpart in another group. A run without a
    seed param pairs with nothing (its run id)."""
    params = run.data.params
    seed_key, fold_key = PAIR_KEYS
    if seed_key not in params:
        return (run.info.run_id,)
    seed, fold = normalise(params[seed_key]), normalise(params.get(fold_key, "null"))
    return (seed,) if fold == "null" else (seed, fold)


def pair_label(key: tuple[str, ...]) -> str:
    return f"seed {key[0]}" + (f" fold {key[1]}" if len(key) > 1 else "")


def differing_keys(runs: list[Run], first: tuple[str, ...] = ()) -> list[str]:
    """The options that split the runs into groups: `first`, then group tags, then settings, each kept only if
    it separates runs the keys before it do not (resampling.sampler._target_ adds nothing to resampling)."""
    opts = [options(r) for r in runs]
    candidates = list(dict.fromkeys(k for o in opts for k in o))
    # remedy (a study preset's tag) names a loss or resampling choice at once: it labels the groups best
    candidates.sort(key=lambda k: (k not in first, k != "remedy", k not in GROUPS,
                                   GROUPS.index(k) if k in GROUPS else 0, k))
    keys: list[str] = []
    groups = 1
    for k in candidates:
        n = len({tuple(o.get(key, "") for key in [*keys, k]) for o in opts})
        if n > groups:
            keys.append(k)
            groups = n
    return keys


def data_keys(runs: list[Run]) -> list[str]:
    """The options that tell data conditions apart among these runs: the dataset, and the imbalance and noise
    applied to its train split (dataset, imbalance, noise tags and their settings). Runs that differ in them
    learn from different data and are not ranked against one best."""
    return [k for k in differing_keys(runs, DATA_GROUPS) if k.split(".")[0] in DATA_GROUPS]


def partition(runs: list[Run], keys: list[str]) -> dict[str, list[Run]]:
    """Runs by their values of keys, as labels 'k=v, k2=v2' ('' for no keys), in order of appearance; a file
    path shows as its file name where that tells the blocks apart (dataset.path=yeast4.csv)."""
    def label(r: Run, short: bool) -> str:
        opts = options(r)
        return ", ".join(f"{k}={Path(v).name if short and '/' in v else v}"
                         for k, v in ((k, opts.get(k, "–")) for k in keys))

    full = {label(r, False) for r in runs}
    short = len({label(r, True) for r in runs}) == len(full)
    out: dict[str, list[Run]] = {}
    for r in runs:
        out.setdefault(label(r, short), []).append(r)
    return out


def run_metrics(run: Run) -> dict[str, float]:
    """The run's final metrics, plus test/worst_class_recall when it logged per-class recall."""
    out = dict(run.data.metrics)
    recalls = [v for k, v in out.items() if k.startswith("test/recall/")]
    if recalls:
        out[WORST_RECALL] = min(recalls)
    return out


@dataclass
class Comparison:
    """The aggregated table of one set of runs (one dataset), one row per group of runs, best first, and every
    group's difference to the baseline group."""

    rows: list[dict[str, Any]]     # keys, "rank", "n", then "<metric> mean|std|n" per metric
    keys: list[str]                # the options that differ (the grouping)
    metrics: list[str]             # the ranking metric first
    groups: dict[str, list[Run]]   # group label -> its runs (one per seed/fold), in table order
    warnings: list[str]
    baseline: str = ""             # label of the group the others are tested against
    diffs: dict[str, stats.Difference] = field(default_factory=dict)  # label -> difference to the baseline
    title: str = ""                # which dataset, when the selection holds several

    @property
    def metric(self) -> str:
        return self.metrics[0]

    def samples(self, label: str) -> dict[tuple[str, ...], float]:
        """The ranking metric of a group's runs by pair key (seed, fold)."""
        return {pair_key(r): run_metrics(r).get(self.metric, math.nan) for r in self.groups[label]}


def _stats(values: list[float]) -> tuple[float, float, int]:
    """mean, sample standard deviation (nan for fewer than two values) and count, of the values present."""
    import numpy as np

    v = np.array([x for x in values if not math.isnan(x)])
    if not len(v):
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v)


def deduplicate(runs: list[Run]) -> tuple[list[Run], list[str]]:
    """One run per pair key: the latest started; notes name the repeats left out (a re-run of a seed is the
    same sample again, not a new one)."""
    latest: dict[tuple[str, ...], Run] = {}
    repeats: dict[tuple[str, ...], int] = {}
    for r in sorted(runs, key=lambda r: r.info.start_time or 0):
        key = pair_key(r)
        repeats[key] = repeats.get(key, 0) + (key in latest)
        latest[key] = r
    notes = [f"{pair_label(k)} ran {n + 1} times; kept the latest, {latest[k].info.run_name}"
             for k, n in repeats.items() if n]
    return [r for r in runs if latest[pair_key(r)] is r], notes


def compare(runs: list[Run], metric: str = DEFAULT_METRIC, keys: list[str] | None = None,
            baseline: str | None = None, title: str = "") -> Comparison:
    """Group runs by the options that differ (or by keys), keep one run per seed and fold in each group,
    aggregate every metric (mean, std, n), rank, and test every group against the baseline (default: the best).

    Raises UserError when no run has the metric or --baseline names no group (or several).
    """
    per_run = [run_metrics(r) for r in runs]
    if not any(metric in m for m in per_run):
        available = sorted({k for m in per_run for k in m if not k.startswith("test/recall/")})
        raise UserError(f"--metric {metric}: none of the {len(runs)} runs has it. Metrics they have: "
                        f"{', '.join(available)}.")
    keys = differing_keys(runs) if keys is None else keys
    warnings = []
    members: dict[tuple[str, ...], list[Run]] = {}
    for r in runs:
        opts = options(r)
        members.setdefault(tuple(opts.get(k, "") for k in keys), []).append(r)
    rows = []
    for values, group in members.items():
        group, notes = deduplicate(group)
        label = ", ".join(f"{k}={v}" for k, v in zip(keys, values) if v != "") or "all runs"
        warnings += [f"{label}: {n}" for n in notes]
        row: dict[str, Any] = dict(zip(keys, values)) | {"n": len(group), "_runs": group, "_label": label}
        for m in metrics_of(per_run, metric):
            row[f"{m} mean"], row[f"{m} std"], row[f"{m} n"] = _stats([run_metrics(r).get(m, math.nan) for r in group])
        rows.append(row)
    lacking = [r.info.run_name for row in rows for r in row["_runs"] if metric not in r.data.metrics
               and metric != WORST_RECALL]
    if lacking:
        warnings.insert(0, f"{len(lacking)} of {sum(row['n'] for row in rows)} runs lack {metric} and are left "
                           f"out of its mean: {', '.join(lacking)}")
    sign = 1 if lower_is_better(metric) else -1
    rows.sort(key=lambda row: (math.isnan(row[f"{metric} mean"]), sign * row[f"{metric} mean"]))
    groups = {}
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
        groups[row.pop("_label")] = row.pop("_runs")
    c = Comparison(rows, keys, metrics_of(per_run, metric), groups, warnings, title=title)
    c.baseline = find_group(c, baseline) if baseline else next(iter(groups))
    base = c.samples(c.baseline)
    c.diffs = {label: stats.paired_difference(c.samples(label), base) for label in groups if label != c.baseline}
    stats.correct(list(c.diffs.values()))
    return c


def metrics_of(per_run: list[dict[str, float]], metric: str) -> list[str]:
    """The ranking metric, then the usual columns some run has."""
    return [metric] + [c for c in COLUMNS if c != metric and any(c in m for m in per_run)]


def find_group(c: Comparison, name: str) -> str:
    """The group --baseline names: its label (loss=plain), one of its options (loss=plain) or a value (plain)."""
    def parts(label: str) -> set[str]:
        return {label, *label.split(", "), *(p.split("=", 1)[-1] for p in label.split(", "))}

    found = [label for label in c.groups if name in parts(label)]
    if len(found) != 1:
        raise UserError(f"--baseline {name!r} names {'no group' if not found else 'several groups'}"
                        f"{' of ' + c.title if c.title else ''}; groups: {'; '.join(c.groups)}. "
                        "Give a label as the table shows it, e.g. --baseline 'loss=plain'.")
    return found[0]


def _cell(mean: float, std: float, n: int, group_n: int) -> str:
    if n == 0:
        return "–"
    text = f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"
    return text + (f" (n={n})" if n != group_n else "")


def _p(p: float) -> str:
    return "–" if math.isnan(p) else f"{p:.3g}"


def how_tested(d: stats.Difference) -> str:
    """How a difference was tested: 'Wilcoxon, 3 pairs' or 'Mann-Whitney, unpaired'."""
    if d.test == "–":
        return "–"
    return f"{d.test}, {d.n} pairs" if d.paired else f"{d.test}, unpaired"


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
            interval = "" if math.isnan(d.low) else f" [{d.low:+.4f}, {d.high:+.4f}]"
            cells += ["–" if math.isnan(d.mean) else f"{d.mean:+.4f}{interval}", _p(d.p), _p(d.p_holm), how_tested(d)]
        cells += [_cell(row[f"{x} mean"], row[f"{x} std"], row[f"{x} n"], row["n"]) for x in c.metrics[1:]]
        out.append(cells)
    return header, out


def verdict(c: Comparison, alpha: float = stats.ALPHA) -> list[str]:
    """Plain sentences under the table: which groups differ from the baseline after Holm's correction, which
    do not, and whether the number of seeds allowed any test to reach alpha at all."""
    if not c.diffs:
        return []
    out = []
    differ = [f"{label} ({d.mean:+.4f})" for label, d in c.diffs.items() if d.p_holm <= alpha]
    same = [label for label, d in c.diffs.items() if not d.p_holm <= alpha]
    out.append(f"Differ from {c.baseline} at {alpha} after Holm's correction over {len(c.diffs)} comparisons: "
               + (", ".join(differ) if differ else "none"))
    if same:
        out.append(f"No significant difference from {c.baseline}: {', '.join(same)}")
    m = len(c.diffs)
    floor = [(label, d) for label, d in c.diffs.items() if d.min_p * m > alpha]  # Holm's first step: p * m
    if floor:
        label, d = max(floor, key=lambda x: x[1].min_p)
        who = "every comparison" if len(floor) == m else ", ".join(x for x, _ in floor)
        size = (f"{d.n} pairs" + (f" ({d.nonzero} with a non-zero difference)" if d.nonzero < d.n else "")
                if d.paired else f"{d.n} runs per group")
        need = (f"{stats.pairs_needed(m, alpha)} seeds" if d.paired
                else f"{stats.runs_needed_unpaired(m, alpha)} runs per group")
        out.append(f"n too small for {who}: with {size} the smallest possible {d.test} p is {d.min_p:.3g}, "
                   f"times {m} comparisons for Holm's correction {d.min_p * m:.3g}, above {alpha}: no difference "
                   f"there can be significant whatever the data. {need.capitalize()} are the least that can "
                   f"reach {alpha}" + ("; a tied pair does not count" if d.paired and d.nonzero < d.n else ""))
    unmatched = sorted({pair_label(k) for d in c.diffs.values() for k in d.unmatched if len(k) <= 2 and d.paired})
    if unmatched:
        out.append(f"Left out of the pairs (present in one group only): {', '.join(unmatched)}")
    if any(not d.paired for d in c.diffs.values()):
        out.append("Unpaired: groups without a common seed are compared by Mann-Whitney U on their runs.")
    return out


def summary_line(c: Comparison) -> str:
    """What was compared and how, as the line above a table."""
    by = ", ".join(c.keys) if c.keys else "nothing (every run has the same options)"
    order = "lower" if lower_is_better(c.metric) else "higher"
    n = sum(row["n"] for row in c.rows)
    return (f"{n} runs in {len(c.groups)} groups by {by}; mean ± sample std over seeds, ranked by {c.metric} "
            f"({order} is better); Δ: paired by seed against {c.baseline}, 95% bootstrap interval, two-sided "
            "p and Holm-corrected p.")


@dataclass
class Across:
    """Groups ranked on every block (a dataset, or any key's value) by their mean over seeds."""

    key: str
    blocks: list[str]              # block labels, rows of table
    groups: list[str]              # group labels, columns of table
    table: Any                     # np.ndarray [blocks, groups]: mean of the metric over seeds
    friedman: stats.Friedman
    left_out: list[str]            # groups missing on some block (the Friedman test needs every cell)


def across(comparisons: list[Comparison], key: str, alpha: float = stats.ALPHA) -> Across:
    """Rank the groups every comparison (block) shares; Friedman test and Nemenyi CD. UserError with fewer than
    2 blocks or 2 shared groups."""
    import numpy as np

    if len(comparisons) < 2:
        raise UserError(f"--across {key}: the runs hold {len(comparisons)} value of {key}; ranks across need at "
                        "least 2 (better 5 or more). Pick another key or add runs.")
    means = [dict(zip(c.groups, (row[f"{c.metric} mean"] for row in c.rows))) for c in comparisons]
    shared = [g for g in comparisons[0].groups if all(not math.isnan(m.get(g, math.nan)) for m in means)]
    left_out = sorted({g for c in comparisons for g in c.groups} - set(shared))
    if len(shared) < 2:
        raise UserError(f"--across {key}: fewer than 2 groups have {comparisons[0].metric} on every {key} "
                        f"({', '.join(shared) or 'none'}).")
    table = np.array([[m[g] for g in shared] for m in means])
    f = stats.friedman(table, lower_is_better(comparisons[0].metric), alpha)
    return Across(key, [c.title for c in comparisons], shared, table, f, left_out)


def ranks_for_display(a: Across) -> tuple[list[str], list[list[str]]]:
    """Groups by average rank: the rank on each block and the average."""
    order = sorted(range(len(a.groups)), key=lambda j: a.friedman.average_ranks[j])
    header = ["group", "average rank", *a.blocks]
    rows = [[a.groups[j], f"{a.friedman.average_ranks[j]:.2f}", *(f"{a.friedman.ranks[i, j]:g} ({a.table[i, j]:.4f})"
                                                                   for i in range(len(a.blocks)))] for j in order]
    return header, rows


def across_verdict(a: Across) -> list[str]:
    """The Friedman result and which groups' average ranks differ by more than Nemenyi's CD."""
    f = a.friedman
    k, n = len(a.groups), len(a.blocks)
    out = [f"Friedman over {n} values of {a.key}, {k} groups: chi2 = {f.statistic:.3f}, p = {_p(f.p)}"
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
def comparisons_of(runs: list[Run], metric: str, across_key: str | None = None,
                   baseline: str | None = None) -> list[Comparison]:
    """One comparison per data condition (runs that learn from different data are never ranked against one
    best), and with across_key also one per value of that key; the groups are the same options in every one."""
    blocks = data_keys(runs)
    # --across dataset means the data keys already found (dataset.path of CSV tables), not one more key
    if across_key is not None and not any(k == across_key or k.startswith(across_key + ".") for k in blocks):
        if across_key != "dataset" and not any(across_key in options(r) for r in runs):
            raise UserError(f"--across {across_key}: no run has this option. Options that differ here: "
                            f"{', '.join(differing_keys(runs)) or 'none'}.")
        blocks.append(across_key)
    if not blocks:
        return [compare(runs, metric, baseline=baseline)]
    # the block keys first: settings that change with them (dataset.n_features with dataset) group nothing more
    keys = [k for k in differing_keys(runs, tuple(blocks)) if k not in blocks]
    return [compare(rs, metric, keys=keys, baseline=baseline, title=title)
            for title, rs in partition(runs, blocks).items()]


def report_parts(sel: Selection, comparisons: list[Comparison], a: Across | None, client: MlflowClient,
                 notes: list[str]) -> list[Part]:
    """The report: a line on what was selected, per block (dataset) its table, verdict, notes and figures,
    then across blocks the ranks, the Friedman test and the critical-difference diagram."""
    parts = [Part("text", f"{sel.description}: {len(sel.runs)} finished runs.")]
    parts += [Part("text", f"Note: {n}.") for n in notes]
    for i, c in enumerate(comparisons):
        suffix = f"-{_safe(c.title)}" if c.title else ""
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


def sweep_hint(uri: str, parent_run_id: str, experiment_id: str) -> str:
    """What the end of a sweep prints, once: the compare command for this sweep and where the UI shows its runs."""
    store = "" if uri == default_uri() else f" --tracking-uri {uri}"
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    ui = "open" if uri.startswith(("http://", "https://")) else f"{ui_command(uri)}, then open"
    from trainer.tracking.provenance import script

    return (f"Compare this sweep (paired tests, report): python {script('scripts/compare.py')} --parent "
            f"{parent_run_id}{store}\n"
            f"Its runs in the UI: {ui} {base}/{UI_RUNS.format(experiment_id)}")


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
    check_store(uri)
    client = MlflowClient(uri)
    sel = select(client, uri, experiment=args.experiment, parent=args.parent)
    comparisons = comparisons_of(sel.runs, args.metric, args.across, args.baseline)
    a = across(comparisons, args.across) if args.across else None
    notes = [f"{len(sel.skipped)} runs not finished, left out: {', '.join(sel.skipped)}"] if sel.skipped else []
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
