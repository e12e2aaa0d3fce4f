"""Unit tests of the promotion gate: the floor, the baseline, the champion, drift, a diverged
candidate, force."""

from __future__ import annotations

import math

import pytest

from review_sentiment.register import RegisterResult, gate

NAN = math.nan


@pytest.mark.parametrize(
    ("candidate", "champion", "floor", "promoted", "reason"),
    [
        (0.90, None, 0.85, True, "no champion score to beat; candidate test ROC AUC 0.9000 >= floor 0.8500"),
        (0.85, None, 0.85, True, "no champion score to beat"),  # the floor itself passes
        (0.84, None, 0.85, False, "candidate test ROC AUC 0.8400 is below the floor 0.8500"),
        (0.84, 0.80, 0.85, False, "below the floor"),  # beating a weak champion is not enough
        (0.90, 0.92, 0.85, False, "candidate test ROC AUC 0.9000 is worse than the champion's 0.9200"),
        (0.92, 0.92, 0.85, True, ">= champion's 0.9200 and floor 0.8500"),  # no worse: a tie promotes
        (0.95, 0.92, 0.85, True, ">= champion's 0.9200"),
        (0.90, NAN, 0.85, True, ""),  # a champion that cannot be scored does not block
        (NAN, None, 0.85, False, "candidate test ROC AUC is not finite"),
        (NAN, 0.92, 0.85, False, "not finite"),
        (math.inf, None, 0.85, False, "not finite"),
    ],
)
def test_gate(candidate: float, champion: float | None, floor: float, promoted: bool, reason: str) -> None:
    decision, why = gate(candidate, champion, floor)
    assert decision is promoted
    assert reason in why


@pytest.mark.parametrize(("candidate", "champion"), [(0.5, 0.95), (NAN, 0.9), (0.1, None)])
def test_force_promotes_whatever_the_scores(candidate: float, champion: float | None) -> None:
    assert gate(candidate, champion, floor=0.85, force=True) == (
        True,
        "force-promoted by request, gate skipped",
    )


def _result(promoted: bool) -> RegisterResult:
    return RegisterResult(
        model_name="m", version="3", run_id="r", promoted=promoted, reason="below the floor"
    )


def test_register_result_is_xcom_sized_plain_data() -> None:
    assert _result(True).to_dict() == {
        "model_name": "m",
        "version": "3",
        "run_id": "r",
        "promoted": True,
        "reason": "below the floor",
        "candidate": {},
        "champion": None,
        "champion_version": None,
        "reused": False,
        "baseline": None,
        "passed": False,
        "outcome": None,
        "compared": None,
        "comparison_size": None,
        "experiment_id": None,
        "monitoring": None,
    }
    assert RegisterResult.from_dict(_result(True).to_dict()) == _result(True)


@pytest.mark.parametrize(
    ("candidate", "baseline", "promoted", "reason"),
    [
        (0.95, 0.96, False, "does not beat the TF-IDF + logistic regression baseline's 0.9600"),
        (0.96, 0.96, False, "does not beat"),  # a tie with the baseline is not a win
        (0.97, 0.96, True, "baseline's 0.9600"),
        (0.97, NAN, True, ""),  # a baseline that could not be scored does not block
    ],
)
def test_gate_requires_beating_the_baseline(
    candidate: float, baseline: float, promoted: bool, reason: str
) -> None:
    decision, why = gate(candidate, None, 0.85, baseline_auc=baseline)
    assert decision is promoted
    assert reason in why


def test_drift_blocks_promotion_of_an_otherwise_better_model() -> None:
    decision, why = gate(0.99, 0.90, 0.85, baseline_auc=0.9, drift="positive-label share 0.55 vs 0.82")
    assert decision is False
    assert why == "label drift blocks promotion: positive-label share 0.55 vs 0.82"


def test_force_overrides_baseline_and_drift() -> None:
    assert gate(0.5, 0.9, 0.85, True, baseline_auc=0.95, drift="drifted")[0] is True


def test_the_floor_is_checked_before_the_baseline() -> None:
    assert "below the floor" in gate(0.80, None, 0.85, baseline_auc=0.9)[1]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"outcome": "promoted", "promoted": True}, "**promoted v3** to champion - candidate ROC AUC 0.9500"),
        (
            {
                "outcome": "kept",
                "champion_version": "2",
                "champion": {"roc_auc": 0.96},
                "comparison_size": 812,
            },
            "**kept champion v2**; v3 stays challenger - candidate ROC AUC 0.9500 vs champion 0.9600 on 812 "
            "unseen test reviews - below the floor",
        ),
        ({"outcome": "kept"}, "**not promoted**: v3 stays challenger - candidate ROC AUC 0.9500 - below"),
        ({}, "v3: gate refused"),
    ],
)
def test_the_run_note_says_the_outcome_and_the_scores(changes: dict, expected: str) -> None:
    result = RegisterResult(**{**_result(False).to_dict(), "candidate": {"roc_auc": 0.95}, **changes})
    assert result.note().startswith(expected)
