"""Evaluation metrics shared by training, registration and reports."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# The not-recommended class is the rare one (about 18%), and the one the business acts on.
MINORITY_LABEL = 0
CALIBRATION_BINS = 10


def expected_calibration_error(
    y_true: Sequence[int] | np.ndarray,
    probability: Sequence[float] | np.ndarray,
    bins: int = CALIBRATION_BINS,
) -> float:
    """How far P(recommended) is from the observed share of recommendations (0 = calibrated).

    The usual binned estimate: ten equal-width bins of the probability, and the mean over
    reviews of |share of label 1 - mean probability| in each review's bin. NaN for no reviews
    or a non-finite probability.
    """
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(probability, dtype=float).reshape(-1)
    if len(p) != len(y):
        raise ValueError(f"{len(p)} probabilities for {len(y)} labels")
    if len(y) == 0 or not np.all(np.isfinite(p)):
        return math.nan
    which = np.minimum((np.clip(p, 0.0, 1.0) * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    observed = np.bincount(which, weights=y, minlength=bins)
    gap = np.abs(observed - np.bincount(which, weights=p, minlength=bins))
    return float(gap.sum() / count.sum())


def binary_metrics(
    y_true: Sequence[int] | np.ndarray, probability: Sequence[float] | np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """ROC AUC, accuracy, F1 of the not-recommended class and the expected calibration error.

    A non-finite probability (a diverged model) gives NaN for every metric, which the
    promotion gate treats as a failure.
    """
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    y = np.asarray(y_true, dtype=int)
    p = np.asarray(probability, dtype=float).reshape(-1)
    if len(p) != len(y):
        raise ValueError(f"{len(p)} probabilities for {len(y)} labels")
    if len(y) == 0 or not np.all(np.isfinite(p)) or len(np.unique(y)) < 2:
        return {"roc_auc": math.nan, "accuracy": math.nan, "f1_not_recommended": math.nan, "ece": math.nan}
    predicted = (p >= threshold).astype(int)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "accuracy": float(accuracy_score(y, predicted)),
        "f1_not_recommended": float(f1_score(y, predicted, pos_label=MINORITY_LABEL, zero_division=0)),
        "ece": expected_calibration_error(y, p),
    }


def f1_optimal_threshold(
    y_true: Sequence[int] | np.ndarray, probability: Sequence[float] | np.ndarray
) -> float:
    """The cut on P(recommended) that maximises F1 of the not-recommended class.

    A review is labelled not recommended when its probability is below the returned value
    (``binary_metrics`` uses ``p >= threshold`` for recommended). Chosen on validation, never test.

    Raises:
        ValueError: fewer than two classes or non-finite probabilities.
    """
    from sklearn.metrics import precision_recall_curve

    y = np.asarray(y_true, dtype=int)
    p = np.asarray(probability, dtype=float).reshape(-1)
    if len(np.unique(y)) < 2 or not np.all(np.isfinite(p)):
        raise ValueError("a threshold needs both classes and finite probabilities")
    # Score the minority class: its "probability" is 1 - p, and 1 - p >= c means p <= 1 - c.
    precision, recall, cuts = precision_recall_curve(y == MINORITY_LABEL, 1.0 - p)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1]))  # the last point has no threshold
    # p <= 1 - cut is "not recommended"; as a ">= threshold is recommended" cut, step just above it.
    return float(np.nextafter(1.0 - cuts[best], 2.0))


def rounded(scores: dict[str, float], digits: int = 4) -> str:
    """``roc_auc=0.9561 accuracy=0.9051 ...``: a metric dict as a log line."""
    return " ".join(f"{k}={v:.{digits}f}" for k, v in scores.items())
