"""The human approval of a promotion: what the approver sees (pure; the DAG's ``approval`` task,
Airflow's ``HITLBranchOperator``, shows it in the run's Required Actions).

The gate applies first: the approval is asked only for a candidate the gate passed (or that
``force_promote`` let through). Approve promotes; Reject, or no answer before the timeout, keeps
the champion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from review_sentiment.links import model_version_url, run_url
from review_sentiment.uncertainty import describe

if TYPE_CHECKING:
    from review_sentiment.config import Settings

APPROVE = "Approve"
REJECT = "Reject"
OPTIONS = (APPROVE, REJECT)
DEFAULT_TIMEOUT_HOURS = 72.0  # three days: a weekly run's champion must not wait into the next week


def _auc(scores: Mapping[str, float] | None) -> str:
    value = (scores or {}).get("roc_auc")
    return "n/a" if value is None else f"{value:.4f}"


def _interval_lines(result: Mapping[str, Any]) -> list[str]:
    """The paired bootstrap intervals of candidate - champion and the rule applied to them (none
    when there was no fair comparison)."""
    said = describe(result.get("difference"), result.get("comparison_size"))
    if not said:
        return []
    margin = result.get("noninferiority_margin")
    rule = "" if margin is None else f" The gate requires the ROC AUC lower bound above -{margin:g}."
    return [f"Paired bootstrap over the same reviews: {said}.{rule}", ""]


def _drift_lines(result: Mapping[str, Any]) -> list[str]:
    """Why the week's reviews drifted from the champion's training data (none when they did not):
    the gate weighed the scores only, the approver weighs this."""
    drift = result.get("drift")
    if not drift:
        return []
    return [
        f"**Drift:** {drift}. The gate judged the scores only; approve if the change in the data is "
        "expected (a new product line, a season), reject if the feed looks broken.",
        "",
    ]


def request(result: Mapping[str, Any], settings: Settings) -> tuple[str, str]:
    """The approval's subject and Markdown body for ``register``'s result (a ``RegisterResult`` as
    XCom carries it): the three models' ROC AUC on the same test split, the gate's reason, the
    drift of the week's reviews if any, links to the version and its evaluation report."""
    version, model = result["version"], result["model_name"]
    champion = result.get("champion_version")
    subject = f"Promote {model} v{version} to champion?"
    if result.get("drift"):
        subject += " (the week's reviews drifted)"
    compared = result.get("compared") or result.get("candidate")
    size = result.get("comparison_size")
    on = f" ({size} test reviews neither model was trained on)" if size else ""
    rows = [
        "| model | ROC AUC |",
        "|---|---|",
        f"| candidate v{version} | {_auc(compared)} |",
        f"| champion {'v' + champion if champion else '(none yet)'} | {_auc(result.get('champion'))} |",
        f"| TF-IDF + LR baseline | {_auc(result.get('baseline'))} |",
    ]
    version_link = model_version_url(settings.mlflow_ui_url, model, version)
    experiment = result.get("experiment_id")
    report = (
        f"{run_url(settings.mlflow_ui_url, experiment, result['run_id'])}/artifacts" if experiment else None
    )
    body = "\n".join(
        [
            f"The gate passed **{model} v{version}**: {result.get('reason', '')}",
            "",
            *_drift_lines(result),
            f"Scores on the same test split{on}:",
            "",
            *rows,
            "",
            *_interval_lines(result),
            f"Candidate on the whole test split: ROC AUC {_auc(result.get('candidate'))}.",
            "",
            f"- [MLflow model version {version}]({version_link})",
            *([f"- [Evaluation report (curves, slices, model card)]({report})"] if report else []),
            "",
            f"**{APPROVE}** moves the `champion` alias to v{version}; **{REJECT}**, or no answer before the "
            "timeout, keeps the current champion.",
        ]
    )
    return subject, body
