"""Register: pick the best grid run, score it on test, register it as the ``challenger`` and weigh
it with the gate (``gate.py``) against the champion on the test reviews neither model was trained
on, recording every figure on the version (``registry.py``) and an evaluation report on the run
(``report.py``). The week then either promotes it (``promote``: moves ``champion`` under the
promotion lock, ``promotion.py``) or keeps the champion (``keep_champion``): a refusal is an
outcome, not an error."""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from review_sentiment import names, registry, schema, scoring
from review_sentiment.config import CHALLENGER_ALIAS, CHAMPION_ALIAS, DEFAULT_PROMOTION_FLOOR, Settings
from review_sentiment.errors import GateRefused
from review_sentiment.gate import MIN_COMPARISON_REVIEWS, gate
from review_sentiment.metrics import binary_metrics
from review_sentiment.registry import RegisterResult
from review_sentiment.tokenize import Tokenized
from review_sentiment.tracking import client, model_uri

log = logging.getLogger(__name__)

__all__ = [
    "RegisterResult", "gate", "keep_champion", "promote", "register", "register_candidate",
    "select_best_run",
]  # fmt: skip


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
class _Comparison:
    """The champion against the candidate on the comparison set: the test reviews that neither
    model was trained or early-stopped on."""

    champion_version: str
    size: int = 0
    candidate: dict[str, float] | None = None
    champion: dict[str, float] | None = None
    unavailable: str | None = None  # why there is no fair comparison
    champion_p: Any = None  # on the whole test split, for the report
    champion_threshold: float | None = None


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
    """The whole week in one call (the CLI's and library users' path): register the candidate,
    then promote it if the gate passed, else keep the champion. Arguments as for
    :func:`register_candidate`."""
    settings = settings or Settings.from_env()
    result = register_candidate(
        run_ids, manifest_path, settings=settings, baseline_run_id=baseline_run_id,
        label_stats_path=label_stats_path, floor=floor, pipeline_run_id=pipeline_run_id, force=force,
        beat_baseline=beat_baseline,
    )  # fmt: skip
    if result.outcome is not None:
        return result
    if result.passed:
        return promote(result, manifest_path, settings=settings, label_stats_path=label_stats_path,
                       pipeline_run_id=pipeline_run_id)  # fmt: skip
    return keep_champion(result, settings=settings)


