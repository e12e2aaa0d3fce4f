"""Register: pick the best grid run, score it on test, register it, and promote it only through
the gate (``gate.py``), under the promotion lock (``promotion.py``), recording every figure on
the version (``registry.py``) and an evaluation report on the run (``report.py``)."""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from review_sentiment import names, registry, schema, scoring
from review_sentiment.config import CHALLENGER_ALIAS, CHAMPION_ALIAS, DEFAULT_PROMOTION_FLOOR, Settings
from review_sentiment.errors import GateRefused
from review_sentiment.gate import gate
from review_sentiment.metrics import binary_metrics
from review_sentiment.registry import RegisterResult
from review_sentiment.tokenize import Tokenized
from review_sentiment.tracking import client, model_uri

log = logging.getLogger(__name__)

__all__ = ["RegisterResult", "gate", "register", "require_promoted", "select_best_run"]


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


@dataclass
class _Evidence:
    """What the gate weighs besides the champion, gathered before the lock is taken."""

    candidate: dict[str, float]
    probability: Any
    threshold: float
    baseline_run_id: str | None
    drift: Any  # drift.DriftResult | None
    baseline: Any = None  # baseline.BaselineScores | None


@dataclass
class _Decision:
    """The gate's verdict and the champion it was weighed against."""

    promote: bool
    reason: str
    champion_version: str | None = None
    champion_p: Any = None
    champion_threshold: float | None = None
    champion_scores: dict[str, float] | None = None


def register(
    run_ids: list[str],
    manifest_path: str | Path,
    *,
    settings: Settings | None = None,
    baseline_run_id: str | None = None,
    label_stats_path: str | Path | None = None,
    floor: float = DEFAULT_PROMOTION_FLOOR,
    pipeline_run_id: str | None = None,
    force: bool = False,
    beat_baseline: bool = True,
) -> RegisterResult:
    """Register the best grid run as a new version, report on it, promote it through the gate.

    The new version always gets the ``challenger`` alias; ``champion`` moves only when the gate
    passes. The read-compare-set of ``champion`` runs under the promotion lock, so two runs
    registering at once cannot both win: the later one compares against the earlier's result.

    Idempotent per pipeline run (``pipeline_run_id``, else the best run id): a second call
    finds the version it made, creates none and moves no alias.

    Args:
        run_ids: MLflow run ids of the grid.
        manifest_path: The tokenize manifest, whose test split every model is scored on.
        settings: Tracking URI, model name, artifact layout and lock (default: the environment's).
        baseline_run_id: The run of this pipeline run's linear baseline (None: no baseline).
        label_stats_path: Ingest's label statistics (None: no drift check).
        floor: Lowest test ROC AUC a champion may have.
        pipeline_run_id: Id of the pipeline run (``<dag_id>/<run_id>``) for idempotency.
        force: Promote even if the gate refuses (recorded as forced).
        beat_baseline: Require the candidate to beat the baseline (off for quick plumbing runs
            whose tiny models cannot; the baseline's scores are recorded either way).

    Returns:
        The decision, version and scores.
    """
    settings = settings or Settings.from_env()
    tracking_uri, model_name = settings.tracking_uri, settings.model_name
    mlflow_client = client(tracking_uri)
    best = select_best_run(run_ids, tracking_uri)
    existing = registry.find_version(mlflow_client, model_name, best, pipeline_run_id)
    if existing is not None and names.TAG_DECISION in existing.tags:
        log.info("version %s already registered for this run; nothing to do", existing.version)
        return registry.result_from_tags(model_name, existing, reused=True)

    data = Tokenized(manifest_path)
    test = data.frame("test")
    best_run = mlflow_client.get_run(best)
    evidence = _gather(data, test, best_run, baseline_run_id, label_stats_path, settings)
    if existing is None:
        existing = registry.register_version(model_uri(best, tracking_uri), model_name, pipeline_run_id)
    version = str(existing.version)
    for key, value in evidence.candidate.items():
        mlflow_client.log_metric(best, f"test_{key}", value)

    decision = _decide_under_lock(
        mlflow_client,
        version,
        test,
        evidence,
        settings=settings,
        policy={"floor": floor, "force": force, "beat_baseline": beat_baseline},
        on_promote=lambda: _save_drift_reference(label_stats_path, settings, pipeline_run_id),
    )
    _log_report(mlflow_client, best_run, version, data, test, evidence, decision, model_name)
    outcome = names.DECISION_PROMOTED if decision.promote else names.DECISION_REFUSED
    mlflow_client.set_model_version_tag(model_name, version, names.TAG_DECISION, outcome)
    result = RegisterResult(
        model_name=model_name,
        version=version,
        run_id=best,
        promoted=decision.promote,
        reason=decision.reason,
        candidate=evidence.candidate,
        champion=decision.champion_scores,
        champion_version=decision.champion_version,
        baseline=evidence.baseline.scores if evidence.baseline else None,
    )
    log.info("register: %s", result.summary())
    return result


