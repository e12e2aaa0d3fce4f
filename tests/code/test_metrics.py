"""Unit tests of the shared evaluation metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from review_sentiment.metrics import binary_metrics

KEYS = {"roc_auc", "accuracy", "f1_not_recommended"}


def test_perfect_scores() -> None:
    assert binary_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == {
        "roc_auc": 1.0,
        "accuracy": 1.0,
        "f1_not_recommended": 1.0,
    }


def test_f1_is_of_the_not_recommended_class() -> None:
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    p = [0.1, 0.2, 0.7, 0.8, 0.9, 0.9, 0.9, 0.9]
    scores = binary_metrics(y, p)
    # Class 0: 2 found of 4, no false alarms -> F1 2/3. (Class 1's F1 would be 0.8.)
    assert scores["f1_not_recommended"] == pytest.approx(2 / 3)
    assert scores["accuracy"] == pytest.approx(0.75)
    assert scores["roc_auc"] == pytest.approx(1.0)


def test_threshold_is_inclusive_and_configurable() -> None:
    y = [0, 1]
    assert binary_metrics(y, [0.4, 0.5])["accuracy"] == 1.0
    assert binary_metrics(y, [0.4, 0.5], threshold=0.6)["accuracy"] == 0.5


def test_always_recommended_has_zero_minority_f1() -> None:
    scores = binary_metrics([0, 1, 1, 1, 1], [0.9] * 5)
    assert scores["f1_not_recommended"] == 0.0
    assert scores["accuracy"] == pytest.approx(0.8)
    assert scores["roc_auc"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("y", "p"),
    [
        ([0, 1, 1], [0.2, math.nan, 0.9]),
        ([0, 1, 1], [0.2, math.inf, 0.9]),
        ([0, 1], np.array([[np.nan], [np.nan]])),
        ([1, 1, 1], [0.2, 0.5, 0.9]),  # one class: AUC is undefined
        ([], []),
    ],
    ids=["nan", "inf", "all-nan-column", "single-class", "empty"],
)
def test_undefined_inputs_give_nan_for_every_metric(y, p) -> None:
    scores = binary_metrics(y, p)
    assert set(scores) == KEYS
    assert all(math.isnan(v) for v in scores.values())


def test_length_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="2 probabilities for 3 labels"):
        binary_metrics([0, 1, 1], [0.1, 0.9])
