"""Mail about a retraining run: a failure, a kept week (also by a failed smoke check or drift), a
promotion, an approval that waits; about a rollback of the champion; and about a scoring run
whose predictions moved (``watch.py``).

What to send, composed here (pure, no Airflow): :func:`message` builds the subject and HTML body
from an :class:`Outcome` (escaped); :func:`compose` adds the recipients (``SENTIMENT_NOTIFY_TO``)
and the Airflow connection to send through (``Settings.smtp_conn_id``), or gives None while the
recipient list is empty (notifications off). The sending, through the SMTP provider's
``SmtpNotifier``, is the DAGs' (``dags/sentiment_mail.py``), as is reading a failure from an
Airflow context.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from review_sentiment.links import airflow_run_url, model_version_url
from review_sentiment.names import OUTCOME_DRIFT, OUTCOME_SMOKE_FAILED
from review_sentiment.uncertainty import AUC, F1, interval_of

if TYPE_CHECKING:
    from review_sentiment.config import Settings

__all__ = ["KINDS", "Mail", "Outcome", "airflow_run_url", "compose", "from_result", "message"]

log = logging.getLogger(__name__)

KINDS = (
    "promoted",
    "kept",
    "failed",
    "approval",
    "rolled_back",
    OUTCOME_SMOKE_FAILED,
    OUTCOME_DRIFT,
    "prediction_alert",
)
_MISSING = "n/a"
_OUTCOME_WORD = {
    "promoted": "promoted",
    "kept": "kept",
    "failed": "FAILED",
    "approval": "approval waiting",
    "rolled_back": "rolled back",
    OUTCOME_SMOKE_FAILED: "kept: smoke check failed",
    OUTCOME_DRIFT: "kept: the week drifted",
    "prediction_alert": "prediction alert",
}
# The kept outcomes with a reason of their own: what they say of the candidate (subject, sentence).
_HELD = {
    OUTCOME_SMOKE_FAILED: "failed the smoke check",
    OUTCOME_DRIFT: "held back, the week's data drifted",
}


@dataclass(frozen=True)
class Outcome:
    """What one DAG run came to, with the numbers a reader needs to judge it.

    ``kind`` is one of :data:`KINDS`; ``reason`` is the gate's reason or the failure's exception
    text; ``version`` is the MLflow model version the run registered, if any; ``comparison_size``
    is the number of reviews the candidate/champion comparison used; ``monitoring`` is a
    champion-monitoring alert line (a prediction alert's: the scoring run's figures);
    ``failed_task`` names the task that failed (``train[1]``);
    ``previous_version`` is the champion a rollback moved the alias from (itself: nothing moved).
    ``difference`` holds candidate - champion with its intervals (``RegisterResult.difference``).
    """

    kind: str
    dag_id: str
    run_id: str
    reason: str = ""
    version: str | None = None
    candidate_auc: float | None = None
    champion_auc: float | None = None
    baseline_auc: float | None = None
    comparison_size: int | None = None
    monitoring: str | None = None
    failed_task: str | None = None
    previous_version: str | None = None
    difference: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown outcome kind {self.kind!r}; expected one of {list(KINDS)}")


@dataclass(frozen=True)
class Mail:
    """One mail, ready to send: recipients, subject, HTML body and the Airflow connection id."""

    to: tuple[str, ...]
    subject: str
    html: str
    conn_id: str


def from_result(
    kind: str, result: Mapping[str, Any], dag_id: str, run_id: str, monitoring: str | None = None
) -> Outcome:
    """The outcome of a week from its ``RegisterResult`` (as a dict, as XCom carries it): the
    candidate's and the champion's ROC AUC on their comparison set when there was one."""
    compared = result.get("compared") or result.get("candidate") or {}
    return Outcome(
        kind=kind,
        dag_id=dag_id,
        run_id=run_id,
        reason=result.get("reason", ""),
        version=result.get("version"),
        candidate_auc=compared.get("roc_auc"),
        champion_auc=(result.get("champion") or {}).get("roc_auc"),
        baseline_auc=(result.get("baseline") or {}).get("roc_auc"),
        comparison_size=result.get("comparison_size"),
        monitoring=monitoring,
        previous_version=result.get("champion_version") if kind == "rolled_back" else None,
        difference=result.get("difference"),
    )


def _score(value: float | None) -> str:
    return _MISSING if value is None else f"{value:.4f}"


def _one_line(text: str) -> str:
    """Header-safe text: a run id or task name never breaks the subject line."""
    return " ".join(text.split())


def _scores_phrase(outcome: Outcome, candidate: str = "candidate") -> str:
    """``candidate 0.9512 vs champion 0.9561``, or what part of it is known."""
    if outcome.candidate_auc is None:
        return ""
    if outcome.champion_auc is None:
        return f"{candidate} {_score(outcome.candidate_auc)}, no champion before"
    return f"{candidate} {_score(outcome.candidate_auc)} vs champion {_score(outcome.champion_auc)}"


def _version(outcome: Outcome) -> str:
    return f"v{outcome.version}" if outcome.version is not None else ""


def _subject(outcome: Outcome) -> str:
    scores = _scores_phrase(outcome)
    version = _version(outcome)
    if outcome.kind == "failed":
        where = f" at {outcome.failed_task}" if outcome.failed_task else ""
        head = f"FAILED{where}"
    elif outcome.kind == "promoted":
        head = " ".join(p for p in ("promoted", version, "to champion") if p)
        head += f": {scores}" if scores else ""
    elif outcome.kind == "kept":
        # The version named is the candidate's: Outcome does not carry the champion's.
        candidate = f"candidate {version}".strip()
        scores = _scores_phrase(outcome, candidate) or (f"{candidate} not promoted" if version else "")
        head = f"kept champion: {scores}" if scores else "kept champion"
    elif outcome.kind == "rolled_back":
        head = _rollback_phrase(outcome)
    elif outcome.kind in _HELD:
        head = " ".join(p for p in ("kept champion: candidate", version, _HELD[outcome.kind]) if p)
    elif outcome.kind == "prediction_alert":
        head = f"prediction alert: champion {version}'s predictions moved"
    else:
        head = f"approval waiting: {version}" if version else "approval waiting"
        head += f", {scores}" if scores else ""
    return _one_line(f"[{outcome.dag_id}] {head} (run {outcome.run_id})")


def _rollback_phrase(outcome: Outcome) -> str:
    if outcome.previous_version == outcome.version:
        return f"rollback: v{outcome.version} already was champion, nothing moved"
    before = f" from v{outcome.previous_version}" if outcome.previous_version else ""
    return f"rolled back champion to v{outcome.version}{before}"


def _outcome_sentence(outcome: Outcome) -> str:
    version = f"version {outcome.version}" if outcome.version is not None else "the candidate"
    if outcome.kind == "promoted":
        return f"Promoted {version} to champion."
    if outcome.kind == "kept":
        return f"Kept the champion: {version} was not promoted."
    if outcome.kind == "rolled_back":
        return _rollback_phrase(outcome)[0].upper() + _rollback_phrase(outcome)[1:] + "."
    if outcome.kind in _HELD:
        return f"Kept the champion: {version} {_HELD[outcome.kind]}; nothing moved."
    if outcome.kind == "prediction_alert":
        return (
            f"The predictions of champion {version} moved away from those on its test split; no labels "
            "are needed to see it. The run scored as usual."
        )
    if outcome.kind == "approval":
        return f"Approval waiting: {version} becomes champion once approved in the Airflow run."
    where = f" at task {outcome.failed_task}" if outcome.failed_task else ""
    return f"The run failed{where}."


def _row(label: str, value: str) -> str:
    return f'<tr><th align="left">{html.escape(label)}</th><td>{html.escape(value)}</td></tr>'


def _link(url: str, text: str) -> str:
    return f'<a href="{html.escape(url, quote=True)}">{html.escape(text)}</a>'


def message(outcome: Outcome, settings: Settings) -> tuple[str, str]:
    """The mail for ``outcome``: a one-line subject and an HTML body with every value escaped.

    Args:
        outcome: what the run came to.
        settings: gives the Airflow and MLflow UI base URLs and the registered model's name.

    Returns:
        ``(subject, html_body)``, final text (no template syntax is interpreted later).
    """
    run_link = airflow_run_url(settings, outcome.dag_id, outcome.run_id)
    rows = [
        _row("DAG run", f"{outcome.dag_id} / {outcome.run_id}"),
        _row("Outcome", _OUTCOME_WORD[outcome.kind]),
    ]
    if outcome.failed_task:
        rows.append(_row("Failed task", outcome.failed_task))
    scores = (outcome.candidate_auc, outcome.champion_auc, outcome.baseline_auc)
    if any(s is not None for s in scores) or outcome.comparison_size is not None:
        rows += [
            _row("Candidate ROC AUC", _score(outcome.candidate_auc)),
            _row("Champion ROC AUC", _score(outcome.champion_auc)),
            _row("Baseline ROC AUC", _score(outcome.baseline_auc)),
        ]
        size = _MISSING if outcome.comparison_size is None else f"{outcome.comparison_size:,} reviews"
        rows.append(_row("Compared on", size))
    for metric, label in ((AUC, "ROC AUC"), (F1, "F1 (not recommended)")):
        if (interval := interval_of(outcome.difference, metric)) is not None:
            rows.append(_row(f"Candidate - champion {label}", interval.bracket()))
    if outcome.reason:
        rows.append(_row("Reason", outcome.reason))
    if outcome.monitoring:
        rows.append(_row("Monitoring", outcome.monitoring))
    links = [_link(run_link, "Airflow run")]
    if outcome.version is not None:
        version_link = model_version_url(settings.mlflow_ui_url, settings.model_name, outcome.version)
        links.append(_link(version_link, f"MLflow {settings.model_name} version {outcome.version}"))
    body = (
        "<html><body>"
        f"<p>{html.escape(_outcome_sentence(outcome))}</p>"
        f'<table cellpadding="4">{"".join(rows)}</table>'
        f"<p>{' | '.join(links)}</p>"
        "</body></html>"
    )
    return _subject(outcome), body


def compose(outcome: Outcome, settings: Settings) -> Mail | None:
    """The mail to send about ``outcome``, or None while notifications are off (no recipients).

    Args:
        outcome: what the run came to.
        settings: recipients, the mail connection's id and the UI base URLs.

    Returns:
        The recipients, subject and HTML body, and the Airflow connection to send them through;
        None (logged) when ``SENTIMENT_NOTIFY_TO`` is empty.
    """
    if not settings.notify_to:
        log.info(
            "Notifications are off (SENTIMENT_NOTIFY_TO is empty): not mailing %s of %s/%s",
            outcome.kind,
            outcome.dag_id,
            outcome.run_id,
        )
        return None
    subject, body = message(outcome, settings)
    return Mail(to=settings.notify_to, subject=subject, html=body, conn_id=settings.smtp_conn_id)
