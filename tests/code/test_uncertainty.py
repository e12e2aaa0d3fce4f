"""The paired bootstrap interval of candidate - champion (ROC AUC, F1 of the not-recommended
class): its point estimates, its behaviour on equal and unequal models, reproducibility, width
and bad input."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from review_sentiment.uncertainty import (
    Difference,
    Interval,
    describe,
    interval_of,
    paired_bootstrap,
)


def _reviews(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (about 18% not recommended, as in the data) and two correlated models' scores: the
    champion is the candidate plus noise, so the candidate is clearly better."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) > 0.18).astype(int)
    signal = labels * 1.5 + rng.normal(0, 1, n)
    candidate = 1 / (1 + np.exp(-signal))
    champion = 1 / (1 + np.exp(-(signal + rng.normal(0, 1.5, n))))
    return labels, candidate, champion


def test_the_estimates_are_the_differences_on_the_whole_set() -> None:
    labels, candidate, champion = _reviews(1500)
    rounded = np.round(champion, 2)  # ties count half, as scikit-learn counts them
    found = paired_bootstrap(labels, candidate, rounded, (0.6, 0.55), resamples=200)
    auc = roc_auc_score(labels, candidate) - roc_auc_score(labels, rounded)
    f1 = f1_score(labels, candidate >= 0.6, pos_label=0) - f1_score(labels, rounded >= 0.55, pos_label=0)
    assert found.roc_auc.estimate == pytest.approx(auc, abs=1e-12)
    assert found.f1_not_recommended.estimate == pytest.approx(f1, abs=1e-12)
    assert (found.size, found.resamples) == (1500, 200)


def test_identical_models_give_an_interval_around_zero() -> None:
    labels, candidate, _ = _reviews(2000)
    found = paired_bootstrap(labels, candidate, candidate.copy(), (0.6, 0.6))
    for interval in (found.roc_auc, found.f1_not_recommended):
        assert interval.low <= 0 <= interval.high
        assert interval.estimate == 0
        assert interval.high - interval.low < 1e-9  # paired: every resample sees the same scores


def test_a_clearly_better_candidate_has_a_lower_bound_above_zero() -> None:
    labels, candidate, champion = _reviews(2000)
    found = paired_bootstrap(labels, candidate, champion, (0.7, 0.7))
    assert 0 < found.roc_auc.low < found.roc_auc.estimate < found.roc_auc.high
    assert found.f1_not_recommended.low > 0
    swapped = paired_bootstrap(labels, champion, candidate, (0.7, 0.7))
    assert swapped.roc_auc.high < 0


def test_the_interval_is_reproducible_for_a_seed() -> None:
    labels, candidate, champion = _reviews(800)
    first = paired_bootstrap(labels, candidate, champion, seed=7, resamples=300)
    assert paired_bootstrap(labels, candidate, champion, seed=7, resamples=300) == first
    assert paired_bootstrap(labels, candidate, champion, seed=8, resamples=300) != first


def test_the_interval_narrows_with_more_reviews() -> None:
    def width(n: int) -> float:
        labels, candidate, champion = _reviews(n, seed=3)
        found = paired_bootstrap(labels, candidate, champion, resamples=1000)
        return found.roc_auc.high - found.roc_auc.low

    small, large = width(500), width(8000)
    assert large < small / 2  # four times (sqrt 16) narrower in theory


def test_two_thousand_resamples_of_two_thousand_reviews_take_well_under_a_few_seconds() -> None:
    labels, candidate, champion = _reviews(2085)
    # CPU time, not wall time: the CI machine's two cores are shared with servers under test.
    start = time.process_time()
    paired_bootstrap(labels, candidate, champion, resamples=2000)
    assert time.process_time() - start < 3.0  # about 0.3 s here


@pytest.mark.parametrize(
    ("labels", "candidate", "champion", "kwargs", "message"),
    [
        ([0, 1, 1], [0.1, 0.9, 0.8], [0.2, 0.7], {}, "lengths differ"),
        ([1, 1, 1], [0.1, 0.9, 0.8], [0.2, 0.7, 0.6], {}, "both classes"),
        ([0, 1, 2], [0.1, 0.9, 0.8], [0.2, 0.7, 0.6], {}, "both classes"),
        ([0, 1, 1], [0.1, math.nan, 0.8], [0.2, 0.7, 0.6], {}, "not finite"),
        ([0, 1, 1], [0.1, 0.9, 0.8], [0.2, 0.7, 0.6], {"resamples": 1}, "resamples >= 2"),
        ([0, 1, 1], [0.1, 0.9, 0.8], [0.2, 0.7, 0.6], {"confidence": 1.0}, "confidence"),
    ],
)
def test_bad_input_is_a_clear_error(labels, candidate, champion, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(labels, candidate, champion, **kwargs)


def test_the_figures_read_back_and_read_as_words() -> None:
    found = Difference(
        roc_auc=Interval(0.0031, -0.0012, 0.0075), f1_not_recommended=Interval(0.01, -0.02, 0.04),
        size=2085, resamples=2000,
    )  # fmt: skip
    scores = found.to_scores()
    assert scores == {
        "roc_auc": 0.0031, "roc_auc_low": -0.0012, "roc_auc_high": 0.0075, "f1_not_recommended": 0.01,
        "f1_not_recommended_low": -0.02, "f1_not_recommended_high": 0.04, "confidence": 0.95,
        "resamples": 2000.0,
    }  # fmt: skip
    assert interval_of(scores) == found.roc_auc
    assert interval_of(scores, "f1_not_recommended") == found.f1_not_recommended
    assert interval_of(None) is None
    assert interval_of({"roc_auc": 0.1}) is None  # half a record is no interval
    assert describe(scores, 2085) == (
        "candidate - champion ROC AUC +0.0031 [95% CI -0.0012, +0.0075]; candidate - champion F1 (not "
        "recommended) +0.0100 [95% CI -0.0200, +0.0400] on 2,085 unseen test reviews"
    )
    assert describe(None, 2085) == ""
