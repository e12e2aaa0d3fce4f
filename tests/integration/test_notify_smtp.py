"""Notifications through a real SMTP server: aiosmtpd on 127.0.0.1 at a free port, reached by the
SMTP provider's ``SmtpNotifier`` (from the DAGs' helper ``sentiment_mail``) through the standard
Airflow connection, given as ``AIRFLOW_CONN_SMTP_DEFAULT`` JSON in the environment (resolved
outside a task, as in a callback).

Each outcome arrives with its recipients, subject, run, scores and links; a stopped server, a
server that refuses the mail and a missing connection each make ``send`` return False and log one
warning, never raise. Fast (seconds): no PostgreSQL or MLflow server.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from review_sentiment.config import PROJECT_ROOT, Settings
from review_sentiment.notify import Outcome, message
from tests.support.mail import SENDER, MailServer, connection, start_mail_server

# The DAGs' helper modules import from the dags folder, as Airflow's DagBag and task runner do.
if str(PROJECT_ROOT / "dags") not in sys.path:
    sys.path.append(str(PROJECT_ROOT / "dags"))
send = importlib.import_module("sentiment_mail").send

pytestmark = pytest.mark.integration

DAG_ID = "sentiment_retrain"
RUN_ID = "scheduled__2026-11-23T03:00:00+00:00"
RECIPIENTS = ("ml-team@example.org", "oncall@example.org")
PASSWORD = "s3cret-mail-password"
RUN_LINK = "http://airflow.test:8080/dags/sentiment_retrain/runs/scheduled__2026-11-23T03%3A00%3A00%2B00%3A00"
VERSION_LINK = "http://mlflow.test:5000/#/models/customer-sentiment-analysis/versions/7"


@pytest.fixture
def mail_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[MailServer]:
    server = start_mail_server()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", connection(server.port))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(
        {
            "SENTIMENT_NOTIFY_TO": ", ".join(RECIPIENTS),
            "SENTIMENT_AIRFLOW_UI_URL": "http://airflow.test:8080",
            "MLFLOW_UI_URL": "http://mlflow.test:5000",
        }
    )


OUTCOMES = {
    "promoted": Outcome(
        "promoted",
        DAG_ID,
        RUN_ID,
        reason="candidate 0.9612 beats champion 0.9561 on the same 4,068 reviews",
        version="7",
        candidate_auc=0.96121,
        champion_auc=0.95607,
        baseline_auc=0.94018,
        comparison_size=4068,
    ),
    "kept": Outcome(
        "kept",
        DAG_ID,
        RUN_ID,
        reason="candidate 0.9512 is worse than champion 0.9561",
        version="7",
        candidate_auc=0.95123,
        champion_auc=0.95607,
        baseline_auc=0.94018,
        comparison_size=4068,
        monitoring="champion ROC AUC on this week's labelled reviews fell from 0.9561 to 0.9310",
    ),
    "approval": Outcome(
        "approval",
        DAG_ID,
        RUN_ID,
        reason="promotion needs approval",
        version="7",
        candidate_auc=0.96121,
        champion_auc=0.95607,
        baseline_auc=0.94018,
        comparison_size=4068,
    ),
    "failed": Outcome("failed", DAG_ID, RUN_ID, reason="MemoryError: out of memory", failed_task="train[1]"),
}
SUBJECTS = {
    "promoted": "[sentiment_retrain] promoted v7 to champion: candidate 0.9612 vs champion 0.9561",
    "kept": "[sentiment_retrain] kept champion: candidate v7 0.9512 vs champion 0.9561",
    "approval": "[sentiment_retrain] approval waiting: v7, candidate 0.9612 vs champion 0.9561",
    "failed": "[sentiment_retrain] FAILED at train[1]",
}


def html_body(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("html",))
    assert part is not None, mail.as_string()[:2000]
    return part.get_content()


@pytest.mark.parametrize("kind", list(OUTCOMES))
def test_each_outcome_is_mailed(kind: str, mail_server: MailServer, settings: Settings) -> None:
    outcome = OUTCOMES[kind]
    assert send(outcome, settings) is True
    [(rcpt_tos, mail)] = mail_server.inbox.messages
    assert rcpt_tos == list(RECIPIENTS)
    assert mail["To"] == ", ".join(RECIPIENTS)
    assert mail["From"] == SENDER
    assert mail["Subject"] == f"{SUBJECTS[kind]} (run {RUN_ID})"
    body = html_body(mail)
    assert body == message(outcome, settings)[1]
    assert f"{DAG_ID} / {RUN_ID}" in body
    assert f'<a href="{RUN_LINK}">Airflow run</a>' in body
    assert f"<td>{outcome.reason}</td>" in body
    if kind == "failed":
        assert "<td>train[1]</td>" in body
        assert VERSION_LINK not in body
    else:
        for value in ("0.9402", "4,068 reviews", f"{outcome.candidate_auc:.4f}", "0.9561"):
            assert f"<td>{value}</td>" in body
        assert f'<a href="{VERSION_LINK}">' in body


def test_template_syntax_arrives_as_written(mail_server: MailServer, settings: Settings) -> None:
    # The notifier renders Jinja only through __call__; send() must not let a reason be rendered,
    # even with a task context at hand.
    outcome = Outcome("failed", "dag_{{ ds }}", RUN_ID, reason="KeyError: '{{ ds }}' {% raw %}")
    assert send(outcome, settings, context={"ds": "2026-11-23"}) is True
    [(_, mail)] = mail_server.inbox.messages
    assert mail["Subject"].startswith("[dag_{{ ds }}] FAILED (run ")
    assert "<td>KeyError: &#x27;{{ ds }}&#x27; {% raw %}</td>" in html_body(mail)


def test_the_connection_id_setting_is_used(mail_server: MailServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT")
    monkeypatch.setenv("AIRFLOW_CONN_MAIL_RELAY", connection(mail_server.port))
    settings = Settings.from_env(
        {"SENTIMENT_NOTIFY_TO": "a@example.org", "SENTIMENT_SMTP_CONN_ID": "mail_relay"}
    )
    assert send(OUTCOMES["kept"], settings) is True
    assert [rcpt for rcpt, _ in mail_server.inbox.messages] == [["a@example.org"]]


def _one_warning(caplog: pytest.LogCaptureFixture) -> str:
    warnings = [r for r in caplog.records if r.name == "sentiment_mail" and r.levelno >= logging.WARNING]
    assert [r.levelname for r in warnings] == ["WARNING"]
    text = warnings[0].getMessage()
    assert PASSWORD not in caplog.text
    return text


def test_a_stopped_server_is_logged_not_raised(
    mail_server: MailServer,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # With a login: the warning must not carry the password.
    conn = json.loads(connection(mail_server.port)) | {"login": "airflow", "password": PASSWORD}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(conn))
    mail_server.stop()
    with caplog.at_level(logging.INFO, logger="sentiment_mail"):
        assert send(OUTCOMES["failed"], settings) is False
    text = _one_warning(caplog)
    assert "Could not mail failed of sentiment_retrain/" in text
    assert "through connection 'smtp_default'" in text
    assert "ConnectionRefusedError" in text
    assert mail_server.inbox.messages == []


def test_a_refusing_server_is_logged_not_raised(
    mail_server: MailServer, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    mail_server.inbox.refuse = True
    with caplog.at_level(logging.INFO, logger="sentiment_mail"):
        assert send(OUTCOMES["promoted"], settings) is False
    text = _one_warning(caplog)
    assert "SMTPDataError" in text
    assert "Message refused by policy" in text


def test_a_missing_connection_is_logged_not_raised(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    with caplog.at_level(logging.INFO, logger="sentiment_mail"):
        assert send(OUTCOMES["approval"], settings) is False
    text = _one_warning(caplog)
    assert "through connection 'smtp_default'" in text
    assert "SMTP connection is not found" in text
