"""Register: pick the best grid run, test it, register it, and promote it only through the gate."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from review_sentiment import schema
from review_sentiment.config import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    DEFAULT_PROMOTION_FLOOR,
    REGISTERED_MODEL_NAME,
)
from review_sentiment.errors import GateRefused
from review_sentiment.metrics import binary_metrics
from review_sentiment.tokenize import Tokenized
from review_sentiment.tracking import TAG_PIPELINE_RUN, client
from review_sentiment.train import VALIDATION_METRIC, model_uri

log = logging.getLogger(__name__)

TAG_DECISION = "gate.decision"  # written last: its presence marks a finished registration
TAG_REASON = "gate.reason"


@dataclass
class RegisterResult:
    """What ``register`` decided; small enough for XCom."""

    model_name: str
    version: str
    run_id: str
    promoted: bool
    reason: str
    candidate: dict[str, float] = field(default_factory=dict)
    champion: dict[str, float] | None = None
    champion_version: str | None = None
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def select_best_run(run_ids: list[str], tracking_uri: str | None = None) -> str:
    """The finished run with the highest validation ROC AUC.

    Raises:
        GateRefused: no run finished with a finite validation score.
    """
    mlflow_client = client(tracking_uri)
    scored = []
    for run_id in run_ids:
        run = mlflow_client.get_run(run_id)
        value = run.data.metrics.get(VALIDATION_METRIC, math.nan)
        if run.info.status == "FINISHED" and math.isfinite(value):
            scored.append((value, run_id))
    if not scored:
        raise GateRefused(f"none of the {len(run_ids)} grid runs finished with a finite {VALIDATION_METRIC}")
    return max(scored)[1]


def evaluate_model(uri: str, test: Any) -> dict[str, float]:
    """Score the pyfunc at ``uri`` on the raw test texts, end to end."""
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(uri)
    request = pd.DataFrame(
        {
            schema.MODEL_TEXT_COLUMN: test[schema.TEXT].astype(str),
            schema.MODEL_TITLE_COLUMN: test[schema.TITLE].fillna("").astype(str),
        }
    )
    return binary_metrics(test[schema.LABEL].to_numpy(), model.predict(request))


def gate(
    candidate_auc: float, champion_auc: float | None, floor: float, force: bool = False
) -> tuple[bool, str]:
    """The promotion rule: above the floor and no worse than the champion on the same data.

    Returns:
        Whether to promote, and the reason in words.
    """
    if force:
        return True, "force-promoted by request, gate skipped"
    if not math.isfinite(candidate_auc):
        return False, "candidate test ROC AUC is not finite (diverged model)"
    if candidate_auc < floor:
        return False, f"candidate test ROC AUC {candidate_auc:.4f} is below the floor {floor:.4f}"
    if champion_auc is not None and math.isfinite(champion_auc) and candidate_auc < champion_auc:
        return False, (
            f"candidate test ROC AUC {candidate_auc:.4f} is worse than the champion's {champion_auc:.4f}"
        )
    if champion_auc is None or not math.isfinite(champion_auc):
        return (
            True,
            f"no champion score to beat; candidate test ROC AUC {candidate_auc:.4f} >= floor {floor:.4f}",
        )
    return (
        True,
        f"candidate test ROC AUC {candidate_auc:.4f} >= champion's {champion_auc:.4f} and floor {floor:.4f}",
    )


def _find_version(mlflow_client: Any, model_name: str, run_id: str, pipeline_run_id: str | None) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_registered_model(model_name)
    except MlflowException:
        return None
    key = f"tags.`{TAG_PIPELINE_RUN}` = '{pipeline_run_id}'" if pipeline_run_id else f"run_id = '{run_id}'"
    found = mlflow_client.search_model_versions(f"name = '{model_name}' and {key}")
    return min(found, key=lambda v: int(v.version)) if found else None


def _champion(mlflow_client: Any, model_name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
    except MlflowException:
        return None


def register(
    run_ids: list[str],
    manifest_path: str | Path,
    *,
    tracking_uri: str | None = None,
    model_name: str = REGISTERED_MODEL_NAME,
    floor: float = DEFAULT_PROMOTION_FLOOR,
    pipeline_run_id: str | None = None,
    force: bool = False,
) -> RegisterResult:
    """Register the best grid run as a new version and promote it if it passes the gate.

    The new version always gets the ``challenger`` alias; ``champion`` moves only when the
    candidate's test ROC AUC is at least ``floor`` and at least the current champion's on the
    same test split. The decision and both scores are tags on the version.

    Idempotent per pipeline run (``pipeline_run_id``, else the best run id): a second call
    finds the version it made, creates none and moves no alias.

    Args:
        run_ids: MLflow run ids of the grid.
        manifest_path: The tokenize manifest, whose test split both models are scored on.
        tracking_uri: MLflow tracking/registry URI.
        model_name: Registered model name.
        floor: Lowest test ROC AUC a champion may have.
        pipeline_run_id: Id of the pipeline run (e.g. the Airflow run id) for idempotency.
        force: Promote even if the gate refuses (recorded as forced).

    Returns:
        The decision, version and scores.
    """
    import mlflow

    mlflow_client = client(tracking_uri)
    best = select_best_run(run_ids, tracking_uri)
    existing = _find_version(mlflow_client, model_name, best, pipeline_run_id)
    if existing is not None and TAG_DECISION in existing.tags:
        log.info("version %s already registered for this run; nothing to do", existing.version)
        return _result_from_tags(model_name, existing, reused=True)

    test = Tokenized(manifest_path).frame("test")
    candidate_uri = model_uri(best, tracking_uri)
    candidate = evaluate_model(candidate_uri, test)
    champion_version = _champion(mlflow_client, model_name)
    champion_scores = None
    if champion_version is not None:
        champion_scores = evaluate_model(f"models:/{model_name}@{CHAMPION_ALIAS}", test)
    promote, reason = gate(
        candidate["roc_auc"], champion_scores["roc_auc"] if champion_scores else None, floor, force
    )

    if existing is None:
        tags = {TAG_PIPELINE_RUN: pipeline_run_id} if pipeline_run_id else {}
        existing = mlflow.register_model(candidate_uri, model_name, tags=tags, await_registration_for=300)
    version = str(existing.version)
    for key, value in candidate.items():
        mlflow_client.log_metric(best, f"test_{key}", value)
    version_tags = {
        **{f"candidate.test_{k}": f"{v:.6f}" for k, v in candidate.items()},
        "gate.floor": str(floor),
        "gate.forced": str(force).lower(),
        "champion.version": champion_version.version if champion_version else "none",
        **({f"champion.test_{k}": f"{v:.6f}" for k, v in champion_scores.items()} if champion_scores else {}),
        TAG_REASON: reason,
    }
    for key, value in version_tags.items():
        mlflow_client.set_model_version_tag(model_name, version, key, value)
    mlflow_client.set_registered_model_alias(model_name, CHALLENGER_ALIAS, version)
    if promote:
        mlflow_client.set_registered_model_alias(model_name, CHAMPION_ALIAS, version)
    mlflow_client.set_model_version_tag(
        model_name, version, TAG_DECISION, "promoted" if promote else "refused"
    )
    log.info("version %s of %s: %s (%s)", version, model_name, "promoted" if promote else "refused", reason)
    return RegisterResult(
        model_name=model_name,
        version=version,
        run_id=best,
        promoted=promote,
        reason=reason,
        candidate=candidate,
        champion=champion_scores,
        champion_version=champion_version.version if champion_version else None,
    )


def _result_from_tags(model_name: str, version: Any, reused: bool) -> RegisterResult:
    tags = version.tags
    candidate = {
        k.removeprefix("candidate.test_"): float(v)
        for k, v in tags.items()
        if k.startswith("candidate.test_")
    }
    champion = {
        k.removeprefix("champion.test_"): float(v) for k, v in tags.items() if k.startswith("champion.test_")
    }
    champion_version = tags.get("champion.version")
    return RegisterResult(
        model_name=model_name,
        version=str(version.version),
        run_id=version.run_id,
        promoted=tags.get(TAG_DECISION) == "promoted",
        reason=tags.get(TAG_REASON, ""),
        candidate=candidate,
        champion=champion or None,
        champion_version=None if champion_version in (None, "none") else champion_version,
        reused=reused,
    )


def require_promoted(result: RegisterResult) -> RegisterResult:
    """Raise ``GateRefused`` when ``result`` was not promoted (for callers that must fail)."""
    if not result.promoted:
        raise GateRefused(f"version {result.version} not promoted: {result.reason}")
    return result


def describe_champion(tracking_uri: str | None, model_name: str = REGISTERED_MODEL_NAME) -> str:
    """A few lines on the current champion and how to browse it in the MLflow UI.

    Raises:
        GateRefused: there is no champion.
    """
    mlflow_client = client(tracking_uri)
    version = _champion(mlflow_client, model_name)
    if version is None:
        raise GateRefused(f"{model_name} has no {CHAMPION_ALIAS} yet")
    tags = version.tags
    scores = ", ".join(
        f"{k.removeprefix('candidate.test_')}={float(v):.4f}"
        for k, v in sorted(tags.items())
        if k.startswith("candidate.test_")
    )
    uri = tracking_uri or ""
    browse = (
        f"mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite") else f"open {uri} in a browser"
    )
    return "\n".join(
        [
            f"champion: {model_name} version {version.version} (run {version.run_id})",
            f"test metrics: {scores}",
            f"decision: {tags.get(TAG_REASON, '')}",
            f"browse: {browse}",
            f"load: mlflow.pyfunc.load_model('models:/{model_name}@{CHAMPION_ALIAS}')",
        ]
    )
