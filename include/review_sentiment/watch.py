"""Prediction monitoring without labels: what the champion predicts on each scoring run, against
what it predicted on its own test split when it was registered.

At registration, ``record`` stores the candidate's test-split probabilities as a
:class:`~review_sentiment.distribution.Reference` (decile edges and fractions, count, mean, share
labelled not-recommended) in the artifact ``monitoring/reference.json`` of the candidate's run
(:func:`save_reference`), so it travels with the version. After each ``sentiment_score`` run,
:func:`watch_predictions` reads the probabilities the run wrote and logs one point of the
version's prediction series in MLflow: one run per champion version (``predictions champion
v<N>``, tagged like the weekly ``monitor champion v<N>`` series of ``monitor.py``), with the run's
``run_after`` as the step (``yyyymmddHHMMSS``, so steps sort as runs do and a retried run writes
the same step). A point whose PSI passes the policy's threshold, or whose share labelled
not-recommended moved too far, carries an alert, which the DAG mails; the run stays green.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from review_sentiment import names
from review_sentiment.config import (
    DEFAULT_LABEL_SHARE_SHIFT,
    DEFAULT_PSI_ALERT,
    DEFAULT_PSI_BINS,
    DEFAULT_WATCH_MIN_REVIEWS,
    Settings,
)
from review_sentiment.distribution import Reference, Summary, bin_fractions, psi, reference_of, summarise

if TYPE_CHECKING:
    from review_sentiment.batch_score import Champion
    from review_sentiment.notify import Outcome

log = logging.getLogger(__name__)

METRICS = ("count", "mean_probability", "share_not_recommended", "psi")


@dataclass(frozen=True)
class WatchPolicy:
    """When a scoring run's predictions are alarming (defaults: ``config.py``)."""

    psi_alert: float = DEFAULT_PSI_ALERT
    label_share_shift: float = DEFAULT_LABEL_SHARE_SHIFT
    min_reviews: int = DEFAULT_WATCH_MIN_REVIEWS


@dataclass
class WatchResult:
    """One point of a champion version's prediction series; small enough for XCom."""

    model_name: str
    version: str
    step: int
    count: int = 0
    mean_probability: float | None = None
    share_not_recommended: float | None = None
    psi: float | None = None  # None: no reference to compare with, or nothing scored
    reference_share: float | None = None  # the test split's share labelled not-recommended
    alert: str | None = None
    note: str = ""  # what the point lacks, and why
    run_id: str | None = None  # the version's prediction series run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def figures(self) -> str:
        """One line: count, mean, share labelled not-recommended (and the test split's), PSI."""
        if not self.count:
            return "no reviews scored"
        share = f"{self.share_not_recommended:.1%} labelled not recommended"
        if self.reference_share is not None:
            share += f" (test split: {self.reference_share:.1%})"
        found = f"PSI {self.psi:.3f}" if self.psi is not None else "no PSI"
        return f"{self.count:,} reviews, mean probability {self.mean_probability:.4f}, {share}, {found}"

    def outcome(self, dag_id: str, run_id: str) -> Outcome:
        """The alert mail's outcome (``notify.py`` composes it)."""
        from review_sentiment.notify import Outcome

        return Outcome(kind="prediction_alert", dag_id=dag_id, run_id=run_id, reason=self.alert or "",
                       version=self.version, monitoring=self.figures())  # fmt: skip


def run_step(run_after: datetime) -> int:
    """The MLflow step of a scoring run: its ``run_after`` in UTC as ``yyyymmddHHMMSS``."""
    return int(run_after.astimezone(UTC).strftime("%Y%m%d%H%M%S"))


def alert_for(
    summary: Summary, shift: float | None, reference: Reference | None, policy: WatchPolicy
) -> str | None:
    """Why a run's predictions are alarming, or None: the PSI ``shift`` above the policy's, or the
    share labelled not-recommended more than the policy's shift away from the reference's. Never
    without a reference, nor on fewer reviews than the policy's minimum (too noisy)."""
    if reference is None or summary.count < policy.min_reviews:
        return None
    reasons = []
    if shift is not None and shift > policy.psi_alert:
        reasons.append(
            f"the PSI of the probabilities against the test split is {shift:.3f}, "
            f"above {policy.psi_alert:.3f}"
        )
    before, now = reference.summary.share_not_recommended, summary.share_not_recommended
    if before is not None and now is not None and abs(now - before) > policy.label_share_shift:
        reasons.append(
            f"{now:.1%} of the reviews are labelled not recommended, against {before:.1%} on the test "
            f"split (a shift above {policy.label_share_shift:.0%})"
        )
    return "; ".join(reasons) or None


