"""Statistics for comparing groups of runs: paired differences over seeds (and folds), their intervals and tests,
Holm's correction, and the Friedman test with Nemenyi's critical difference over datasets.

Plain functions over numbers; the grouping of MLflow runs lives in trainer/analysis/grouping.py.
Sources: Wilcoxon (1945) signed-rank and Mann-Whitney (1947) U tests as scipy.stats implements them (exact
p-values for small samples), Efron's bootstrap via scipy.stats.bootstrap, the corrected resampled t-test of Nadeau &
Bengio (Machine Learning 52, 2003) with the repeated k-fold form of Bouckaert & Frank (PAKDD 2004) on scipy.stats.t,
Holm (1979), Friedman (1937) via scipy.stats.friedmanchisquare, Nemenyi's critical difference as in Demšar, JMLR 7
(2006), section 3.2.2.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

ALPHA = 0.05
CONFIDENCE = 0.95
N_RESAMPLES = 9999


@dataclass
class Difference:
    """One group against the baseline: mean difference (group - baseline, in the metric's units), its
    bootstrap interval, the test's p-value (uncorrected), and how the samples were matched."""

    mean: float
    low: float
    high: float
    p: float
    n: int                      # pairs (paired) or the smaller group's size (unpaired)
    test: str                   # "Wilcoxon" (paired over seeds), "corrected t" (paired over seeds x folds of k-fold
    #                             cross-validation), "Mann-Whitney" (unpaired), "–" (nothing to test)
    paired: bool
    min_p: float                # the smallest p-value the test can give with these n (tied pairs do not count; 0 for t)
    unmatched: list[Hashable] = field(default_factory=list)  # seeds/folds one side has and the other lacks
    p_holm: float = math.nan    # filled by correct()
    nonzero: int = 0            # paired: pairs with a non-zero difference, those Wilcoxon's test uses
    statistic: float = math.nan  # the corrected t statistic (corrected t only)


def pair(a: Mapping[Hashable, float], b: Mapping[Hashable, float]) -> tuple[np.ndarray, np.ndarray, list[Hashable]]:
    """Match two groups' values by key (seed, or (seed, fold)), not by position.

    Returns (a values, b values) on the keys both have, in sorted key order, and the keys only one has.
    NaN values count as missing.
    """
    ka = {k for k, v in a.items() if not math.isnan(v)}
    kb = {k for k, v in b.items() if not math.isnan(v)}
    common = sorted(ka & kb, key=str)
    return (np.array([a[k] for k in common], float), np.array([b[k] for k in common], float),
            sorted(ka ^ kb, key=str))


def wilcoxon_min_p(n: int) -> float:
    """The smallest two-sided exact Wilcoxon signed-rank p-value with n non-zero pairs: 2 / 2^n
    (every difference of one sign). n=3: 0.25, n=5: 0.0625, n=6: 0.03125: six pairs are needed for 0.05."""
    return min(1.0, 2.0 ** (1 - n)) if n > 0 else 1.0


def mannwhitney_min_p(n1: int, n2: int) -> float:
    """The smallest two-sided exact Mann-Whitney p-value for samples of n1 and n2 (no ties): 2 / C(n1+n2, n1).
    3 vs 3: 0.1; 4 vs 4: 0.029."""
    return min(1.0, 2.0 / math.comb(n1 + n2, n1)) if n1 and n2 else 1.0


def pairs_needed(m: int, alpha: float = ALPHA) -> int:
    """The fewest pairs with which the best of m Holm-corrected Wilcoxon comparisons can reach alpha: the
    smallest n with m * 2 / 2^n <= alpha. m=1: 6, m=5: 8."""
    return math.ceil(1 + math.log2(max(m, 1) / alpha))


def runs_needed_unpaired(m: int, alpha: float = ALPHA) -> int:
    """The fewest runs per group with which the best of m Holm-corrected Mann-Whitney comparisons of equal
    groups can reach alpha: the smallest n with m * 2 / C(2n, n) <= alpha. m=1: 4."""
    n = 1
    while max(m, 1) * mannwhitney_min_p(n, n) > alpha:
        n += 1
    return n


def bootstrap_ci(values: np.ndarray, confidence: float = CONFIDENCE, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of values (scipy.stats.bootstrap, 9999 resamples, fixed seed
    so that reports are reproducible). (nan, nan) for fewer than 2 values. With few values the interval is
    narrow by construction (it cannot reach beyond the observed values): read it with n in mind."""
    from scipy import stats

    if len(values) < 2:
        return math.nan, math.nan
    if np.ptp(values) == 0:
        return float(values[0]), float(values[0])
    res = stats.bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=N_RESAMPLES,
                          method="percentile", rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_difference(group: Mapping[Hashable, float], baseline: Mapping[Hashable, float],
                      confidence: float = CONFIDENCE) -> Difference:
    """group - baseline matched by key: mean paired difference, bootstrap interval, two-sided Wilcoxon
    signed-rank p (scipy.stats.wilcoxon, exact for small n; zero differences dropped as in Wilcoxon's test).

    Without any common key the groups are compared unpaired: difference of means, the interval of a bootstrap
    of each group, and a two-sided Mann-Whitney U p (scipy.stats.mannwhitneyu); `paired` is then False.
    """
    from scipy import stats

    a, b, unmatched = pair(group, baseline)
    if len(a) == 0:
        return unpaired_difference([v for v in group.values() if not math.isnan(v)],
                                   [v for v in baseline.values() if not math.isnan(v)], confidence, unmatched)
    d = a - b
    low, high = bootstrap_ci(d, confidence)
    nonzero = int(np.count_nonzero(d))
    if nonzero == 0:
        p = 1.0  # identical on every pair: no evidence of a difference
    else:
        p = float(stats.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided").pvalue)
    return Difference(float(d.mean()), low, high, p, len(d), "Wilcoxon", True, wilcoxon_min_p(nonzero), unmatched,
                      nonzero=nonzero)


def corrected_kfold_difference(group: Mapping[Hashable, float], baseline: Mapping[Hashable, float],
                               test_train_ratio: float, confidence: float = CONFIDENCE) -> Difference:
    """group - baseline matched by key (seed, fold) over k-fold cross-validation repeated with r seeds, tested by
    the corrected repeated k-fold t-test (Bouckaert & Frank 2004; for one seed the corrected resampled t-test of
    Nadeau & Bengio 2003).

    The k folds of a seed share most of their training rows, so their differences are correlated and the plain
    t-test's variance s^2 / n is too small. The correction: with the n = k * r paired differences d,
        t = mean(d) / sqrt((1 / n + n_test / n_train) * s^2),   s^2 the sample variance of d (ddof 1),
    against Student's t with n - 1 degrees of freedom (scipy.stats.t); two-sided p, and the interval
    mean(d) +- t_{n-1, (1 + confidence) / 2} * sqrt((1 / n + n_test / n_train) * s^2). test_train_ratio is
    n_test / n_train, the size of a test fold over that of the rows a model trains on. Without any common key the
    groups are compared unpaired (Mann-Whitney U), as paired_difference does.
    """
    from scipy import stats

    a, b, unmatched = pair(group, baseline)
    if len(a) == 0:
        return unpaired_difference([v for v in group.values() if not math.isnan(v)],
                                   [v for v in baseline.values() if not math.isnan(v)], confidence, unmatched)
    d = a - b
    n, mean = len(d), float(d.mean())
    nonzero = int(np.count_nonzero(d))
    if n < 2:
        return Difference(mean, math.nan, math.nan, math.nan, n, "corrected t", True, 0.0, unmatched, nonzero=nonzero)
    se = math.sqrt((1 / n + test_train_ratio) * float(d.var(ddof=1)))
    if se == 0:  # every pair differs by the same amount: no spread to test against
        p = 1.0 if mean == 0 else 0.0
        return Difference(mean, mean, mean, p, n, "corrected t", True, 0.0, unmatched, nonzero=nonzero)
    t = mean / se
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(t), n - 1))
    return Difference(mean, mean - half, mean + half, p, n, "corrected t", True, 0.0, unmatched, nonzero=nonzero,
                      statistic=t)


def unpaired_difference(group: Sequence[float], baseline: Sequence[float], confidence: float = CONFIDENCE,
                        unmatched: list[Hashable] | None = None) -> Difference:
    """Difference of means of two independent samples, with a bootstrap interval (scipy.stats.bootstrap
    resampling each sample) and a two-sided Mann-Whitney U p-value; nan where a side is empty."""
    from scipy import stats

    x, y = np.asarray(group, float), np.asarray(baseline, float)
    if not len(x) or not len(y):
        return Difference(math.nan, math.nan, math.nan, math.nan, 0, "–", False, 1.0, unmatched or [])
    mean = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2 or (np.ptp(x) == 0 and np.ptp(y) == 0):
        low = high = mean if len(x) >= 2 and len(y) >= 2 else math.nan
    else:
        res = stats.bootstrap((x, y), lambda u, v, axis=-1: u.mean(axis) - v.mean(axis), confidence_level=confidence,
                              n_resamples=N_RESAMPLES, method="percentile", rng=np.random.default_rng(0))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    p = float(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)
    return Difference(mean, low, high, p, min(len(x), len(y)), "Mann-Whitney", False,
                      mannwhitney_min_p(len(x), len(y)), unmatched or [])


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm, Scand. J. Statist. 6, 1979): sort the m p-values ascending,
    multiply the i-th (from 0) by m - i, carry the running maximum, cap at 1. Reject where adjusted <= alpha;
    this controls the family-wise error rate. NaN entries are left out of m and stay NaN."""
    p = np.asarray(pvalues, float)
    out = np.full(len(p), math.nan)
    idx = [i for i in np.argsort(p, kind="stable") if not math.isnan(p[i])]
    m, running = len(idx), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def correct(diffs: Sequence[Difference]) -> None:
    """Fill p_holm of each difference, over the family of comparisons against one baseline."""
    for d, q in zip(diffs, holm([d.p for d in diffs])):
        d.p_holm = q


@dataclass
class Friedman:
    """Ranks over blocks (datasets): rank 1 is the best; ties share the average rank."""

    ranks: np.ndarray           # [blocks, groups]
    average_ranks: np.ndarray   # [groups]
    statistic: float            # Friedman's chi-square (nan with fewer than 3 groups)
    p: float
    cd: float                   # Nemenyi's critical difference of average ranks at alpha
    alpha: float


def ranks(table: np.ndarray, lower_is_better: bool) -> np.ndarray:
    """Per-row ranks of table [blocks, groups], 1 = best, ties averaged (scipy.stats.rankdata)."""
    from scipy import stats

    return stats.rankdata(table if lower_is_better else -np.asarray(table, float), axis=1)


def nemenyi_cd(k: int, n: int, alpha: float = ALPHA) -> float:
    """Nemenyi's critical difference of average ranks for k groups over n blocks (Demšar 2006, eq. in 3.2.2):
    CD = q_alpha sqrt(k (k+1) / (6 n)), q_alpha the studentized range quantile (scipy.stats.studentized_range,
    infinite degrees of freedom) divided by sqrt(2). k=4, alpha=0.05: q_alpha = 2.569 as in Demšar's table 5."""
    from scipy import stats

    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6 * n)))


def friedman(table: np.ndarray, lower_is_better: bool, alpha: float = ALPHA) -> Friedman:
    """The Friedman test over blocks (rows, e.g. datasets) of k groups (columns), with average ranks and
    Nemenyi's critical difference. table [blocks, groups] must be complete (no NaN): ValueError otherwise."""
    from scipy import stats

    table = np.asarray(table, float)
    if np.isnan(table).any():
        raise ValueError("friedman needs a value for every group on every block")
    n, k = table.shape
    r = ranks(table, lower_is_better)
    if k >= 3 and n >= 2:
        res = stats.friedmanchisquare(*table.T)
        statistic, p = float(res.statistic), float(res.pvalue)
    else:
        statistic = p = math.nan
    return Friedman(r, r.mean(axis=0), statistic, p, nemenyi_cd(k, n, alpha) if k >= 2 else math.nan, alpha)
