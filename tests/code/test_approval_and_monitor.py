"""Pure parts of the approval form and of champion monitoring."""

from __future__ import annotations

import pytest

from review_sentiment.approval import request
from review_sentiment.config import Settings
from review_sentiment.monitor import alert_for, week_step

RESULT = {
    "model_name": "customer-sentiment-analysis",
    "version": "7",
    "run_id": "abc",
    "experiment_id": "3",
    "reason": "candidate ROC AUC 0.9600 >= champion's 0.9500 on the 2300 unseen test reviews",
    "candidate": {"roc_auc": 0.958},
    "compared": {"roc_auc": 0.96},
    "champion": {"roc_auc": 0.95},
    "champion_version": "6",
    "baseline": {"roc_auc": 0.955},
    "comparison_size": 2300,
}


def test_the_approval_form_shows_three_scores_on_one_split_the_reason_and_links() -> None:
    settings = Settings.from_env({"MLFLOW_UI_URL": "http://mlflow.test:5000"})
    subject, body = request(RESULT, settings)
    assert subject == "Promote customer-sentiment-analysis v7 to champion?"
    assert "| candidate v7 | 0.9600 |" in body
    assert "| champion v6 | 0.9500 |" in body
    assert "| TF-IDF + LR baseline | 0.9550 |" in body
    assert "(2300 test reviews neither model was trained on)" in body
    assert RESULT["reason"] in body
    assert "(http://mlflow.test:5000/#/models/customer-sentiment-analysis/versions/7)" in body
    assert "(http://mlflow.test:5000/#/experiments/3/runs/abc/artifacts)" in body


def test_the_approval_form_of_a_first_version_says_there_is_no_champion() -> None:
    first = {**RESULT, "champion": None, "champion_version": None, "compared": None, "comparison_size": None}
    _, body = request(first, Settings.from_env({}))
    assert "| champion (none yet) | n/a |" in body
    assert "| candidate v7 | 0.9580 |" in body


def test_the_approval_form_of_a_drifted_week_says_what_drifted() -> None:
    drift = "412 new reviews vs champion v6's training snapshot drifted: label share: 0.19 of the new ..."
    subject, body = request({**RESULT, "drift": drift}, Settings.from_env({}))
    assert subject == "Promote customer-sentiment-analysis v7 to champion? (the week's reviews drifted)"
    assert f"**Drift:** {drift}." in body
    assert body.index(RESULT["reason"]) < body.index("**Drift:**") < body.index("| candidate v7 |")
    _, plain = request({**RESULT, "drift": ""}, Settings.from_env({}))
    assert "Drift" not in plain


@pytest.mark.parametrize(
    ("auc", "own", "expected"),
    [
        (0.95, 0.96, None),
        (0.84, 0.96, "is below the monitoring floor 0.8500"),
        (0.90, 0.96, "is more than 0.0500 below its test ROC AUC 0.9600"),
        (0.90, None, None),  # a version without a recorded test score: the floor only
    ],
)
def test_a_week_alerts_below_the_floor_or_the_margin(
    auc: float, own: float | None, expected: str | None
) -> None:
    alert = alert_for({"roc_auc": auc}, own, floor=0.85, margin=0.05)
    assert (alert is None) if expected is None else (expected in alert)


def test_weeks_become_steps_that_sort_as_weeks() -> None:
    assert week_step("2026-W48") == 202648
    assert week_step("2026-W52") < week_step("2027-W01")


INTERVAL = {
    "roc_auc": 0.0031, "roc_auc_low": -0.0012, "roc_auc_high": 0.0075, "f1_not_recommended": 0.01,
    "f1_not_recommended_low": -0.02, "f1_not_recommended_high": 0.04, "confidence": 0.95, "resamples": 2000.0,
}  # fmt: skip


def test_the_approval_form_shows_the_interval_and_the_rule() -> None:
    result = {**RESULT, "difference": INTERVAL, "noninferiority_margin": 0.002}
    _, body = request(result, Settings.from_env({}))
    assert (
        "Paired bootstrap over the same reviews: candidate - champion ROC AUC +0.0031 [95% CI -0.0012, "
        "+0.0075]; candidate - champion F1 (not recommended) +0.0100 [95% CI -0.0200, +0.0400] on 2,300 "
        "unseen test reviews. The gate requires the ROC AUC lower bound above -0.002."
    ) in body
    _, older = request(RESULT, Settings.from_env({}))  # a result from before intervals
    assert "Paired bootstrap" not in older