def save_reference(
    mlflow_client: Any, run_id: str, probability: Any, threshold: float, bins: int = DEFAULT_PSI_BINS
) -> Reference:
    """Store ``probability`` (a candidate's test-split scores) in bins as the reference of its
    version's prediction monitoring: ``monitoring/reference.json`` of ``run_id``."""
    reference = reference_of(probability, threshold, bins)
    mlflow_client.log_dict(run_id, reference.to_dict(), names.REFERENCE_ARTIFACT)
    return reference


def load_reference(mlflow_client: Any, run_id: str) -> tuple[Reference | None, str]:
    """The reference stored with the version ``run_id`` registered, or None and why not."""
    folder = str(PurePosixPath(names.REFERENCE_ARTIFACT).parent)
    if names.REFERENCE_ARTIFACT not in {a.path for a in mlflow_client.list_artifacts(run_id, folder)}:
        return None, (
            f"no reference distribution is stored with its run ({names.REFERENCE_ARTIFACT}; versions "
            "registered before prediction monitoring have none)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow_client.download_artifacts(run_id, names.REFERENCE_ARTIFACT, tmp)
        try:
            return Reference.from_dict(json.loads(Path(path).read_text())), ""
        except (ValueError, KeyError, TypeError) as exc:
            return None, f"its reference distribution cannot be read: {exc}"


def watch_predictions(
    target: str,
    output_path: Path,
    champion: Champion,
    *,
    dag_run_id: str,
    run_after: datetime,
    settings: Settings,
    policy: WatchPolicy | None = None,
) -> WatchResult:
    """Log one point of ``champion``'s prediction series from what the scoring run wrote.

    Args:
        target: Where the run wrote: ``parquet``, or a ``postgresql://...?table=`` URL.
        output_path: The run's Parquet file (a ``parquet`` target).
        champion: The version the run scored with.
        dag_run_id: The scoring run (its predictions carry it).
        run_after: When the run was due (the step).
        settings: Tracking URI and experiment.
        policy: When to alert (default: :class:`WatchPolicy`'s).

    Raises:
        ValueError: a stored probability is not a finite number in [0, 1].
    """
    from review_sentiment.predictions import read_probabilities

    probability = read_probabilities(target, output_path, dag_run_id, champion.version)
    return watch(
        probability, champion, run_after=run_after, settings=settings, policy=policy or WatchPolicy()
    )


def watch(
    probability: Any, champion: Champion, *, run_after: datetime, settings: Settings, policy: WatchPolicy
) -> WatchResult:
    """Compare ``probability`` (one scoring run's) with the champion's reference, log the point,
    decide the alert (see :func:`watch_predictions`)."""
    from review_sentiment.monitor import series_run
    from review_sentiment.tracking import client, ensure_experiment

    mlflow_client = client(settings.tracking_uri)
    summary = summarise(probability, champion.threshold)
    result = WatchResult(champion.model_name, champion.version, run_step(run_after), summary.count,
                         summary.mean_probability, summary.share_not_recommended)  # fmt: skip
    version = mlflow_client.get_model_version(champion.model_name, champion.version)
    reference, why = load_reference(mlflow_client, version.run_id)
    if reference is None:
        result.note = f"v{champion.version}: {why}; the point has no PSI"
    elif not summary.count:
        result.note = "no reviews were scored: the point has the count only"
    else:
        result.psi = psi(reference.fractions, bin_fractions(probability, reference.edges))
        result.reference_share = reference.summary.share_not_recommended
        if summary.count < policy.min_reviews:
            result.note = (
                f"only {summary.count} reviews scored (fewer than {policy.min_reviews}): too few to alert on"
            )
    result.alert = alert_for(summary, result.psi, reference, policy)
    experiment_id = ensure_experiment(settings.experiment_name, settings.tracking_uri)
    result.run_id = series_run(mlflow_client, experiment_id, champion.model_name, champion.version,
                               names.ROLE_PREDICTIONS)  # fmt: skip
    _log_point(mlflow_client, result, run_after)
    alert = f"; ALERT: {result.alert}" if result.alert else ""
    log.info("predictions of v%s: %s%s%s", champion.version, result.figures(),
             f"; {result.note}" if result.note else "", alert)  # fmt: skip
    return result


def _log_point(mlflow_client: Any, result: WatchResult, run_after: datetime) -> None:
    """The point's figures (those it has) at its step, in one call."""
    from mlflow.entities import Metric

    stamp = int(run_after.timestamp() * 1000)
    values = {key: getattr(result, key) for key in METRICS}
    metrics = [
        Metric(f"{names.PREDICTIONS_PREFIX}{key}", float(value), stamp, result.step)
        for key, value in values.items()
        if value is not None
    ]
    mlflow_client.log_batch(result.run_id, metrics=metrics)
