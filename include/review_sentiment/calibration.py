"""Platt scaling of P(recommended), fitted on the validation split.

A model trained with the rare class weighted up (``class_weight``) ranks reviews well but
reports probabilities skewed toward "not recommended". When the validation split's expected
calibration error exceeds :data:`ECE_LIMIT`, ``train`` (``decision_rule.calibrate``) fits
``p' = sigmoid(slope * logit(p) + intercept)`` there (scikit-learn's logistic regression on the
logit: two numbers, stored in the model's decision JSON) and the registered model applies it
before the threshold. The map is increasing, so ROC AUC and the ranking do not change; the
threshold is chosen after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ECE_LIMIT = 0.03
METHOD = "platt"
_EPSILON = 1e-7  # keeps the logit finite for probabilities of exactly 0 or 1


def _logit(probability: Sequence[float] | np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probability, dtype=float).reshape(-1), _EPSILON, 1.0 - _EPSILON)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class PlattScaling:
    """``sigmoid(slope * logit(p) + intercept)``; slope > 0, so the order of reviews is kept."""

    slope: float
    intercept: float

    @classmethod
    def fit(
        cls, y_true: Sequence[int] | np.ndarray, probability: Sequence[float] | np.ndarray
    ) -> PlattScaling:
        """Fit on labelled probabilities (the validation split).

        Raises:
            ValueError: one class only, non-finite probabilities, or a fit that would reverse
                the order of reviews (slope <= 0: the model ranks worse than chance there).
        """
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(y_true, dtype=int)
        p = np.asarray(probability, dtype=float).reshape(-1)
        if len(np.unique(y)) < 2 or not np.all(np.isfinite(p)):
            raise ValueError("calibration needs both classes and finite probabilities")
        fitted = LogisticRegression(C=np.inf, max_iter=1000).fit(_logit(p)[:, None], y)
        slope, intercept = float(fitted.coef_[0, 0]), float(fitted.intercept_[0])
        if not slope > 0:
            raise ValueError(f"calibration slope {slope:.4f} would reverse the ranking")
        return cls(slope, intercept)

    def apply(self, probability: Sequence[float] | np.ndarray) -> np.ndarray:
        """Calibrated probabilities (float64)."""
        z = self.slope * _logit(probability) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self) -> dict[str, Any]:
        return {"method": METHOD, "slope": self.slope, "intercept": self.intercept}

    @classmethod
    def from_json(cls, payload: Mapping[str, Any] | None) -> PlattScaling | None:
        """The calibration a decision JSON records, or None (none was needed, or an older model).

        Raises:
            ValueError: an unknown method or a slope that is not positive.
        """
        if payload is None:
            return None
        if payload.get("method") != METHOD:
            raise ValueError(f"unknown calibration method {payload.get('method')!r}; expected {METHOD!r}")
        scaling = cls(float(payload["slope"]), float(payload["intercept"]))
        if not scaling.slope > 0:
            raise ValueError(f"calibration slope {scaling.slope} must be positive")
        return scaling
