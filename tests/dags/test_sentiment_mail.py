"""The Airflow side of notifications (dags/sentiment_mail.py): ``send`` stays off, without even
importing the SMTP provider, while no recipient is configured; an error that echoes the mail
password is redacted; a failed run's context becomes a ``failed`` outcome naming the task."""

from __future__ import annotations

import logging
import sys
from types import SimpleNamespace

import pytest

from review_sentiment.config import Settings
from review_sentiment.notify import Outcome

DAG_ID = "sentiment_retrain"
RUN_ID = "scheduled__2026-11-23T03:00:00+00:00"
PROVIDER = "airflow.providers.smtp.notifications.smtp"


def test_send_is_off_without_recipients(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sentiment_mail import send

    # A connection that would be tried if send went that far: the provider must not even be imported.
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", '{"conn_type": "smtp", "host": "127.0.0.1", "port": 9}')
    monkeypatch.delitem(sys.modules, PROVIDER, raising=False)
    settings = Settings.from_env({"SENTIMENT_NOTIFY_TO": " , "})
    with caplog.at_level(logging.INFO):
        assert send(Outcome("failed", DAG_ID, RUN_ID, reason="boom"), settings) is False
    assert PROVIDER not in sys.modules
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "Notifications are off" in caplog.text


def test_an_error_that_echoes_the_password_is_redacted() -> None:
    from sentiment_mail import _redacted

    # The shape SmtpNotifier has once notify() has loaded the connection.
    connection = SimpleNamespace(password="s3cret-mail-password")
    notifier = SimpleNamespace(hook=SimpleNamespace(smtp_connection=connection))
    text = "SMTPAuthenticationError: (535, b'bad credentials s3cret-mail-password')"
    assert _redacted(text, notifier) == "SMTPAuthenticationError: (535, b'bad credentials ***')"
    assert _redacted(text, None) == text


@pytest.mark.parametrize(("map_index", "where"), [(-1, "register"), (1, "register[1]")])
def test_a_failed_run_names_its_task_and_reason(map_index: int, where: str) -> None:
    from sentiment_mail import failure_outcome

    context = {
        "dag_run": SimpleNamespace(dag_id=DAG_ID, run_id=RUN_ID),
        "ti": SimpleNamespace(task_id="register", map_index=map_index),
        "exception": ValueError("boom"),
    }
    assert failure_outcome(context) == Outcome("failed", DAG_ID, RUN_ID, reason="boom", failed_task=where)
    assert failure_outcome({"dag_run": context["dag_run"]}).reason == "see the task log"