def _gather(
    data: Tokenized,
    test: Any,
    best_run: Any,
    baseline_run_id: str | None,
    label_stats_path: str | Path | None,
    settings: Settings,
) -> _Evidence:
    """The candidate's and the baseline's test scores, each at its own threshold, and the drift."""
    from review_sentiment.baseline import baseline_on

    threshold = float(best_run.data.metrics.get(names.METRIC_THRESHOLD, 0.5))
    probability = scoring.score(model_uri(best_run.info.run_id, settings.tracking_uri), test)
    labels = test[schema.LABEL].to_numpy(dtype=int)
    return _Evidence(
        candidate=binary_metrics(labels, probability, threshold),
        probability=probability,
        threshold=threshold,
        baseline_run_id=baseline_run_id,
        drift=_label_drift(label_stats_path, settings),
        baseline=baseline_on(baseline_run_id, test, settings.tracking_uri) if baseline_run_id else None,
    )


def _label_drift(label_stats_path: str | Path | None, settings: Settings) -> Any:
    """This run's label shares against the last promoted run's (None: no drift check asked)."""
    if label_stats_path is None:
        return None
    from review_sentiment import drift

    current = drift.load_label_stats(label_stats_path)
    return drift.check_label_drift(current, drift.load_reference_stats(settings.layout, settings.model_name))


def _save_drift_reference(
    label_stats_path: str | Path | None, settings: Settings, pipeline_run_id: str | None
) -> None:
    """After a promotion: this run's label shares become the reference of the next drift check."""
    if label_stats_path is None:
        return
    from review_sentiment import drift

    stats = drift.load_label_stats(label_stats_path)
    drift.save_reference_stats(settings.layout, settings.model_name, stats, pipeline_run_id=pipeline_run_id)


def _decide_under_lock(
    mlflow_client: Any,
    version: str,
    test: Any,
    evidence: _Evidence,
    *,
    settings: Settings,
    policy: dict[str, Any],
    on_promote: Callable[[], None],
) -> _Decision:
    """Read and score the champion, gate, tag the version and move the aliases, all under the
    promotion lock, so that two runs registering at once cannot both win."""
    from review_sentiment.promotion import promotion_lock

    model_name = settings.model_name
    with promotion_lock(model_name, lock_uri=settings.lock_target(), timeout=settings.lock_timeout_s):
        # Read the champion only now, under the lock: a run that promoted meanwhile is seen.
        decision = _Decision(promote=False, reason="")
        champion = registry.champion_version(mlflow_client, model_name)
        if champion is not None and str(champion.version) != version:  # else: a retry of this one
            decision.champion_version = str(champion.version)
            decision.champion_p = scoring.score(f"models:/{model_name}/{champion.version}", test)
            decision.champion_threshold = registry.version_threshold(champion)
            decision.champion_scores = binary_metrics(
                test[schema.LABEL].to_numpy(dtype=int), decision.champion_p, decision.champion_threshold
            )
        baseline = evidence.baseline.scores if evidence.baseline else None
        drifted = evidence.drift is not None and evidence.drift.drifted
        decision.promote, decision.reason = gate(
            evidence.candidate["roc_auc"],
            decision.champion_scores["roc_auc"] if decision.champion_scores else None,
            policy["floor"],
            policy["force"],
            baseline_auc=baseline["roc_auc"] if baseline and policy["beat_baseline"] else None,
            drift=evidence.drift.reason if drifted else None,
        )
        tags = registry.decision_tags(
            candidate=evidence.candidate,
            threshold=evidence.threshold,
            baseline=baseline,
            baseline_run_id=evidence.baseline_run_id,
            champion=decision.champion_scores,
            champion_version=decision.champion_version,
            reason=decision.reason,
            **policy,
        )
        if evidence.drift is not None:
            tags.update(evidence.drift.to_tags())
        registry.set_tags(mlflow_client, model_name, version, tags)
        mlflow_client.set_registered_model_alias(model_name, CHALLENGER_ALIAS, version)
        if decision.promote:
            mlflow_client.set_registered_model_alias(model_name, CHAMPION_ALIAS, version)
            on_promote()
    return decision


def _log_report(
    mlflow_client: Any,
    run: Any,
    version: str,
    data: Tokenized,
    test: Any,
    evidence: _Evidence,
    decision: _Decision,
    model_name: str,
) -> None:
    """Write the evaluation report, log it under ``evaluation/`` of the run, make the card the
    version's description. Every model in it is scored at its own threshold."""
    from review_sentiment.report import Scored, card_facts, write_report

    others = []
    if evidence.baseline is not None:
        others.append(
            Scored("TF-IDF + LR baseline", evidence.baseline.probability, evidence.baseline.threshold)
        )
    if decision.champion_p is not None:
        others.append(
            Scored(f"champion v{decision.champion_version}", decision.champion_p, decision.champion_threshold)
        )
    with tempfile.TemporaryDirectory() as tmp:
        report = write_report(
            tmp,
            test,
            Scored(f"candidate v{version}", evidence.probability, evidence.threshold),
            others=others,
            card=card_facts(model_name, version, run, data, decision.reason),
        )
        mlflow_client.log_artifacts(run.info.run_id, tmp, artifact_path=names.REPORT_ARTIFACT_PATH)
    mlflow_client.update_model_version(model_name, version, description=report["model_card"])
    mlflow_client.set_model_version_tag(
        model_name, version, names.TAG_REPORT, f"runs:/{run.info.run_id}/{names.REPORT_ARTIFACT_PATH}"
    )


def require_promoted(result: RegisterResult) -> RegisterResult:
    """Raise ``GateRefused`` when ``result`` was not promoted (for callers that must fail)."""
    if not result.promoted:
        raise GateRefused(f"version {result.version} not promoted: {result.reason}")
    return result
