"""Platt scaling: fitted on validation when the calibration error is too large, applied by the
registered model, and never allowed to change the ranking."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from review_sentiment.calibration import ECE_LIMIT, PlattScaling
from review_sentiment.decision_rule import calibrate
from review_sentiment.metrics import expected_calibration_error


def _skewed(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from a true probability, and a model's report of it pushed toward 0, as a
    model trained with the rare class weighted up reports it."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(1.5, 2.0, rows)
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    reported = 1 / (1 + np.exp(-(0.6 * logit - 0.8)))
    return y, reported


def test_platt_scaling_fixes_a_skewed_model_and_keeps_its_ranking() -> None:
    y_val, p_val = _skewed(4000, 0)
    y_test, p_test = _skewed(4000, 1)
    scaling = PlattScaling.fit(y_val, p_val)
    assert expected_calibration_error(y_test, p_test) > 0.1
    assert expected_calibration_error(y_test, scaling.apply(p_test)) < ECE_LIMIT
    assert roc_auc_score(y_test, scaling.apply(p_test)) == pytest.approx(roc_auc_score(y_test, p_test))
    # The skew was slope 0.6 and shift -0.8: the fit undoes it.
    assert scaling.slope == pytest.approx(1 / 0.6, rel=0.1)
    assert scaling.intercept == pytest.approx(0.8 / 0.6, rel=0.15)


def test_calibration_round_trips_through_json_and_refuses_what_it_cannot_apply() -> None:
    scaling = PlattScaling(1.7, 1.3)
    assert PlattScaling.from_json(scaling.to_json()) == scaling
    assert PlattScaling.from_json(None) is None
    with pytest.raises(ValueError, match="unknown calibration method 'isotonic'"):
        PlattScaling.from_json({"method": "isotonic"})
    with pytest.raises(ValueError, match="must be positive"):
        PlattScaling.from_json({"method": "platt", "slope": -1.0, "intercept": 0.0})
    with pytest.raises(ValueError, match="both classes"):
        PlattScaling.fit([1, 1], [0.2, 0.9])


def test_a_reversed_model_is_not_calibrated_into_a_good_one() -> None:
    y, p = _skewed(2000, 2)
    with pytest.raises(ValueError, match="reverse the ranking"):
        PlattScaling.fit(y, 1 - p)


def test_train_calibrates_only_above_the_limit() -> None:
    y, p = _skewed(4000, 3)
    scaling, before = calibrate(y, p)
    assert before > ECE_LIMIT
    assert scaling is not None
    calibrated = scaling.apply(p)
    kept, after = calibrate(y, calibrated)
    assert kept is None
    assert after <= ECE_LIMIT
    assert calibrate(y, np.full(len(y), np.nan))[0] is None
