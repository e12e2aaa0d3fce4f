"""Champion monitoring: before a week's model is trained, the current champion is scored on the
labelled reviews that arrived in the run's data interval (the new week), and the figures become one
point of a weekly series in MLflow.

The series lives in one MLflow run per champion version (``monitor champion v<N>``, tagged with the
version), with the ISO week as the step (``2026-W48`` is step 202648), so the MLflow UI charts each
version's ROC AUC, accuracy, F1 of the not-recommended class and review count week by week. A week
below the monitoring floor, or more than the margin below the version's own test ROC AUC, is an
alert: it goes into the week's mail and the run's note.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from review_sentiment import names, schema, scoring, versions
from review_sentiment.config import DEFAULT_MONITOR_FLOOR, DEFAULT_MONITOR_MARGIN, Settings
from review_sentiment.errors import DataContractError

log = logging.getLogger(__name__)

# Fewer labelled reviews in a week than this give no point: too noisy to alert on.
MIN_REVIEWS = 50
METRICS = ("roc_auc", "accuracy", "f1_not_recommended")


@dataclass
class MonitorResult:
    """One week of the champion; small enough for XCom."""

    week: str
    version: str | None = None
    count: int = 0
    scores: dict[str, float] | None = None
    alert: str | None = None
    note: str = ""  # why there is no point, when there is none
    run_id: str | None = None  # the version's monitoring run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def week_step(week: str) -> int:
    """The MLflow step of an ISO week: ``2026-W48`` -> 202648 (steps sort as weeks do)."""
    year, number = week.split("-W")
    return int(year) * 100 + int(number)


def alert_for(
    scores: dict[str, float], own_test_auc: float | None, floor: float, margin: float
) -> str | None:
    """Why the week's ROC AUC is alarming (below the floor, or more than ``margin`` below the
    version's own test ROC AUC); None when it is not."""
    auc = scores["roc_auc"]
    if auc < floor:
        return (
            f"champion ROC AUC {auc:.4f} on the new week's reviews is below the monitoring floor {floor:.4f}"
        )
    if own_test_auc is not None and auc < own_test_auc - margin:
        return (
            f"champion ROC AUC {auc:.4f} on the new week's reviews is more than {margin:.4f} below its "
            f"test ROC AUC {own_test_auc:.4f}"
        )
    return None


def monitor_champion(
    source: str,
    start: datetime | None,
    end: datetime | None,
    *,
    settings: Settings,
    week: str,
    floor: float = DEFAULT_MONITOR_FLOOR,
    margin: float = DEFAULT_MONITOR_MARGIN,
) -> MonitorResult:
    """Score the champion on the reviews that arrived in ``[start, end)`` and log the point.

    Args:
        source: A resolved source (a file path, or a ``postgresql://...?table=`` URL).
        start: The run's data interval start.
        end: The run's data interval end.
        settings: Tracking URI, experiment and model name.
        week: The run's ISO week (the step).
        floor: Lowest acceptable ROC AUC on a week.
        margin: Largest acceptable drop below the version's test ROC AUC.
    """
    from review_sentiment.metrics import binary_metrics
    from review_sentiment.sources import is_postgres_source, read_table
    from review_sentiment.tracking import client, ensure_experiment
    from review_sentiment.validate import validate_reviews

    result = MonitorResult(week=week)
    mlflow_client = client(settings.tracking_uri)
    champion = versions.champion_version(mlflow_client, settings.model_name)
    if champion is None:
        result.note = "no champion to monitor yet"
        return result
    result.version = str(champion.version)
    if not is_postgres_source(source) or start is None or end is None:
        result.note = "a file source has no arrival times: there is no new week to score the champion on"
        return result
    try:
        frame, _ = validate_reviews(read_table(source, start, end), source="the new week", min_rows=0)
    except DataContractError as exc:
        result.note = f"no usable reviews arrived in {week}: {exc}"
        return result
    result.count = len(frame)
    if result.count < MIN_REVIEWS:
        result.note = f"only {result.count} labelled reviews arrived in {week} (fewer than {MIN_REVIEWS})"
        return result
    probability = scoring.score(f"models:/{settings.model_name}/{champion.version}", frame)
    labels = frame[schema.LABEL].to_numpy(dtype=int)
    result.scores = binary_metrics(labels, probability, versions.version_threshold(champion))
    own = champion.tags.get(f"{names.CANDIDATE_SCORES}roc_auc")
    result.alert = alert_for(result.scores, float(own) if own else None, floor, margin)
    experiment_id = ensure_experiment(settings.experiment_name, settings.tracking_uri)
    result.run_id = series_run(mlflow_client, experiment_id, settings.model_name, result.version)
    step = week_step(week)
    for key in METRICS:
        mlflow_client.log_metric(result.run_id, f"{names.MONITOR_PREFIX}{key}", result.scores[key], step=step)
    mlflow_client.log_metric(result.run_id, f"{names.MONITOR_PREFIX}reviews", result.count, step=step)
    log.info("champion v%s on %d reviews of %s: %s%s", result.version, result.count, week, result.scores,
             f"; ALERT: {result.alert}" if result.alert else "")  # fmt: skip
    return result


def series_run(
    mlflow_client: Any, experiment_id: str, model_name: str, version: str, role: str = names.ROLE_MONITOR
) -> str:
    """A champion version's series run of ``role`` (the weekly monitoring, ``monitor champion
    v<N>``; the predictions of scoring runs, ``predictions champion v<N>``), made on its first
    point (finished: points are added later)."""
    query = (
        f"tags.`{names.TAG_MONITORED_MODEL}` = '{model_name}' and "
        f"tags.`{names.TAG_MONITORED_VERSION}` = '{version}' and tags.`{names.TAG_ROLE}` = '{role}'"
    )
    found = mlflow_client.search_runs([experiment_id], query, max_results=1)
    if found:
        return found[0].info.run_id
    run = mlflow_client.create_run(
        experiment_id,
        run_name=f"{role} champion v{version}",
        tags={
            names.TAG_MONITORED_MODEL: model_name,
            names.TAG_MONITORED_VERSION: version,
            names.TAG_ROLE: role,
        },
    )
    mlflow_client.set_terminated(run.info.run_id)
    return run.info.run_id