def register_candidate(
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
    """Register the best grid run as a new version (alias ``challenger``), report on it, and record
    the gate's verdict against the current champion. Moves no ``champion`` alias.

    Idempotent per pipeline run (``pipeline_run_id``, else the best run id): a second call
    finds the version it made and returns what the first decided.

    Args:
        run_ids: MLflow run ids of the grid.
        manifest_path: The tokenize manifest, whose test split every model is scored on.
        settings: Tracking URI, model name, artifact layout and lock (default: the environment's).
        baseline_run_id: The run of this pipeline run's linear baseline (None: no baseline).
        label_stats_path: Ingest's label statistics (None: no drift check).
        floor: Lowest test ROC AUC a champion may have.
        pipeline_run_id: Id of the pipeline run (``<dag_id>/<run_id>``) for idempotency.
        force: Pass the gate whatever it finds (recorded as forced).
        beat_baseline: Require the candidate to beat the baseline (off for quick plumbing runs
            whose tiny models cannot; the baseline's scores are recorded either way).

    Returns:
        The verdict, version and scores (``outcome`` None until promote or keep_champion).
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
    if evidence.baseline is not None:
        margin = evidence.candidate["roc_auc"] - evidence.baseline.scores["roc_auc"]
        mlflow_client.log_metric(best, names.METRIC_BASELINE_MARGIN, margin)
    seen = [*data.frame("train")[schema.ID], *data.frame("validation")[schema.ID]]
    registry.set_tags(
        mlflow_client, model_name, version, registry.record_seen_reviews(mlflow_client, best, seen)
    )

    champion = registry.champion_version(mlflow_client, model_name)
    comparison = None
    if champion is not None and str(champion.version) != version:
        comparison = _compare(champion, test, evidence, settings)
    baseline = evidence.baseline.scores if evidence.baseline else None
    drifted = evidence.drift is not None and evidence.drift.drifted
    has_scores = comparison is not None and comparison.champion is not None
    passed, reason = gate(
        evidence.candidate["roc_auc"],
        comparison.champion["roc_auc"] if has_scores else None,
        floor,
        force,
        baseline_auc=baseline["roc_auc"] if baseline and beat_baseline else None,
        drift=evidence.drift.reason if drifted else None,
        compared_auc=comparison.candidate["roc_auc"] if has_scores else None,
        comparison_size=comparison.size if comparison else None,
        cannot_compare=comparison.unavailable if comparison else None,
    )
    tags = registry.decision_tags(
        candidate=evidence.candidate,
        threshold=evidence.threshold,
        baseline=baseline,
        baseline_run_id=evidence.baseline_run_id,
        champion=comparison.champion if comparison else None,
        champion_version=comparison.champion_version if comparison else None,
        compared=comparison.candidate if comparison else None,
        comparison_size=comparison.size if comparison else None,
        reason=reason,
        floor=floor,
        force=force,
        beat_baseline=beat_baseline,
    )
    if evidence.drift is not None:
        tags.update(evidence.drift.to_tags())
    registry.set_tags(mlflow_client, model_name, version, tags)
    _name_challenger(mlflow_client, version, settings)
    _log_report(mlflow_client, best_run, version, data, test, evidence, comparison, reason, model_name)
    verdict = names.DECISION_PASSED if passed else names.DECISION_REFUSED
    mlflow_client.set_model_version_tag(model_name, version, names.TAG_DECISION, verdict)  # written last
    result = RegisterResult(
        model_name=model_name,
        version=version,
        run_id=best,
        promoted=False,
        passed=passed,
        reason=reason,
        candidate=evidence.candidate,
        champion=comparison.champion if comparison else None,
        champion_version=comparison.champion_version if comparison else None,
        baseline=baseline,
        compared=comparison.candidate if comparison else None,
        comparison_size=comparison.size if comparison else None,
        experiment_id=best_run.info.experiment_id,
    )
    log.info("register: %s", result.summary())
    return result


def _name_challenger(mlflow_client: Any, version: str, settings: Settings) -> None:
    """Point ``challenger`` at ``version`` unless a newer version already holds it.

    Under the promotion lock: MLflow sets an alias by read-then-insert, so two runs naming their
    versions at once can fail on the alias table's unique key (seen in the register race test).
    """
    from review_sentiment.promotion import promotion_lock

    model_name = settings.model_name
    with promotion_lock(model_name, lock_uri=settings.lock_target(), timeout=settings.lock_timeout_s):
        current = registry.alias_version(mlflow_client, model_name, CHALLENGER_ALIAS)
        if current is None or int(current.version) < int(version):
            mlflow_client.set_registered_model_alias(model_name, CHALLENGER_ALIAS, version)


def _compare(champion: Any, test: Any, evidence: _Evidence, settings: Settings) -> _Comparison:
    """Score the champion and the candidate on the test reviews the champion was not trained or
    early-stopped on (the candidate saw none of the test split)."""
    version = str(champion.version)
    comparison = _Comparison(
        champion_version=version, champion_threshold=registry.version_threshold(champion)
    )
    comparison.champion_p = scoring.score(f"models:/{settings.model_name}/{version}", test)
    seen = registry.seen_reviews(champion, settings.tracking_uri)
    if seen is None:
        comparison.unavailable = (
            f"cannot compare fairly with champion v{version}: it has no record of the reviews it was "
            "trained on (registered before such records were kept), and the snapshot has no arrival "
            "times to pick newer reviews; promote with force_promote after a review"
        )
        return comparison
    unseen = ~test[schema.ID].isin(seen).to_numpy()
    comparison.size = int(unseen.sum())
    if comparison.size < MIN_COMPARISON_REVIEWS:
        comparison.unavailable = (
            f"only {comparison.size} test reviews are unseen by champion v{version} (fewer than "
            f"{MIN_COMPARISON_REVIEWS}): too few to compare the two fairly"
        )
        return comparison
    labels = test[schema.LABEL].to_numpy(dtype=int)[unseen]
    comparison.champion = binary_metrics(labels, comparison.champion_p[unseen], comparison.champion_threshold)
    comparison.candidate = binary_metrics(labels, evidence.probability[unseen], evidence.threshold)
    return comparison


def promote(
    result: RegisterResult,
    manifest_path: str | Path,
    *,
    settings: Settings | None = None,
    label_stats_path: str | Path | None = None,
    pipeline_run_id: str | None = None,
) -> RegisterResult:
    """Move ``champion`` to the version ``register_candidate`` passed, under the promotion lock.

    Idempotent: a version already promoted is not promoted again (nor moved back to, if a later
    version took the alias since). Race-safe: if another run moved ``champion`` after this run's
    comparison, the candidate is compared again with the new champion, under the lock, and the
    champion is kept if the candidate is worse.
    """
    from review_sentiment.promotion import promotion_lock

    settings = settings or Settings.from_env()
    mlflow_client = client(settings.tracking_uri)
    model_name, version = settings.model_name, result.version
    with promotion_lock(model_name, lock_uri=settings.lock_target(), timeout=settings.lock_timeout_s):
        current = mlflow_client.get_model_version(model_name, version)
        if current.tags.get(names.TAG_OUTCOME) == names.OUTCOME_PROMOTED:
            log.info("version %s was already promoted by this run; nothing to do", version)
            return registry.result_from_tags(model_name, current, reused=True)
        champion = registry.champion_version(mlflow_client, model_name)
        forced = current.tags.get(names.TAG_FORCED) == "true"
        moved = champion is not None and str(champion.version) not in (version, result.champion_version)
        if moved and not forced:
            reason = _still_better(champion, manifest_path, result, settings)
            if reason is not None:
                return keep_champion(result, settings=settings, reason=reason)
        mlflow_client.set_registered_model_alias(model_name, CHAMPION_ALIAS, version)
        registry.set_outcome(mlflow_client, model_name, version, names.OUTCOME_PROMOTED, result.reason)
        _save_drift_reference(label_stats_path, settings, pipeline_run_id)
    promoted = RegisterResult(**{**result.to_dict(), "promoted": True, "outcome": names.OUTCOME_PROMOTED})
    log.info("promote: %s", promoted.summary())
    return promoted


def _still_better(
    champion: Any, manifest_path: str | Path, result: RegisterResult, settings: Settings
) -> str | None:
    """None if the candidate is no worse than ``champion`` (which took the alias after the
    candidate's comparison) on their comparison set; else why the champion stays."""
    data = Tokenized(manifest_path)
    test = data.frame("test")
    probability = scoring.score(model_uri(result.run_id, settings.tracking_uri), test)
    evidence = _Evidence(
        candidate={}, probability=probability, threshold=result.candidate.get("threshold", 0.5),
        baseline_run_id=None, drift=None,
    )  # fmt: skip
    version_tags = client(settings.tracking_uri).get_model_version(settings.model_name, result.version).tags
    evidence.threshold = float(version_tags.get(names.TAG_THRESHOLD, evidence.threshold))
    comparison = _compare(champion, test, evidence, settings)
    moved = f"champion moved to v{comparison.champion_version} after this run's comparison"
    if comparison.unavailable:
        return f"{moved}; {comparison.unavailable}"
    mine, theirs = comparison.candidate["roc_auc"], comparison.champion["roc_auc"]
    if mine < theirs:
        return (
            f"{moved}, and the candidate's ROC AUC {mine:.4f} is worse than its {theirs:.4f} on the "
            f"{comparison.size} test reviews neither model was trained on"
        )
    return None


def keep_champion(
    result: RegisterResult, *, settings: Settings | None = None, reason: str | None = None
) -> RegisterResult:
    """Record that the week kept the champion (the version stays ``challenger``); idempotent."""
    settings = settings or Settings.from_env()
    why = reason or result.reason
    registry.set_outcome(
        client(settings.tracking_uri), settings.model_name, result.version, names.OUTCOME_KEPT, why
    )
    kept = RegisterResult(
        **{**result.to_dict(), "promoted": False, "outcome": names.OUTCOME_KEPT, "reason": why}
    )
    log.info("keep_champion: %s", kept.summary())
    return kept


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


def _log_report(
    mlflow_client: Any,
    run: Any,
    version: str,
    data: Tokenized,
    test: Any,
    evidence: _Evidence,
    comparison: _Comparison | None,
    reason: str,
    model_name: str,
) -> None:
    """Write the evaluation report, log it under ``evaluation/`` of the run, make the card the
    version's description. Every model in it is scored at its own threshold."""
    from review_sentiment.report import BASELINE_NAME, Scored, card_facts, write_report

    others = []
    if evidence.baseline is not None:
        others.append(Scored(BASELINE_NAME, evidence.baseline.probability, evidence.baseline.threshold))
    if comparison is not None and comparison.champion_p is not None:
        # On the whole test split, like the others; the gate's comparison is on the reviews the
        # champion did not see (tags, model card reason).
        others.append(
            Scored(
                f"champion v{comparison.champion_version}",
                comparison.champion_p,
                comparison.champion_threshold,
            )
        )
    with tempfile.TemporaryDirectory() as tmp:
        report = write_report(
            tmp,
            test,
            Scored(f"candidate v{version}", evidence.probability, evidence.threshold),
            others=others,
            card=card_facts(model_name, version, run, data, reason),
        )
        mlflow_client.log_artifacts(run.info.run_id, tmp, artifact_path=names.REPORT_ARTIFACT_PATH)
    mlflow_client.update_model_version(model_name, version, description=report["model_card"])
    mlflow_client.set_model_version_tag(
        model_name, version, names.TAG_REPORT, f"runs:/{run.info.run_id}/{names.REPORT_ARTIFACT_PATH}"
    )
