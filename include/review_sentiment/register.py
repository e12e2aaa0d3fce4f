"""Register: pick the best grid run, score it on test, register it as the ``challenger`` and weigh
it against the champion on the test reviews neither model was trained on. Three steps:

* gather (``evidence.py``): the candidate's, the baseline's and the champion's scores, the drift
  of the week's new reviews from the champion's training data (``drift.py``);
* judge (``gate.py``): the gate weighs them under a :class:`~review_sentiment.gate.GatePolicy`;
* record (``record.py``): the version, every figure as its tags (``decision.py``) and the
  evaluation report (``report.py``), the verdict last.

The week then either promotes it (:func:`promote`: moves ``champion`` under the promotion lock,
``promotion.py``) or keeps the champion (:func:`keep_champion`): a refusal is an outcome, not an
error. Drift does not refuse: a drifted week that passed goes to a human (the DAG's approval) or,
with nobody to ask (the CLI), keeps the champion. Model versions and aliases are reached
through ``versions.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from review_sentiment import ledger, names, scoring, versions
from review_sentiment.config import DEFAULT_NONINFERIORITY_MARGIN, Settings
from review_sentiment.decision import RegisterResult, outcome_tags, result_from_tags, was_forced
from review_sentiment.evidence import compare, gather, select_best_run
from review_sentiment.gate import GateFacts, GatePolicy, Verdict, gate, versus_champion
from review_sentiment.record import record
from review_sentiment.tokenize import Tokenized
from review_sentiment.tracking import client, model_uri

log = logging.getLogger(__name__)

__all__ = ["keep_champion", "promote", "register"]


def register(
    run_ids: list[str],
    manifest_path: str | Path,
    *,
    settings: Settings | None = None,
    policy: GatePolicy | None = None,
    baseline_run_id: str | None = None,
    snapshot_path: str | Path | None = None,
    pipeline_run_id: str | None = None,
    settle: bool = True,
) -> RegisterResult:
    """Register the best grid run as a new version (alias ``challenger``), report on it and record
    the gate's verdict against the current champion; then, if ``settle``, promote it if the gate
    passed, else keep the champion.

    Idempotent per pipeline run (``pipeline_run_id``, else the best run id): a second call finds
    the version it made and returns what the first decided.

    Args:
        run_ids: MLflow run ids of the grid.
        manifest_path: The tokenize manifest, whose test split every model is scored on.
        settings: Tracking URI, model name, artifact layout and lock (default: the environment's).
        policy: The gate's floor, baseline bar and force (default: :class:`GatePolicy`'s).
        baseline_run_id: The run of this pipeline run's linear baseline (None: no baseline).
        snapshot_path: This run's ingest snapshot: its new reviews are checked for drift against
            the champion's training snapshot, and its path (relative to the artifact root) is
            tagged on the version (``training.snapshot``) for the next weeks' checks. None: neither.
        pipeline_run_id: Id of the pipeline run (``<dag_id>/<run_id>``) for idempotency.
        settle: Settle the week here (the CLI's whole week in one call: a passed but drifted week,
            unless forced, keeps the champion). The DAG passes False and settles in its own tasks
            (``promote`` or ``keep_champion``, after an optional approval).

    Returns:
        The verdict, version and scores (``outcome`` None unless settled).
    """
    settings = settings or Settings.from_env()
    policy = policy or GatePolicy()
    mlflow_client = client(settings.tracking_uri)
    best = select_best_run(run_ids, settings.tracking_uri)
    existing = versions.find_version(mlflow_client, settings.model_name, best, pipeline_run_id)
    if existing is not None and names.TAG_DECISION in existing.tags:
        log.info("version %s already registered for this run; nothing to do", existing.version)
        result = result_from_tags(settings.model_name, existing, reused=True)
    else:
        evidence = gather(
            mlflow_client.get_run(best), manifest_path, settings=settings, baseline_run_id=baseline_run_id,
            snapshot_path=snapshot_path, registered=None if existing is None else str(existing.version),
        )  # fmt: skip
        verdict = gate(evidence.facts(), policy)
        result = record(evidence, verdict, policy, settings=settings, registered=existing,
                        pipeline_run_id=pipeline_run_id)  # fmt: skip
        log.info("register: %s", result.summary())
    if not settle or result.outcome is not None:
        return result
    if result.passed and (policy.force or not result.drift):
        return promote(result, manifest_path, settings=settings, pipeline_run_id=pipeline_run_id)
    drifted = f"the gate passed, but drift keeps the champion: {result.drift}" if result.passed else None
    outcome = names.OUTCOME_DRIFT if drifted else names.OUTCOME_KEPT
    return keep_champion(result, settings=settings, reason=drifted, outcome=outcome)


def promote(
    result: RegisterResult,
    manifest_path: str | Path,
    *,
    settings: Settings | None = None,
    pipeline_run_id: str | None = None,
    approved_by: str | None = None,
) -> RegisterResult:
    """Move ``champion`` to the version ``register`` passed, under the promotion lock, and record
    the move in the champion ledger (``ledger.py``; ``approved_by``: who approved or forced it).

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
            return result_from_tags(model_name, current, reused=True)
        champion = versions.champion_version(mlflow_client, model_name)
        moved = champion is not None and str(champion.version) not in (version, result.champion_version)
        recheck = None
        if moved and not was_forced(current.tags):
            margin = result.noninferiority_margin
            margin = DEFAULT_NONINFERIORITY_MARGIN if margin is None else margin
            recheck = _still_better(champion, current, manifest_path, settings, margin)
            if not recheck.passed:
                return keep_champion(result, settings=settings, reason=recheck.reason)
        # After a re-check, its reason is the version's latest word: what it was promoted over.
        promoted = result.settled(names.OUTCOME_PROMOTED, recheck.reason if recheck else None)
        kind = ledger.KIND_FORCED if was_forced(current.tags) else ledger.KIND_PROMOTED
        previous = None if champion is None else str(champion.version)
        move = ledger.Move(previous, version, pipeline_run_id, promoted.reason, kind, approved_by)
        ledger.move_champion(mlflow_client, model_name, move)
        versions.set_tags(mlflow_client, model_name, version, outcome_tags(promoted))
    log.info("promote: %s", promoted.summary())
    return promoted


