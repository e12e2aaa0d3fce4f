"""The registered model's decision rule, chosen on the validation split by ``train``.

Two choices, in this order: whether to recalibrate P(recommended) (Platt scaling when the
expected calibration error exceeds :data:`~review_sentiment.calibration.ECE_LIMIT`), then the
threshold (the F1-optimal cut for the not-recommended class) on the probabilities the model
returns, calibrated or not. ``decision.json`` records both; the pyfunc applies them in ``predict``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from review_sentiment import names
from review_sentiment.calibration import ECE_LIMIT, PlattScaling
from review_sentiment.metrics import binary_metrics, expected_calibration_error, f1_optimal_threshold

log = logging.getLogger(__name__)

FALLBACK_THRESHOLD = 0.5  # for probabilities that are not all finite: the gate refuses the model


@dataclass(frozen=True)
class DecisionRule:
    """How the registered model turns the core's output into a label, and its validation scores.

    Attributes:
        threshold: Label 1 (recommended) when the served probability is at least this.
        calibration: The Platt scaling applied before the threshold, or None.
        uncalibrated_ece: The validation calibration error before any scaling.
        scores: Validation metrics at the threshold, on the served probabilities.
    """

    threshold: float
    calibration: PlattScaling | None
    uncalibrated_ece: float
    scores: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """The ``decision.json`` artifact logged with the model."""
        return {
            names.DECISION_THRESHOLD_KEY: self.threshold,
            "chosen_on": "validation",
            "criterion": "maximum F1 of the not-recommended class",
            "label_when_probability_at_least_threshold": 1,
            names.DECISION_CALIBRATION_KEY: self.calibration.to_json() if self.calibration else None,
        }


def choose_rule(labels: Any, probability: Any) -> DecisionRule:
    """Calibrate if needed, then choose the threshold on the probabilities the registered model
    returns (calibrated or not), and score validation at it.

    Args:
        labels: The validation labels (0/1).
        probability: The core's raw P(recommended) on validation.
    """
    import numpy as np

    calibration, uncalibrated_ece = calibrate(labels, probability)
    if calibration is not None:
        probability = calibration.apply(probability)
    finite = np.all(np.isfinite(probability))
    threshold = f1_optimal_threshold(labels, probability) if finite else FALLBACK_THRESHOLD
    return DecisionRule(
        threshold, calibration, uncalibrated_ece, binary_metrics(labels, probability, threshold)
    )


def calibrate(labels: Any, probability: Any) -> tuple[PlattScaling | None, float]:
    """Platt scaling fitted on validation when its calibration error exceeds ``ECE_LIMIT``
    (None otherwise, or when it cannot be fitted), and the error before it."""
    error = expected_calibration_error(labels, probability)
    if not error > ECE_LIMIT:  # also NaN: a diverged model is refused by the gate, not calibrated
        return None, error
    try:
        scaling = PlattScaling.fit(labels, probability)
    except ValueError as exc:
        log.warning("probabilities left uncalibrated (validation ECE %.4f): %s", error, exc)
        return None, error
    log.info(
        "validation ECE %.4f > %.2f: Platt scaling (slope %.3f, intercept %.3f) -> %.4f",
        error,
        ECE_LIMIT,
        scaling.slope,
        scaling.intercept,
        expected_calibration_error(labels, scaling.apply(probability)),
    )
    return scaling, error
