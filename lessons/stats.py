"""The few statistics the lessons need, written out in numpy so a learner can read them:
ROC AUC from ranks, a bootstrap confidence interval over groups, macro-F1, and a logistic-
regression probe cross-validated by group.

No scikit-learn: each function is short enough to check against its textbook definition, and
tests/lessons/test_lessons_stats.py does that on small hand-made inputs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

BOOTSTRAP_DRAWS = 1000  # resamples per interval: the 2.5% / 97.5% quantiles then move by < 0.005
CONFIDENCE = 0.95


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values`, ties sharing the mean of their ranks (as Mann-Whitney needs).

    A value that k smaller values precede and that occurs c times holds ranks k+1 .. k+c, whose
    mean is k + (c + 1) / 2."""
    distinct, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    smaller = np.cumsum(counts) - counts  # how many values are below each distinct value
    return (smaller + (counts + 1) / 2)[inverse]


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half):
    the Mann-Whitney U statistic divided by n_pos * n_neg. 0.5 = no better than chance."""
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = average_ranks(np.asarray(scores, dtype=float))
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def bootstrap_ci(groups: np.ndarray, statistic: Callable[[np.ndarray], float], seed: int = 0,
                 draws: int = BOOTSTRAP_DRAWS) -> tuple[float, float]:
    """95% percentile interval of `statistic(rows)` when whole groups are resampled.

    `groups[i]` is the group (lemma) of row i; each draw picks as many groups as there are,
    with replacement, and passes the row indices of the picked groups (repeats included) to
    `statistic`. Resampling groups, not rows, keeps the rows of one lemma together: they are
    not independent of each other."""
    groups = np.asarray(groups)
    names, inverse = np.unique(groups, return_inverse=True)
    rows_of = [np.flatnonzero(inverse == g) for g in range(len(names))]
    singletons = all(len(rows) == 1 for rows in rows_of)
    row_of_group = np.argsort(inverse)  # used when every group is one row
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        picked = rng.integers(0, len(names), len(names))
        # one row per group (resampling examples): the rows are the picked groups' own rows
        rows = np.concatenate([rows_of[g] for g in picked]) if not singletons else row_of_group[picked]
        values.append(statistic(rows))
    low, high = np.nanquantile(values, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return float(low), float(high)


def macro_f1(predicted: np.ndarray, gold: np.ndarray, classes: np.ndarray | None = None) -> float:
    """Mean over classes of F1 = 2 TP / (2 TP + FP + FN); a class never predicted nor present
    is left out, one present but never predicted scores 0."""
    classes = np.unique(gold) if classes is None else classes
    scores = []
    for c in classes:
        tp = np.sum((predicted == c) & (gold == c))
        fp = np.sum((predicted == c) & (gold != c))
        fn = np.sum((predicted != c) & (gold == c))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


# ----------------------------------------------------------------------------- probe

# Inverse L2 strength on standardised features, ten times stronger than scikit-learn's default
# C = 1: Hewitt & Liang (2019) found regularised probes memorise less (more selective), and the
# loss is better conditioned (a 384-dim fit here took 0.2 s instead of 5 s at C = 1).
PROBE_C = 0.1
PROBE_MAX_STEPS = 200  # L-BFGS iterations, an upper bound the fits stay below
FOLDS = 5


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float = PROBE_C) -> np.ndarray:
    """Binary logistic regression: minimise
    sum_i log(1 + exp(-s_i (w.x_i + b))) + |w|^2 / (2c)   (s_i = +1 for y_i = 1, else -1)
    with L-BFGS in float64 (the loss is convex, so the start and the optimiser only change how
    fast it gets to the one minimum).

    x (N, D), y (N,) in {0, 1} -> (D + 1,): w, then the bias b."""
    import torch

    features = torch.from_numpy(np.asarray(x, dtype=np.float64))
    signs = torch.from_numpy(2.0 * np.asarray(y, dtype=np.float64) - 1.0)
    params = torch.zeros(features.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([params], max_iter=PROBE_MAX_STEPS, tolerance_grad=1e-7,
                                  tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def loss():
        optimiser.zero_grad()
        margins = signs * (features @ params[:-1] + params[-1])  # (N, D) @ (D,) -> (N,)
        value = torch.nn.functional.softplus(-margins).sum() + params[:-1].square().sum() / (2 * c)
        value.backward()
        return value

    optimiser.step(loss)
    return params.detach().numpy()


def predict_logistic(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return (x @ w[:-1] + w[-1] > 0).astype(int)


def fold_of(groups: np.ndarray, folds: int = FOLDS, seed: int = 0) -> np.ndarray:
    """Fold number of every row such that all rows of a group share a fold (groups shuffled
    with `seed`, then dealt out in turn)."""
    names, inverse = np.unique(np.asarray(groups), return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of_group = np.empty(len(names), dtype=int)
    fold_of_group[order] = np.arange(len(names)) % folds
    return fold_of_group[inverse]


def probe_correct(x: np.ndarray, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Cross-validated probe: for each fold, standardise on the other folds, fit, predict this
    one. Returns (N,) booleans, prediction == label, so any mean or bootstrap can follow."""
    correct = np.zeros(len(y), dtype=bool)
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        mean, std = x[train].mean(0), x[train].std(0) + 1e-8
        w = fit_logistic((x[train] - mean) / std, y[train])
        correct[test] = predict_logistic(w, (x[test] - mean) / std) == y[test]
    return correct


def majority_correct(y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """The baseline under the same folds: predict the training folds' most common label."""
    correct = np.zeros(len(y), dtype=bool)
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        label = int(np.mean(y[train]) > 0.5)
        correct[test] = y[test] == label
    return correct


def bootstrap_mean_ci(values: np.ndarray, seed: int = 0, draws: int = BOOTSTRAP_DRAWS) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile intervals of the mean over rows of `values` (N, ...), rows resampled with
    replacement, for every column at once: each draw is a row count vector c, and its mean is
    c @ values / N."""
    n = values.shape[0]
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(draws)])  # (draws, N)
    means = counts @ values.reshape(n, -1) / n  # (draws, N) @ (N, K) -> (draws, K)
    low, high = np.quantile(means, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2], axis=0)
    return low.reshape(values.shape[1:]), high.reshape(values.shape[1:])