def _still_better(
    champion: Any, candidate: Any, manifest_path: str | Path, settings: Settings, margin: float
) -> Verdict:
    """Whether the ``candidate`` version passes the gate's champion rule (non-inferiority within
    ``margin``, :func:`~review_sentiment.gate.versus_champion`) against ``champion``, which took
    the alias after the candidate's comparison, on their comparison set; and why."""
    test = Tokenized(manifest_path).frame("test")
    probability = scoring.score(model_uri(candidate.run_id, settings.tracking_uri), test)
    comparison = compare(champion, test, probability, versions.version_threshold(candidate), settings)
    moved = f"champion moved to v{comparison.champion_version} after this run's comparison"
    if comparison.unavailable:
        return Verdict(False, f"{moved}; {comparison.unavailable}")
    facts = GateFacts(
        candidate_auc=comparison.candidate_auc, champion_auc=comparison.champion_auc,
        compared_auc=comparison.candidate_auc, comparison_size=comparison.size,
        auc_difference=comparison.auc_difference,
    )  # fmt: skip
    verdict = versus_champion(facts, margin)
    return Verdict(verdict.passed, f"{moved}; {verdict.reason}")


def keep_champion(
    result: RegisterResult,
    *,
    settings: Settings | None = None,
    reason: str | None = None,
    outcome: str = names.OUTCOME_KEPT,
) -> RegisterResult:
    """Record that the week kept the champion (the version stays ``challenger``) and why: the
    ``outcome`` is ``kept``, or ``smoke_failed`` / ``drift`` on those ways (``routing.py``);
    idempotent."""
    settings = settings or Settings.from_env()
    kept = result.settled(outcome, reason)
    versions.set_tags(client(settings.tracking_uri), settings.model_name, result.version, outcome_tags(kept))
    log.info("keep_champion: %s", kept.summary())
    return kept
