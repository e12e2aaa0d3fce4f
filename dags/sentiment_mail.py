"""Mail from the sentiment DAGs: what ``review_sentiment.notify`` composed, sent through the SMTP
provider's ``SmtpNotifier`` on the Airflow connection ``Settings.smtp_conn_id`` (``smtp_default``),
to the addresses in ``SENTIMENT_NOTIFY_TO``. Notifications are off while that list is empty, and
a mail that cannot be sent is logged, never raised: a mail server must not fail a training run.

The connection is a standard ``smtp`` connection; in the environment, as JSON so that the extras
stay booleans (in the URI form ``disable_tls=false`` would be the true string ``"false"``)::

    AIRFLOW_CONN_SMTP_DEFAULT='{"conn_type": "smtp", "host": "mail.example.org", "port": 587,
        "login": "airflow", "password": "...",
        "extra": {"from_email": "airflow@example.org", "disable_ssl": true, "timeout": 10}}'

The hook's extras: ``from_email`` (required here), ``disable_ssl`` (default: implicit TLS, port
465), ``disable_tls`` (default: STARTTLS), ``timeout`` (30 s), ``retry_limit`` (5). Outside a task
only environment connections (and a configured secrets backend) resolve; inside a task, a
connection made in the UI resolves too, through the task SDK's Execution API.

Other channels are a notifier swap in :func:`send`: with the Slack provider,
``SlackWebhookNotifier(slack_webhook_conn_id=..., text=subject)``, or a webhook through the HTTP
provider; each takes a connection id and text, and ``notify.message`` stays the text.

Not a DAG file (see .airflowignore); the provider is imported only when a mail is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from review_sentiment.config import Settings
from review_sentiment.notify import Outcome, compose

log = logging.getLogger(__name__)


def _redacted(text: str, notifier: Any) -> str:
    """``text`` with the connection's password masked, in case an error ever echoes it."""
    # The notifier's hook is a cached_property: present once notify() built it, not built here.
    hook = vars(notifier).get("hook") if notifier is not None else None
    password = getattr(getattr(hook, "smtp_connection", None), "password", None)
    return text.replace(password, "***") if password else text


def send(outcome: Outcome, settings: Settings, context: Mapping[str, Any] | None = None) -> bool:
    """Mail ``outcome`` to ``settings.notify_to`` through the SMTP connection ``settings.smtp_conn_id``.

    Args:
        outcome: what the run came to.
        settings: recipients, connection id and UI base URLs.
        context: the Airflow task context, when called from a task or callback (optional).

    Returns:
        True when the mail server accepted the mail; False when notifications are off or sending
        failed (logged as a warning with the connection id and the error). Never raises.
    """
    mail = compose(outcome, settings)
    if mail is None:
        return False
    what = f"{outcome.kind} of {outcome.dag_id}/{outcome.run_id}"
    notifier = None
    try:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        notifier = SmtpNotifier(
            to=list(mail.to), subject=mail.subject, html_content=mail.html, smtp_conn_id=mail.conn_id
        )
        # notify() sends subject and body as given; only __call__ would render them as templates.
        # It does render the sender taken from the connection, with the DAG's template
        # environment, which a DAG callback's serialized DAG lacks: the default one serves.
        notifier.notify({k: v for k, v in (context or {}).items() if k != "dag"})
    except Exception as error:  # noqa: BLE001 - a mail failure must never fail the run
        reason = _redacted(f"{type(error).__name__}: {error}", notifier)
        log.warning("Could not mail %s through connection %r: %s", what, mail.conn_id, reason)
        return False
    log.info("Mailed %s to %d recipient(s) through connection %r", what, len(mail.to), mail.conn_id)
    return True


def failure_outcome(context: Mapping[str, Any]) -> Outcome:
    """The outcome of a failed DAG run from a DAG failure callback's context."""
    dag_run = context["dag_run"]
    ti = context.get("ti")
    failed = None
    if ti is not None:
        failed = ti.task_id if getattr(ti, "map_index", -1) < 0 else f"{ti.task_id}[{ti.map_index}]"
    reason = str(context.get("exception") or context.get("reason") or "see the task log")
    return Outcome(
        kind="failed", dag_id=dag_run.dag_id, run_id=dag_run.run_id, reason=reason, failed_task=failed
    )


def mail_failure(context: Mapping[str, Any]) -> None:
    """The DAG run failed: mail it (a DAG callback, run by the DAG processor)."""
    send(failure_outcome(context), Settings.from_env(), context)
