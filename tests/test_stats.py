"""trainer.analysis.stats against published values: scipy's Wilcoxon example, Demšar's (2006) Friedman example and
Nemenyi table, scikit-learn's worked example of the corrected k-fold t-test, Holm's procedure worked by hand, the
exact tests' smallest p-values, pairing by key."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from trainer.analysis import stats

# Darwin's Zea mays data, height differences cross- minus self-fertilised (Fisher 1935), scipy.stats.wilcoxon's
# docstring example: statistic 24, exact two-sided p = 0.041259765625.
DARWIN = [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75]

# Demšar (2006) table 6: AUC of C4.5 variants on 14 UCI datasets (columns C4.5, C4.5+m, C4.5+cf, C4.5+m+cf).
# Ranked from the printed AUCs: 3.143, 2.000, 2.929, 1.929 (the paper prints 2.893 and 1.964 for the last two, a
# half-rank difference in one row that other re-analyses of the table also find); CD (alpha 0.05, k=4, N=14) = 1.25,
# CD (alpha 0.10) = 1.12: at 0.05 no pair differs by CD, at 0.10 C4.5 is worse than C4.5+m and C4.5+m+cf (figure 1).
DEMSAR = np.array([
    [.763, .768, .771, .798], [.599, .591, .590, .569], [.954, .971, .968, .967], [.628, .661, .654, .657],
    [.882, .888, .886, .898], [.936, .931, .916, .931], [.661, .668, .609, .685], [.583, .583, .563, .625],
    [.775, .838, .866, .875], [1.00, 1.00, 1.00, 1.00], [.940, .962, .965, .962], [.619, .666, .614, .669],
    [.972, .981, .975, .975], [.957, .978, .946, .970]])


def test_paired_difference_reproduces_scipys_wilcoxon_example_whatever_the_seed_order():
    baseline = {seed: 100.0 for seed in range(len(DARWIN))}
    group = {seed: 100.0 + d for seed, d in enumerate(DARWIN)}
    shuffled = dict(reversed(list(group.items())))  # a different order of the same seeds: the same pairs
    for g in (group, shuffled):
        d = stats.paired_difference(g, baseline)
        assert d.paired and d.test == "Wilcoxon" and d.n == 15
        assert d.p == pytest.approx(0.041259765625)
        assert d.mean == pytest.approx(np.mean(DARWIN))
        assert d.low < d.mean < d.high


def test_pairs_are_matched_by_seed_and_missing_seeds_are_named():
    a = {2: 0.9, 0: 0.5, 1: 0.7, 5: 0.1}
    b = {0: 0.4, 1: 0.6, 2: 0.7, 3: 0.3}
    x, y, unmatched = stats.pair(a, b)
    assert x.tolist() == [0.5, 0.7, 0.9] and y.tolist() == [0.4, 0.6, 0.7]
    assert unmatched == [3, 5]
    d = stats.paired_difference(a, b)
    assert d.mean == pytest.approx(np.mean([0.1, 0.1, 0.2])) and d.n == 3 and d.unmatched == [3, 5]
    assert d.p == pytest.approx(0.25) and d.min_p == 0.25  # three pairs of one sign: the exact test's floor


def test_the_smallest_reachable_p_values_of_the_exact_tests():
    assert [stats.wilcoxon_min_p(n) for n in (1, 3, 5, 6)] == [1.0, 0.25, 0.0625, 0.03125]
    assert stats.mannwhitney_min_p(3, 3) == pytest.approx(0.1)
    assert stats.mannwhitney_min_p(4, 4) == pytest.approx(2 / 70)
    from scipy.stats import mannwhitneyu, wilcoxon
    assert wilcoxon([1, 2, 3, 4, 5, 6], [0] * 6).pvalue == pytest.approx(stats.wilcoxon_min_p(6))
    assert mannwhitneyu([4, 5, 6], [1, 2, 3]).pvalue == pytest.approx(stats.mannwhitney_min_p(3, 3))


def test_the_runs_needed_for_holm_corrected_significance():
    assert [stats.pairs_needed(m) for m in (1, 2, 5)] == [6, 7, 8]
    for m in (1, 5):  # just enough: m * min_p <= 0.05 with n, not with n - 1
        n = stats.pairs_needed(m)
        assert m * stats.wilcoxon_min_p(n) <= 0.05 < m * stats.wilcoxon_min_p(n - 1)
    assert stats.runs_needed_unpaired(1) == 4 and stats.runs_needed_unpaired(5) == 5


def test_groups_without_a_common_seed_are_compared_unpaired():
    d = stats.paired_difference({0: 0.9, 1: 0.8, 2: 0.85}, {3: 0.5, 4: 0.6, 5: 0.55})
    assert not d.paired and d.test == "Mann-Whitney" and d.n == 3
    assert d.mean == pytest.approx(0.85 - 0.55)
    assert d.p == pytest.approx(0.1)  # complete separation of 3 vs 3
    assert d.low <= d.mean <= d.high and d.unmatched == [0, 1, 2, 3, 4, 5]


def test_identical_pairs_give_p_one_and_a_zero_width_interval():
    d = stats.paired_difference({0: 0.5, 1: 0.6}, {0: 0.5, 1: 0.6})
    assert (d.mean, d.low, d.high, d.p) == (0.0, 0.0, 0.0, 1.0)


def test_holm_adjusts_step_down_and_keeps_the_order():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = stats.holm([0.5, math.nan, 0.4])
    assert out[0] == pytest.approx(0.8) and math.isnan(out[1]) and out[2] == pytest.approx(0.8)
    assert stats.holm([0.9, 0.8]) == [1.0, 1.0]


def test_friedman_reproduces_demsars_example():
    f = stats.friedman(DEMSAR, lower_is_better=False)
    assert f.average_ranks == pytest.approx([3.143, 2.000, 2.929, 1.929], abs=5e-4)
    assert f.p < 0.05
    assert f.cd == pytest.approx(1.25, abs=5e-3)
    assert np.ptp(f.average_ranks) < f.cd  # the paper: at 0.05 even the best and the worst are within CD
    cd10 = stats.friedman(DEMSAR, lower_is_better=False, alpha=0.10).cd
    assert cd10 == pytest.approx(1.12, abs=5e-3)
    worse = {j for j in range(4) if f.average_ranks[0] - f.average_ranks[j] > cd10}
    assert worse == {1, 3}  # C4.5 is worse than C4.5+m and C4.5+m+cf, C4.5+cf undecided
    # a lower-is-better metric ranks the other way round
    assert stats.friedman(-DEMSAR, lower_is_better=True).average_ranks == pytest.approx(f.average_ranks)


def test_friedman_statistic_of_scipys_example():
    # scipy.stats.friedmanchisquare's docstring: pulse before, just after and 30 min after exercise, 7 subjects
    table = np.array([[72, 96, 88, 92, 74, 76, 82], [120, 120, 132, 120, 101, 96, 112],
                      [76, 95, 104, 96, 84, 72, 76]]).T
    f = stats.friedman(table, lower_is_better=True)
    assert f.statistic == pytest.approx(10.57142857142857)
    assert f.p == pytest.approx(0.005063414171757498)


def test_nemenyi_q_alpha_matches_demsars_table_5():
    # q_0.05 for k = 2..6: 1.960, 2.343, 2.569, 2.728, 2.850
    for k, q in zip(range(2, 7), (1.960, 2.343, 2.569, 2.728, 2.850)):
        assert stats.nemenyi_cd(k, 1) / math.sqrt(k * (k + 1) / 6) == pytest.approx(q, abs=1e-3)


def test_friedman_refuses_a_missing_cell():
    with pytest.raises(ValueError, match="every group on every block"):
        stats.friedman(np.array([[1.0, math.nan, 2.0], [1.0, 2.0, 3.0]]), lower_is_better=True)


def test_the_corrected_kfold_t_test_gives_the_published_values_of_scikit_learns_worked_example():
    """scikit-learn's example "Statistical comparison of models using grid search" (as published in its 1.2
    documentation, Debian's python-sklearn-doc) compares four SVC kernels over 10 x 10-fold repeated stratified
    cross-validation with Nadeau and Bengio's corrected t-test and prints t = 0.750 (p = 0.227 one-sided) for rbf
    against linear, and 1.657, 4.565, 1.111, 4.276, 3.851 for the other pairs; the plain t-test gave 2.611."""
    from sklearn.datasets import make_moons
    from sklearn.model_selection import GridSearchCV, RepeatedStratifiedKFold
    from sklearn.svm import SVC

    x, y = make_moons(noise=0.352, random_state=1, n_samples=100)
    grid = [{"kernel": ["linear"]}, {"kernel": ["poly"], "degree": [2, 3]}, {"kernel": ["rbf"]}]
    cv = RepeatedStratifiedKFold(n_splits=10, n_repeats=10, random_state=0)
    found = GridSearchCV(SVC(random_state=0), grid, scoring="roc_auc", cv=cv).fit(x, y).cv_results_
    scores = {"_".join(str(v) for v in p.values()): {(i // 10, i % 10): found[f"split{i}_test_score"][j]
                                                     for i in range(100)} for j, p in enumerate(found["params"])}
    published = {("rbf", "linear"): 0.750, ("rbf", "3_poly"): 1.657, ("rbf", "2_poly"): 4.565,
                 ("linear", "3_poly"): 1.111, ("linear", "2_poly"): 4.276, ("3_poly", "2_poly"): 3.851}
    ratio = 10 / 90  # a test fold of 10 rows, a training set of 90
    for (a, b), t in published.items():
        d = stats.corrected_kfold_difference(scores[a], scores[b], ratio)
        assert round(d.statistic, 3) == t and d.n == 100 and d.test == "corrected t"
    rbf_linear = stats.corrected_kfold_difference(scores["rbf"], scores["linear"], ratio)
    assert round(rbf_linear.p / 2, 3) == 0.227  # the example's p is right-tailed; ours two-sided
    assert rbf_linear.low < 0 < rbf_linear.high  # the interval says the same: no evidence of a difference
    rbf, linear = (np.array([scores[k][key] for key in sorted(scores[k])]) for k in ("rbf", "linear"))
    plain_t = scipy_stats.ttest_rel(rbf, linear)  # the 100 pairs taken as independent: the published 2.611
    assert round(float(plain_t.statistic), 3) == 2.611 and plain_t.pvalue < 0.05 < rbf_linear.p
    naive = stats.paired_difference(scores["rbf"], scores["linear"])
    assert naive.low > 0  # a bootstrap over the 100 pairs as if independent: an interval that excludes 0


def test_the_corrected_kfold_t_test_on_one_seed_is_nadeau_and_bengios_and_handles_constant_differences():
    d = {(0, f): v for f, v in enumerate([0.02, 0.05, -0.01, 0.04, 0.03])}
    zero = {k: 0.0 for k in d}
    out = stats.corrected_kfold_difference(d, zero, test_train_ratio=0.25)
    diffs = np.array(list(d.values()))
    t = diffs.mean() / math.sqrt((1 / 5 + 0.25) * diffs.var(ddof=1))
    assert out.statistic == pytest.approx(t) and out.p == pytest.approx(2 * scipy_stats.t.sf(abs(t), 4))
    same = stats.corrected_kfold_difference({k: 0.5 for k in d}, {k: 0.5 for k in d}, 0.25)
    assert same.p == 1.0 and same.mean == 0.0
