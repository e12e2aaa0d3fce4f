"""Register's first step, gather: the best grid run, its test scores, the baseline's, the drift
of the week's new reviews from the champion's training data (``drift.py``), and the champion
against the candidate on the test reviews neither was trained on.

Nothing here writes to MLflow; ``record.py`` does, once the gate (``gate.py``) has judged.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from review_sentiment import names, schema, scoring, versions
from review_sentiment.config import Settings
from review_sentiment.drift import check_against_champion, snapshot_tag
from review_sentiment.errors import GateRefused
from review_sentiment.gate import MIN_COMPARISON_REVIEWS, GateFacts
from review_sentiment.metrics import binary_metrics
from review_sentiment.tokenize import Tokenized
from review_sentiment.tracking import client, model_uri

log = logging.getLogger(__name__)


def select_best_run(run_ids: list[str], tracking_uri: str | None = None) -> str:
    """The finished run with the highest validation ROC AUC.

    Raises:
        GateRefused: no run finished with a finite validation score.
    """
    mlflow_client = client(tracking_uri)
    scored = []
    for run_id in run_ids:
        run = mlflow_client.get_run(run_id)
        value = run.data.metrics.get(names.VALIDATION_METRIC, math.nan)
        if run.info.status == "FINISHED" and math.isfinite(value):
            scored.append((value, run_id))
    if not scored:
        raise GateRefused(
            f"none of the {len(run_ids)} grid runs finished with a finite {names.VALIDATION_METRIC}"
        )
    return max(scored)[1]


@dataclass(frozen=True)
class Comparison:
    """The champion against the candidate on the comparison set: the test reviews that neither
    model was trained or early-stopped on. :data:`NO_CHAMPION` when there is no champion to
    compare with; ``unavailable`` says why when there is one but no fair comparison."""

    champion_version: str | None
    size: int | None = 0
    candidate: dict[str, float] | None = None
    champion: dict[str, float] | None = None
    unavailable: str | None = None  # why there is no fair comparison
    champion_p: Any = None  # on the whole test split, for the report
    champion_threshold: float | None = None
    difference: Any = None  # uncertainty.Difference on the comparison set (None: not compared)

    @property
    def auc_difference(self) -> Any:
        """The candidate - champion ROC AUC interval (an ``uncertainty.Interval``), or None."""
        return None if self.difference is None else self.difference.roc_auc

    @property
    def champion_auc(self) -> float | None:
        """The champion's ROC AUC on the comparison set (None: not compared)."""
        return None if self.champion is None else self.champion["roc_auc"]

    @property
    def candidate_auc(self) -> float | None:
        """The candidate's ROC AUC on the comparison set (None: not compared)."""
        return None if self.candidate is None else self.candidate["roc_auc"]


NO_CHAMPION = Comparison(champion_version=None, size=None)


@dataclass(frozen=True)
class Evidence:
    """Everything the gate weighs and the record keeps, gathered before anything is written."""

    run: Any  # the best grid run (mlflow.entities.Run)
    data: Tokenized
    test: Any  # the test split (pandas.DataFrame)
    candidate: dict[str, float]  # at its own threshold, on the whole test split
    probability: Any
    threshold: float
    baseline_run_id: str | None
    drift: Any  # drift.DriftResult | None (None: no check asked)
    baseline: Any  # baseline.BaselineScores | None
    comparison: Comparison
    training_snapshot: dict[str, str] = dataclasses.field(default_factory=dict)  # its version tag

    @property
    def drift_reason(self) -> str:
        """Why the week's reviews drifted from the champion's ("" when they did not)."""
        return self.drift.reason if self.drift is not None and self.drift.drifted else ""

    @property
    def baseline_scores(self) -> dict[str, float] | None:
        return None if self.baseline is None else self.baseline.scores

    def facts(self) -> GateFacts:
        """The figures the gate weighs."""
        comparison = self.comparison
        scores = self.baseline_scores
        return GateFacts(
            candidate_auc=self.candidate["roc_auc"],
            baseline_auc=None if scores is None else scores["roc_auc"],
            cannot_compare=comparison.unavailable or "",
            champion_auc=comparison.champion_auc,
            compared_auc=comparison.candidate_auc,
            comparison_size=comparison.size,
            auc_difference=comparison.auc_difference,
        )


