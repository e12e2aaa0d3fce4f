"""Register's last step, record: the new version (alias ``challenger``), the candidate's test
metrics and test-split probability distribution (``watch.py``) on its run, the reviews it was
trained on (their ids; the snapshot, for the next weeks' drift checks), a scored test sample (the
smoke check replays it, ``smoke.py``), every figure the gate weighed and the drift as version tags
(``decision.py``), the evaluation report
(``report.py``) and, last, the verdict.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any

from review_sentiment import names, schema, smoke, versions
from review_sentiment.config import CHALLENGER_ALIAS, Settings
from review_sentiment.decision import RegisterResult, gate_tags, verdict_tags
from review_sentiment.evidence import Evidence
from review_sentiment.gate import GatePolicy, Verdict
from review_sentiment.tracking import client, model_uri
from review_sentiment.watch import save_reference

log = logging.getLogger(__name__)


def record(
    evidence: Evidence,
    verdict: Verdict,
    policy: GatePolicy,
    *,
    settings: Settings,
    registered: Any,
    pipeline_run_id: str | None,
) -> RegisterResult:
    """Register the candidate (unless an earlier try did) and record the verdict on it.

    Args:
        evidence: What ``evidence.gather`` found.
        verdict: The gate's verdict on it.
        policy: The policy the gate applied (recorded as tags).
        settings: Tracking URI, model name and promotion lock.
        registered: The version an earlier try registered without a verdict, or None.
        pipeline_run_id: Id of the pipeline run, tagged on a new version.

    Returns:
        The decision (``outcome`` None until promote or keep_champion).
    """
    mlflow_client = client(settings.tracking_uri)
    model_name, run_id = settings.model_name, evidence.run.info.run_id
    if registered is None:
        registered = versions.register_version(
            model_uri(run_id, settings.tracking_uri), model_name, pipeline_run_id
        )
    version = str(registered.version)
    _log_on_run(mlflow_client, evidence, model_name, version)

    comparison = evidence.comparison
    result = RegisterResult(
        model_name=model_name, version=version, run_id=run_id, promoted=False, passed=verdict.passed,
        reason=verdict.reason, candidate=evidence.candidate, champion=comparison.champion,
        champion_version=comparison.champion_version, baseline=evidence.baseline_scores,
        compared=comparison.candidate, comparison_size=comparison.size,
        experiment_id=evidence.run.info.experiment_id, noninferiority_margin=policy.margin,
        difference=None if comparison.difference is None else comparison.difference.to_scores(),
        drift=evidence.drift_reason,
    )  # fmt: skip
    tags = verdict_tags(result)
    finished = {names.TAG_DECISION: tags.pop(names.TAG_DECISION)}
    tags.update(
        gate_tags(policy, evidence.threshold, evidence.baseline_run_id, evidence.baseline is not None)
    )
    if evidence.drift is not None:
        tags.update(evidence.drift.to_tags())
    tags.update(evidence.training_snapshot)  # what the next weeks' drift checks compare with
    versions.set_tags(mlflow_client, model_name, version, tags)
    _name_challenger(mlflow_client, version, settings)
    _log_report(mlflow_client, evidence, version, verdict.reason, model_name)
    versions.set_tags(mlflow_client, model_name, version, finished)  # last: marks a finished registration
    return result


def _log_on_run(mlflow_client: Any, evidence: Evidence, model_name: str, version: str) -> None:
    """What later steps read back from the candidate's run: its test metrics, its test-split
    prediction distribution (sentiment_score's watch), the difference to the champion, a scored
    test sample (the smoke check) and the ids of the reviews it was trained on."""
    run_id = evidence.run.info.run_id
    _log_test_metrics(mlflow_client, evidence)
    save_reference(mlflow_client, run_id, evidence.probability, evidence.threshold)
    _log_difference(mlflow_client, evidence)
    smoke.record_sample(mlflow_client, run_id, evidence.test, evidence.probability)
    seen = [*evidence.data.frame("train")[schema.ID], *evidence.data.frame("validation")[schema.ID]]
    versions.set_tags(
        mlflow_client, model_name, version, versions.record_seen_reviews(mlflow_client, run_id, seen)
    )


def _log_test_metrics(mlflow_client: Any, evidence: Evidence) -> None:
    """The candidate's test scores (and its margin over the baseline) on its own run."""
    run_id = evidence.run.info.run_id
    for key, value in evidence.candidate.items():
        mlflow_client.log_metric(run_id, f"test_{key}", value)
    baseline = evidence.baseline_scores
    if baseline is not None:
        margin = evidence.candidate["roc_auc"] - baseline["roc_auc"]
        mlflow_client.log_metric(run_id, names.METRIC_BASELINE_MARGIN, margin)


def _log_difference(mlflow_client: Any, evidence: Evidence) -> None:
    """candidate - champion on the comparison set and its interval, on the candidate's run."""
    difference = evidence.comparison.difference
    for key, value in ({} if difference is None else difference.to_scores()).items():
        mlflow_client.log_metric(evidence.run.info.run_id, f"{names.METRIC_DIFFERENCE}{key}", value)


def _name_challenger(mlflow_client: Any, version: str, settings: Settings) -> None:
    """Point ``challenger`` at ``version`` unless a newer version already holds it.

    Under the promotion lock: MLflow sets an alias by read-then-insert, so two runs naming their
    versions at once can fail on the alias table's unique key (seen in the register race test).
    """
    from review_sentiment.promotion import promotion_lock

    model_name = settings.model_name
    with promotion_lock(model_name, lock_uri=settings.lock_target(), timeout=settings.lock_timeout_s):
        current = versions.alias_version(mlflow_client, model_name, CHALLENGER_ALIAS)
        if current is None or int(current.version) < int(version):
            mlflow_client.set_registered_model_alias(model_name, CHALLENGER_ALIAS, version)


def _log_report(mlflow_client: Any, evidence: Evidence, version: str, reason: str, model_name: str) -> None:
    """Write the evaluation report, log it under ``evaluation/`` of the run, make the card the
    version's description. Every model in it is scored at its own threshold."""
    from review_sentiment.report import BASELINE_NAME, Scored, card_facts, write_report

    run, comparison = evidence.run, evidence.comparison
    others = []
    if evidence.baseline is not None:
        others.append(Scored(BASELINE_NAME, evidence.baseline.probability, evidence.baseline.threshold))
    if comparison.champion_p is not None:
        # On the whole test split, like the others; the gate's comparison is on the reviews the
        # champion did not see (tags, model card reason).
        name = f"champion v{comparison.champion_version}"
        others.append(Scored(name, comparison.champion_p, comparison.champion_threshold))
    with tempfile.TemporaryDirectory() as tmp:
        report = write_report(
            tmp,
            evidence.test,
            Scored(f"candidate v{version}", evidence.probability, evidence.threshold),
            others=others,
            card=card_facts(model_name, version, run, evidence.data, reason),
        )
        mlflow_client.log_artifacts(run.info.run_id, tmp, artifact_path=names.REPORT_ARTIFACT_PATH)
    mlflow_client.update_model_version(model_name, version, description=report["model_card"])
    mlflow_client.set_model_version_tag(
        model_name, version, names.TAG_REPORT, f"runs:/{run.info.run_id}/{names.REPORT_ARTIFACT_PATH}"
    )
