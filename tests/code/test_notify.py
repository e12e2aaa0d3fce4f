"""Unit tests of the notification text: subject and HTML body per outcome, escaping, links, and
``compose`` giving no mail while no recipient is configured. (The sending, on the Airflow side:
tests/dags/test_sentiment_mail.py.)"""

from __future__ import annotations

import html
import logging
import sys

import pytest

from review_sentiment import notify
from review_sentiment.config import PROJECT_ROOT, Settings
from review_sentiment.links import model_version_url
from review_sentiment.notify import KINDS, Mail, Outcome, airflow_run_url, compose, message

DAG_ID = "sentiment_retrain"
RUN_ID = "scheduled__2026-11-23T03:00:00+00:00"
RUN_LINK = (
    "https://airflow.example.org/dags/sentiment_retrain/runs/scheduled__2026-11-23T03%3A00%3A00%2B00%3A00"
)
VERSION_LINK = "https://mlflow.example.org/#/models/customer-sentiment-analysis/versions/4"


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(
        {
            "SENTIMENT_AIRFLOW_UI_URL": "https://airflow.example.org/",
            "MLFLOW_UI_URL": "https://mlflow.example.org/",
            "SENTIMENT_NOTIFY_TO": "ml-team@example.org",
        }
    )


def outcome(kind: str, **fields: object) -> Outcome:
    scored = {
        "version": "4",
        "candidate_auc": 0.95123,
        "champion_auc": 0.95607,
        "baseline_auc": 0.94018,
        "comparison_size": 4068,
    }
    defaults = {"failed": {"failed_task": "train[1]", "reason": "ValueError: boom"}}.get(kind, scored)
    return Outcome(**{"kind": kind, "dag_id": DAG_ID, "run_id": RUN_ID, **defaults, **fields})


@pytest.mark.parametrize(
    ("kind", "subject"),
    [
        (
            "kept",
            f"[sentiment_retrain] kept champion: candidate v4 0.9512 vs champion 0.9561 (run {RUN_ID})",
        ),
        (
            "promoted",
            "[sentiment_retrain] promoted v4 to champion: candidate 0.9512 vs champion 0.9561 "
            f"(run {RUN_ID})",
        ),
        (
            "approval",
            f"[sentiment_retrain] approval waiting: v4, candidate 0.9512 vs champion 0.9561 (run {RUN_ID})",
        ),
        ("failed", f"[sentiment_retrain] FAILED at train[1] (run {RUN_ID})"),
        (
            "smoke_failed",
            f"[sentiment_retrain] kept champion: candidate v4 failed the smoke check (run {RUN_ID})",
        ),
        (
            "drift",
            "[sentiment_retrain] kept champion: candidate v4 held back, the week's data drifted "
            f"(run {RUN_ID})",
        ),
    ],
)
def test_subject_per_kind(kind: str, subject: str, settings: Settings) -> None:
    assert message(outcome(kind), settings)[0] == subject


@pytest.mark.parametrize("kind", ["kept", "promoted", "approval", "smoke_failed", "drift"])
def test_body_names_the_run_the_scores_and_both_links(kind: str, settings: Settings) -> None:
    _, body = message(outcome(kind, reason="candidate is below the champion"), settings)
    assert f"{DAG_ID} / {RUN_ID}" in body
    for label, value in [("Candidate", "0.9512"), ("Champion", "0.9561"), ("Baseline", "0.9402")]:
        assert f'<th align="left">{label} ROC AUC</th><td>{value}</td>' in body
    assert "<td>4,068 reviews</td>" in body
    assert "<td>candidate is below the champion</td>" in body
    assert f'<a href="{RUN_LINK}">Airflow run</a>' in body
    assert f'<a href="{VERSION_LINK}">MLflow customer-sentiment-analysis version 4</a>' in body


@pytest.mark.parametrize(
    ("kind", "sentence"),
    [
        ("kept", "Kept the champion: version 4 was not promoted."),
        ("promoted", "Promoted version 4 to champion."),
        ("approval", "Approval waiting: version 4 becomes champion once approved in the Airflow run."),
        ("failed", "The run failed at task train[1]."),
        ("smoke_failed", "Kept the champion: version 4 failed the smoke check; nothing moved."),
        ("drift", "Kept the champion: version 4 held back, the week&#x27;s data drifted; nothing moved."),
    ],
)
def test_body_states_the_outcome(kind: str, sentence: str, settings: Settings) -> None:
    assert f"<p>{sentence}</p>" in message(outcome(kind), settings)[1]


def test_failure_body_has_the_task_and_error_but_no_scores_or_version_link(settings: Settings) -> None:
    _, body = message(outcome("failed"), settings)
    assert "<td>train[1]</td>" in body
    assert "<td>ValueError: boom</td>" in body
    assert "ROC AUC" not in body
    assert "#/models/" not in body
    assert f'<a href="{RUN_LINK}">Airflow run</a>' in body


def test_no_version_link_without_a_version(settings: Settings) -> None:
    subject, body = message(outcome("kept", version=None), settings)
    assert "#/models/" not in body
    assert "MLflow" not in body
    assert subject == f"[sentiment_retrain] kept champion: candidate 0.9512 vs champion 0.9561 (run {RUN_ID})"