def gather(
    best_run: Any,
    manifest_path: str | Path,
    *,
    settings: Settings,
    baseline_run_id: str | None,
    snapshot_path: str | Path | None,
    registered: str | None,
) -> Evidence:
    """The candidate's and the baseline's test scores (each at its own threshold), the drift, and
    the comparison with the champion.

    Args:
        best_run: The grid run to register.
        manifest_path: The tokenize manifest, whose test split every model is scored on.
        settings: Tracking URI and model name.
        baseline_run_id: The run of this pipeline run's linear baseline (None: no baseline).
        snapshot_path: This run's ingest snapshot: checked for drift against the champion's and
            tagged on the version for the next weeks' checks (None: neither).
        registered: The version an earlier try registered for the candidate (never compared with
            itself, should it hold the champion alias), or None.
    """
    from review_sentiment.baseline import baseline_on

    data = Tokenized(manifest_path)
    test = data.frame("test")
    threshold = float(best_run.data.metrics.get(names.METRIC_THRESHOLD, 0.5))
    probability = scoring.score(model_uri(best_run.info.run_id, settings.tracking_uri), test)
    candidate = binary_metrics(test[schema.LABEL].to_numpy(dtype=int), probability, threshold)
    baseline = baseline_on(baseline_run_id, test, settings.tracking_uri) if baseline_run_id else None
    champion = versions.champion_version(client(settings.tracking_uri), settings.model_name)
    drift = None
    if snapshot_path is not None:
        drift = check_against_champion(snapshot_path, champion, settings.layout)
        log.info("drift: %s", drift.reason)
    comparison = NO_CHAMPION
    if champion is not None and str(champion.version) != registered:
        comparison = compare(champion, test, probability, threshold, settings)
    return Evidence(
        run=best_run, data=data, test=test, candidate=candidate, probability=probability,
        threshold=threshold, baseline_run_id=baseline_run_id, drift=drift, baseline=baseline,
        comparison=comparison, training_snapshot=snapshot_tag(snapshot_path, settings.layout),
    )  # fmt: skip


def compare(champion: Any, test: Any, probability: Any, threshold: float, settings: Settings) -> Comparison:
    """Score the champion and the candidate on the test reviews the champion was not trained or
    early-stopped on (the candidate saw none of the test split).

    Args:
        champion: The champion's MLflow ``ModelVersion``.
        test: The test split.
        probability: The candidate's probabilities on ``test``, row for row.
        threshold: The candidate's decision threshold.
        settings: Tracking URI and model name.
    """
    version = str(champion.version)
    champion_threshold = versions.version_threshold(champion)
    champion_p = scoring.score(f"models:/{settings.model_name}/{version}", test)
    found = Comparison(version, champion_p=champion_p, champion_threshold=champion_threshold)
    seen = versions.seen_reviews(champion, settings.tracking_uri)
    if seen is None:
        unavailable = (
            f"cannot compare fairly with champion v{version}: it has no record of the reviews it was "
            "trained on (registered before such records were kept), and the snapshot has no arrival "
            "times to pick newer reviews; promote with force_promote after a review"
        )
        return dataclasses.replace(found, unavailable=unavailable)
    unseen = ~test[schema.ID].isin(seen).to_numpy()
    size = int(unseen.sum())
    if size < MIN_COMPARISON_REVIEWS:
        unavailable = (
            f"only {size} test reviews are unseen by champion v{version} (fewer than "
            f"{MIN_COMPARISON_REVIEWS}): too few to compare the two fairly"
        )
        return dataclasses.replace(found, size=size, unavailable=unavailable)
    labels = test[schema.LABEL].to_numpy(dtype=int)[unseen]
    return dataclasses.replace(
        found,
        size=size,
        champion=binary_metrics(labels, champion_p[unseen], champion_threshold),
        candidate=binary_metrics(labels, probability[unseen], threshold),
        difference=_difference(
            labels, probability[unseen], champion_p[unseen], (threshold, champion_threshold)
        ),
    )


def _difference(labels: Any, candidate: Any, champion: Any, thresholds: tuple[float, float]) -> Any:
    """The paired bootstrap of candidate - champion (``uncertainty.Difference``), or None where no
    AUC is defined (one class, a diverged model: the gate judges those by their NaN scores)."""
    import numpy as np

    from review_sentiment.uncertainty import paired_bootstrap

    scores = np.concatenate([np.asarray(candidate, dtype=float), np.asarray(champion, dtype=float)])
    if len(np.unique(labels)) < 2 or not np.all(np.isfinite(scores)):
        return None
    return paired_bootstrap(labels, candidate, champion, thresholds)
