"""Unit tests of the shared evaluation metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from review_sentiment.metrics import binary_metrics, expected_calibration_error

KEYS = {"roc_auc", "accuracy", "f1_not_recommended", "ece"}


def test_perfect_scores() -> None:
    assert binary_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == {
        "roc_auc": 1.0,
        "accuracy": 1.0,
        "f1_not_recommended": 1.0,
        # Perfectly ranked but not calibrated: bins 1, 2, 8, 9 miss by 0.1, 0.2, 0.2, 0.1.
        "ece": pytest.approx(0.15),
    }


def test_ece_is_the_review_weighted_gap_per_bin() -> None:
    # Bin 7 (0.7-0.8): four reviews at 0.75, three recommended -> gap 0; bin 2: two reviews at
    # 0.2, both recommended -> gap 0.8, weighted 2 of 6.
    y = [1, 1, 1, 0, 1, 1]
    p = [0.75, 0.75, 0.75, 0.75, 0.2, 0.2]
    assert expected_calibration_error(y, p) == pytest.approx(0.8 * 2 / 6)
    assert expected_calibration_error([1, 0], [1.0, 0.0]) == 0.0  # 1.0 falls in the last bin
    assert math.isnan(expected_calibration_error([], []))
    assert math.isnan(expected_calibration_error([1], [math.nan]))
    with pytest.raises(ValueError, match="2 probabilities for 1 labels"):
        expected_calibration_error([1], [0.5, 0.5])


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


def _best_f1_by_brute_force(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return max(f1_score(y, (p >= c).astype(int), pos_label=0) for c in np.append(np.unique(p), 1.01))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_f1_optimal_threshold_reaches_the_best_f1_of_the_not_recommended_class(seed: int) -> None:
    from review_sentiment.metrics import f1_optimal_threshold

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.35 * y + 0.65 * rng.random(500), 0, 1)
    threshold = f1_optimal_threshold(y, p)
    assert binary_metrics(y, p, threshold)["f1_not_recommended"] == pytest.approx(
        _best_f1_by_brute_force(y, p)
    )


def test_f1_optimal_threshold_separates_a_separable_set() -> None:
    from review_sentiment.metrics import f1_optimal_threshold

    threshold = f1_optimal_threshold([0, 0, 1, 1], [0.2, 0.3, 0.7, 0.9])
    assert 0.3 < threshold <= 0.7


@pytest.mark.parametrize(("y", "p"), [([1, 1, 1], [0.2, 0.5, 0.9]), ([0, 1], [0.5, math.nan])])
def test_f1_optimal_threshold_refuses_what_cannot_be_cut(y: list[int], p: list[float]) -> None:
    from review_sentiment.metrics import f1_optimal_threshold

    with pytest.raises(ValueError, match="both classes and finite probabilities"):
        f1_optimal_threshold(y, p)
