"""Which runs are compared and how: the runs of a sweep or an experiment, grouped by the options that change
results, matched by seed (and fold), each group tested against the baseline (trainer.analysis.stats), and across
data conditions ranked.

Plain functions over MLflow runs; scripts/compare.py's command line and report are in trainer.analysis.compare.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.analysis import stats
from trainer.config import ADDED_SETTINGS
from trainer.errors import UserError
from trainer.evaluate.metrics import lower_is_better
from trainer.tracking.params import GROUPS
from trainer.words import counted

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

DEFAULT_METRIC = "test/balanced_accuracy"
WORST_RECALL = "test/worst_class_recall"  # derived: the lowest test/recall/<class> of a run
COLUMNS = (DEFAULT_METRIC, "test/macro_f1", "test/accuracy", WORST_RECALL, "test/ce", "test/ece", "best/val/ce")
DATA_GROUPS = ("dataset", "imbalance", "noise")  # what the model learns from: one table per condition
SOURCE_TAG = "data.source_fingerprint"  # SHA-256 of what the loader read, before any split
PAIR_KEYS = ("seed", "split.fold")  # the same seed (and fold) means the same split, imbalance and noise
# Params that are no option a user compares: the pairing keys; settings that change how fast or where a run
# goes, not what it learns (threads, device, checkpoint cadence, resume, anomaly detection, tracking); values a
# run decided itself (*.used.*); and <group>.name, the same as the group's tag.
_NOT_OPTIONS = re.compile(r"^(seed|split\.fold|torch\.threads|trainer\.(threads|device|persist_every_s|resume|"
                          r"detect_anomaly)|tracking\..*|.*\.used\..*|(" + "|".join(GROUPS) + r")\.name)$")


@dataclass
class Selection:
    """The runs to compare and where they came from."""

    runs: list[Run]
    name: str                          # folder name under outputs/compare/
    description: str                   # one line saying what was selected
    parent_run_id: str | None = None   # the sweep's parent run, where the files are logged
    skipped: list[str] = field(default_factory=list)  # runs left out because they did not finish
    running: bool = False              # the sweep's parent run is RUNNING: its jobs may not all have started


def _all_runs(client: MlflowClient, experiment_ids: list[str], filter_string: str = "") -> list[Run]:
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string, max_results=1000, page_token=token,
                                  order_by=["attributes.start_time ASC"])
        runs += list(page)
        token = page.token
        if not token:
            return runs


def select(client: MlflowClient, uri: str, experiment: str | None = None, parent: str | None = None,
           where: str | None = None) -> Selection:
    """The finished runs of --parent's sweep, of --experiment, or of the latest sweep in the store; with where (an
    MLflow search filter, e.g. "params.`trainer.monitor` = 'val/balanced_ce'"), only those runs of them."""
    from mlflow.exceptions import MlflowException

    def runs_of(experiment_ids: list[str], filter_string: str = "") -> list[Run]:
        both = " and ".join(f for f in (filter_string, where) if f)
        try:
            return _all_runs(client, experiment_ids, both)
        except MlflowException as e:
            if where is None:
                raise
            raise UserError(f"--filter {where!r}: MLflow cannot use it ({str(e).splitlines()[0]}). Write it as MLflow's "
                            "search syntax, e.g. \"params.`loss.name` = 'plain'\" or \"tags.remedy != 'smote'\".") from e

    if experiment is not None:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            names = ", ".join(repr(e.name) for e in client.search_experiments()) or "none"
            raise UserError(f"--experiment {experiment!r}: no such experiment in {uri} (experiments there: {names}).")
        runs = [r for r in runs_of([exp.experiment_id]) if r.data.tags.get("sweep") != "parent"]
        selection = Selection(runs, safe_name(experiment), f"experiment {experiment!r}")
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
        runs = runs_of([parent_run.info.experiment_id], f"tags.mlflow.parentRunId = '{pid}'")
        if not runs:
            raise UserError(f"--parent {pid}: run {parent_run.info.run_name!r} has no child runs; give the id of "
                            "a sweep's parent run (its name starts with 'sweep').")
        selection = Selection(runs, f"sweep-{pid[:8]}", f"sweep {parent_run.info.run_name!r} ({pid})", pid,
                              running=parent_run.info.status == "RUNNING")
    selection.skipped = [f"{r.info.run_name} ({r.info.status})" for r in selection.runs
                         if r.info.status != "FINISHED"]
    selection.runs = [r for r in selection.runs if r.info.status == "FINISHED"]
    if where:
        selection.description += f" where {where}"
    if not selection.runs:
        held = (f" ({len(selection.skipped)} not finished: {', '.join(selection.skipped)})" if selection.skipped
                else ": it holds no run")
        raise UserError(f"{selection.description} has no finished run to compare{held}."
                        + (" The sweep is still running: compare when it has finished runs." if selection.running
                           else ""))
    return selection


def safe_name(name: str, limit: int = 80) -> str:
    """name as a file or folder name: runs of characters other than letters, digits, '.' and '-' as '_'; a name
    longer than limit is cut and ends in 8 hex digits of its SHA-1, so distinct names stay distinct and no file
    system refuses it (255 bytes)."""
    safe = re.sub(r"[^\w.-]+", "_", name).strip("_") or "runs"
    if len(safe) <= limit:
        return safe
    import hashlib

    return f"{safe[:limit - 9]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


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
    params = ADDED_SETTINGS | run.data.params  # a run logged before a setting existed did what its default does
    out |= {k: normalise(v) for k, v in sorted(params.items()) if not _NOT_OPTIONS.match(k)}
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
    design: KFold | None = None    # the runs' k-fold cross-validation, if they all come from one

    @property
    def metric(self) -> str:
        return self.metrics[0]

    def samples(self, label: str) -> dict[tuple[str, ...], float]:
        """The ranking metric of a group's runs by pair key (seed, fold)."""
        return {pair_key(r): run_metrics(r).get(self.metric, math.nan) for r in self.groups[label]}


