"""lessons.stats against the textbook definitions, on small inputs worked out by hand or by
brute force."""

import itertools

import numpy as np
import pytest

from lessons import stats

# A float64 L-BFGS fit vs the optimality condition (gradient of the penalised loss = 0): the
# optimiser stops at tolerance_grad 1e-7 on the max-abs gradient; 1e-5 leaves room for the line
# search's last step while a wrong gradient or penalty is off by O(1).
GRADIENT_ATOL = 1e-5
# Bootstrap interval widths against a second estimate of the same width (normal theory, or the
# generic group bootstrap with other draws): with 1000 draws they agreed within 6% here; a
# width off by a factor (a half-width, or rows resampled twice) misses by 30% or more.
WIDTH_RTOL = 0.2


def test_average_ranks_share_ties():
    np.testing.assert_array_equal(stats.average_ranks(np.array([10.0, 20.0, 20.0, 5.0])), [2.0, 3.5, 3.5, 1.0])


def test_roc_auc_is_the_pair_count():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 40).astype(float)  # many ties on purpose
    positive = rng.random(40) < 0.4
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0)
             for p, n in itertools.product(scores[positive], scores[~positive])]
    assert stats.roc_auc(scores, positive) == pytest.approx(np.mean(pairs))
    assert stats.roc_auc(np.ones(6), np.array([1, 0, 1, 0, 1, 0], bool)) == 0.5  # all tied: chance


def test_bootstrap_resamples_whole_groups():
    groups = np.array(["a", "a", "b", "b", "c"])
    seen = []
    stats.bootstrap_ci(groups, lambda rows: seen.append(sorted(rows.tolist())) or 0.0, draws=50)
    for rows in seen:
        # rows 0 and 1 (group a) come together or not at all, and so do 2 and 3
        assert rows.count(0) == rows.count(1) and rows.count(2) == rows.count(3)
        assert len(rows) in (3, 4, 5, 6)


def test_bootstrap_interval_brackets_a_mean():
    values = np.random.default_rng(1).normal(size=200)
    low, high = stats.bootstrap_ci(np.arange(200), lambda rows: values[rows].mean())
    assert low < values.mean() < high
    # the normal-theory interval: mean +- 1.96 sd / sqrt(n); the bootstrap lands near it
    half = 1.96 * values.std() / np.sqrt(200)
    assert high - low == pytest.approx(2 * half, rel=WIDTH_RTOL)


def test_bootstrap_mean_ci_matches_the_generic_one_in_width():
    values = np.random.default_rng(2).random((300, 2))
    low, high = stats.bootstrap_mean_ci(values)
    for k in range(2):
        g_low, g_high = stats.bootstrap_ci(np.arange(300), lambda rows: values[rows, k].mean())
        assert high[k] - low[k] == pytest.approx(g_high - g_low, rel=WIDTH_RTOL)


def test_macro_f1_by_hand():
    gold = np.array([0, 0, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0])
    # class 0: tp 1 fp 1 fn 1 -> 0.5; class 1: tp 2 fp 1 fn 0 -> 0.8; class 2: tp 0 fn 1 -> 0
    assert stats.macro_f1(predicted, gold) == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_logistic_fit_reaches_the_optimum():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 4))
    y = (x @ np.array([1.0, -2.0, 0.0, 0.5]) + rng.normal(size=120) > 0).astype(int)
    w = stats.fit_logistic(x, y, c=0.5)
    p = 1 / (1 + np.exp(-(x @ w[:-1] + w[-1])))
    gradient = np.r_[x.T @ (p - y) + w[:-1] / 0.5, np.sum(p - y)]
    np.testing.assert_allclose(gradient, 0.0, atol=GRADIENT_ATOL)


def test_folds_never_split_a_group():
    groups = np.repeat(np.arange(23), 3)
    folds = stats.fold_of(groups, folds=5)
    for g in range(23):
        assert len(set(folds[groups == g])) == 1
    assert set(folds) == set(range(5))


def test_probe_learns_a_linear_rule_and_majority_does_not():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] > 0).astype(int)
    folds = stats.fold_of(np.arange(200) // 4)
    assert stats.probe_correct(x, y, folds).mean() > 0.9
    assert stats.majority_correct(y, folds).mean() < 0.6