def test_first_promotion_has_no_champion_score(settings: Settings) -> None:
    subject, body = message(outcome("promoted", version="1", champion_auc=None), settings)
    assert subject == (
        f"[sentiment_retrain] promoted v1 to champion: candidate 0.9512, no champion before (run {RUN_ID})"
    )
    assert '<th align="left">Champion ROC AUC</th><td>n/a</td>' in body


def test_monitoring_line_only_when_given(settings: Settings) -> None:
    line = "champion AUC on last week's reviews fell to 0.9012"
    assert f"<td>{html.escape(line)}</td>" in message(outcome("kept", monitoring=line), settings)[1]
    assert "Monitoring" not in message(outcome("kept"), settings)[1]


@pytest.mark.parametrize("field", ["reason", "monitoring", "failed_task", "run_id", "dag_id", "version"])
def test_every_value_is_escaped(field: str, settings: Settings) -> None:
    hostile = '<script>alert("x")</script>&'
    _, body = message(outcome("failed", **{field: hostile}), settings)
    assert "<script>" not in body
    assert "&lt;script&gt;" in body


def test_template_syntax_in_values_is_kept_as_text(settings: Settings) -> None:
    reason = "KeyError: '{{ ds }}' {% raw %}"
    _, body = message(outcome("failed", reason=reason), settings)
    assert f"<td>{html.escape(reason)}</td>" in body


def test_subject_stays_on_one_line(settings: Settings) -> None:
    subject, _ = message(outcome("failed", failed_task="train\r\nBcc: everyone@example.org"), settings)
    assert "\n" not in subject
    assert "\r" not in subject
    assert "FAILED at train Bcc: everyone@example.org" in subject


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown outcome kind 'skipped'"):
        Outcome(kind="skipped", dag_id=DAG_ID, run_id=RUN_ID)
    assert KINDS == (
        "promoted",
        "kept",
        "failed",
        "approval",
        "rolled_back",
        "smoke_failed",
        "drift",
        "prediction_alert",
    )


def test_airflow_run_url_quotes_the_run_id(settings: Settings) -> None:
    assert airflow_run_url(settings, DAG_ID, RUN_ID) == RUN_LINK
    assert airflow_run_url(settings, DAG_ID, "manual__a/b c").endswith("/runs/manual__a%2Fb%20c")


def test_version_link_is_the_extra_links_one(settings: Settings) -> None:
    # The plugin's link and the mail's come from the one function in review_sentiment.links.
    sys.path.insert(0, str(PROJECT_ROOT / "plugins"))
    try:
        import sentiment_mlflow_links
    finally:
        sys.path.remove(str(PROJECT_ROOT / "plugins"))
    assert sentiment_mlflow_links.model_version_url is model_version_url
    url = model_version_url(settings.mlflow_ui_url, settings.model_name, "4")
    assert url == VERSION_LINK


def test_no_mail_without_recipients(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.from_env({"SENTIMENT_NOTIFY_TO": " , "})
    assert settings.notify_to == ()
    with caplog.at_level(logging.INFO, logger=notify.__name__):
        assert compose(outcome("failed"), settings) is None
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "Notifications are off" in caplog.text
    assert f"failed of {DAG_ID}/{RUN_ID}" in caplog.text


def test_compose_gives_recipients_connection_and_the_message(settings: Settings) -> None:
    subject, body = message(outcome("promoted"), settings)
    assert compose(outcome("promoted"), settings) == Mail(
        to=("ml-team@example.org",), subject=subject, html=body, conn_id="smtp_default"
    )


def test_the_mail_shows_the_intervals_of_the_difference(settings: Settings) -> None:
    result = {
        "version": "4", "reason": "non-inferior", "compared": {"roc_auc": 0.95}, "comparison_size": 2085,
        "difference": {
            "roc_auc": 0.0031, "roc_auc_low": -0.0012, "roc_auc_high": 0.0075, "f1_not_recommended": -0.01,
            "f1_not_recommended_low": -0.04, "f1_not_recommended_high": 0.02, "confidence": 0.95,
        },
    }  # fmt: skip
    _, body = message(notify.from_result("promoted", result, DAG_ID, RUN_ID), settings)
    assert (
        '<tr><th align="left">Candidate - champion ROC AUC</th>'
        "<td>+0.0031 [95% CI -0.0012, +0.0075]</td></tr>" in body
    )
    assert "Candidate - champion F1 (not recommended)</th><td>-0.0100 [95% CI -0.0400, +0.0200]" in body
    _, older = message(
        notify.from_result("promoted", {**result, "difference": None}, DAG_ID, RUN_ID), settings
    )
    assert "Candidate - champion" not in older


def test_a_failed_smoke_check_is_mailed_with_what_failed(settings: Settings) -> None:
    """The kept week's mail says the version failed the smoke check and lists the failures (the
    reason keep_champion records), with the Outcome row saying so."""
    why = (
        "smoke check failed: complaint_fit: obvious complaint scored 0.9100, at or above the threshold 0.7000"
    )
    subject, body = message(outcome("smoke_failed", reason=why), settings)
    assert "failed the smoke check" in subject
    assert '<th align="left">Outcome</th><td>kept: smoke check failed</td>' in body
    assert f"<td>{html.escape(why)}</td>" in body
    assert f'<a href="{VERSION_LINK}">' in body