@dataclass(frozen=True)
class KFold:
    """The cross-validation the runs come from: k folds (split.folds), val the fraction of all rows carved from
    the other folds for validation (split.val), seeds the repetitions seen."""

    folds: int
    val: float
    seeds: int

    @property
    def test_train_ratio(self) -> float:
        """n_test / n_train of one fold: a test fold holds 1/k of the rows, the model trains on 1 - 1/k - val."""
        return (1 / self.folds) / (1 - 1 / self.folds - self.val)

    def describe(self) -> str:
        return f"{counted(self.seeds, 'seed')} x {counted(self.folds, 'fold')}"


def kfold_design(runs: list[Run]) -> KFold | None:
    """The k-fold design every run shares (split.folds, split.val params); None for runs without folds, or for runs
    of several designs (then they pair by seed and fold as they can, tested as independent seeds)."""
    designs = {(normalise(r.data.params.get("split.folds", "null")), normalise(r.data.params.get("split.val", "0.2")))
               for r in runs}
    if len(designs) != 1:
        return None
    folds, val = designs.pop()
    if folds == "null":
        return None
    return KFold(int(folds), float(val), len({pair_key(r)[0] for r in runs}))


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
        raise UserError(f"--metric {metric}: none of the {counted(len(runs), 'run')} has it. Metrics they have: "
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
        lack = "lacks" if len(lacking) == 1 else "lack"
        total = counted(sum(row["n"] for row in rows), "run")
        warnings.insert(0, f"{len(lacking)} of {total} {lack} {metric} and are left out of its mean: "
                           f"{', '.join(lacking)}")
    sign = 1 if lower_is_better(metric) else -1
    rows.sort(key=lambda row: (math.isnan(row[f"{metric} mean"]), sign * row[f"{metric} mean"]))
    groups = {}
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
        groups[row.pop("_label")] = row.pop("_runs")
    c = Comparison(rows, keys, metrics_of(per_run, metric), groups, warnings, title=title, design=kfold_design(runs))
    c.warnings += missing_pairs(c)
    c.baseline = find_group(c, baseline) if baseline else next(iter(groups))
    base = c.samples(c.baseline)
    c.diffs = {label: difference(c, c.samples(label), base) for label in groups if label != c.baseline}
    stats.correct(list(c.diffs.values()))
    return c


def difference(c: Comparison, group: dict[tuple[str, ...], float],
               baseline: dict[tuple[str, ...], float]) -> stats.Difference:
    """A group against the baseline, with the test the design calls for: over the seeds x folds of k-fold
    cross-validation the corrected repeated k-fold t-test (the folds of a seed share most training rows, so their
    pairs are not independent); over seeds alone the Wilcoxon signed-rank test (each seed a new split)."""
    if c.design is not None:
        return stats.corrected_kfold_difference(group, baseline, c.design.test_train_ratio)
    return stats.paired_difference(group, baseline)


def missing_pairs(c: Comparison) -> list[str]:
    """Which groups lack which seeds (and folds) that other groups have: runs that failed, were stopped or were
    never run. Such a group is compared on the pairs it has."""
    have = {label: {pair_key(r) for r in runs} for label, runs in c.groups.items()}
    every = set().union(*have.values())
    notes = []
    for label, keys in have.items():
        lacking = sorted(every - keys, key=lambda k: tuple(int(x) if x.isdigit() else 0 for x in k))
        if lacking and all(len(k) <= 2 for k in lacking):
            shown = ", ".join(pair_label(k) for k in lacking[:8]) + (f" and {len(lacking) - 8} more"
                                                                      if len(lacking) > 8 else "")
            notes.append(f"{label} lacks {shown} (failed, stopped or not run): compared on the "
                         f"{counted(len(keys), 'pair')} it has")
    return notes


def metrics_of(per_run: list[dict[str, float]], metric: str) -> list[str]:
    """The ranking metric, then the usual columns some run has."""
    return [metric] + [c for c in COLUMNS if c != metric and any(c in m for m in per_run)]


def find_group(c: Comparison, name: str) -> str:
    """The group --baseline names: its label (loss=plain, resampling=none), one of its options (loss=plain) or a
    value (plain). Where that names several groups, the one whose other options are all the defaults (conf/'s
    config.yaml: loss=plain names "loss=plain, resampling=none" among runs that vary both); UserError if still not
    one, suggesting the full labels."""
    def parts(label: str) -> set[str]:
        return {label, *label.split(", "), *(p.split("=", 1)[-1] for p in label.split(", "))}

    found = [label for label in c.groups if name in parts(label)]
    if len(found) > 1:
        defaults = default_options()

        def plain(label: str) -> bool:  # each option the one named or its default
            pairs = [part.split("=", 1) for part in label.split(", ")]
            return all(len(kv) == 2 and (name in ("=".join(kv), kv[1]) or defaults.get(kv[0]) == kv[1])
                       for kv in pairs)

        found = [label for label in found if plain(label)] if sum(map(plain, found)) == 1 else found
    if len(found) != 1:
        example = found[0] if found else next(iter(c.groups))
        raise UserError(f"--baseline {name!r} names {'no group' if not found else 'several groups'}"
                        f"{' of ' + c.title if c.title else ''}; groups: {'; '.join(c.groups)}. "
                        f"Give a label as the table shows it, e.g. --baseline '{example}'.")
    return found[0]


def default_options() -> dict[str, str]:
    """The options of a run with no override: group tags and settings of conf/'s default config, normalised as
    options() normalises a run's."""
    from hydra import compose, initialize_config_dir

    from trainer.config import CONF
    from trainer.tracking.params import flatten

    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config")
    out = {g: str(cfg[g].name) for g in GROUPS if g in cfg and "name" in cfg[g]}
    return out | {k: normalise(v) for k, v in flatten(cfg).items() if not _NOT_OPTIONS.match(k)}


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
    # the block keys first: settings that change with them (dataset.n_features with dataset) group nothing more
    keys = [k for k in differing_keys(runs, tuple(blocks)) if k not in blocks] if blocks else None
    parts = {title: split for block, rs in partition(runs, blocks).items()
             for title, split in by_source(block, rs).items()}
    return [compare(rs, metric, keys=keys, baseline=baseline, title=title) for title, rs in parts.items()]


def by_source(title: str, runs: list[Run]) -> dict[str, list[Run]]:
    """The runs of one data condition, split by what their loader read (data.source_fingerprint) where runs of one
    seed and fold read different data (a file edited between sweeps): those are different experiments, each titled
    data.source=<its first 12 hex digits>. Data made from the seed (dataset=synthetic) differ between seeds, not
    within one, and stay one condition."""
    sources: dict[tuple[str, ...], set[str]] = {}
    for r in runs:
        sources.setdefault(pair_key(r), set()).add(r.data.tags.get(SOURCE_TAG, ""))
    if all(len(found) <= 1 for found in sources.values()):
        return {title: runs}
    out: dict[str, list[Run]] = {}
    for r in runs:
        source = f"data.source={r.data.tags.get(SOURCE_TAG, '')[:12] or 'unknown'}"
        out.setdefault(f"{title}, {source}" if title else source, []).append(r)
    return out
