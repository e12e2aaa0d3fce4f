"""Registered model versions in MLflow: finding and creating them, their aliases and their tags.

Which tags record the week's decision, and how they are read back, is ``decision.py``'s.
"""

from __future__ import annotations

import logging
from typing import Any

from review_sentiment import names
from review_sentiment.config import CHAMPION_ALIAS, REGISTERED_MODEL_NAME
from review_sentiment.console import stderr_to_log
from review_sentiment.decision import result_from_tags
from review_sentiment.errors import GateRefused
from review_sentiment.metrics import rounded
from review_sentiment.tracking import client

log = logging.getLogger(__name__)

# Decision thresholds are chosen on validation; a version registered without one used 0.5.
_DEFAULT_THRESHOLD = 0.5


def find_version(mlflow_client: Any, model_name: str, run_id: str, pipeline_run_id: str | None) -> Any:
    """The version an earlier try registered for this pipeline run (else for ``run_id``), or None."""
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_registered_model(model_name)
    except MlflowException:
        return None
    key = (
        f"tags.`{names.TAG_PIPELINE_RUN}` = '{pipeline_run_id}'"
        if pipeline_run_id
        else f"run_id = '{run_id}'"
    )
    found = mlflow_client.search_model_versions(f"name = '{model_name}' and {key}")
    return min(found, key=lambda v: int(v.version)) if found else None


def champion_version(mlflow_client: Any, model_name: str) -> Any:
    """The version the ``champion`` alias points at, or None."""
    return alias_version(mlflow_client, model_name, CHAMPION_ALIAS)


def alias_version(mlflow_client: Any, model_name: str, alias: str) -> Any:
    """The version ``alias`` points at, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def version_threshold(version: Any) -> float:
    """The decision threshold a version was registered with."""
    return float(version.tags.get(names.TAG_THRESHOLD, _DEFAULT_THRESHOLD))


def register_version(model_uri: str, model_name: str, pipeline_run_id: str | None) -> Any:
    """A new version of ``model_name`` from ``model_uri``, tagged with the pipeline run."""
    import mlflow

    tags = {names.TAG_PIPELINE_RUN: pipeline_run_id} if pipeline_run_id else {}
    with stderr_to_log():  # MLflow prints "Successfully registered model" to stderr
        return mlflow.register_model(model_uri, model_name, tags=tags, await_registration_for=300)


def set_tags(mlflow_client: Any, model_name: str, version: str, tags: dict[str, str]) -> None:
    """Set each of ``tags`` on the version, in order (one call each: MLflow has no batch call)."""
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(model_name, version, key, value)


def record_seen_reviews(mlflow_client: Any, run_id: str, review_ids: list[int]) -> dict[str, str]:
    """Log the ids of the reviews a model was trained and early-stopped on, as a JSON artifact of
    its run; returns the count and digest as version tags."""
    import hashlib
    import json

    ids = sorted({int(i) for i in review_ids})
    text = json.dumps(ids, separators=(",", ":"))
    mlflow_client.log_text(run_id, text, names.SEEN_REVIEWS_ARTIFACT)
    return {
        names.TAG_SEEN_REVIEWS: str(len(ids)),
        names.TAG_SEEN_DIGEST: "sha256:" + hashlib.sha256(text.encode()).hexdigest(),
    }


def seen_reviews(version: Any, tracking_uri: str | None) -> set[int] | None:
    """The review ids ``version`` was trained and early-stopped on; None for a version registered
    before they were recorded."""
    import json

    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    if names.TAG_SEEN_DIGEST not in version.tags:
        return None
    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path=names.SEEN_REVIEWS_ARTIFACT, tracking_uri=tracking_uri
        )
    except (MlflowException, OSError):
        return None
    with open(path, encoding="utf-8") as fh:
        return set(json.load(fh))


def describe_champion(tracking_uri: str | None, model_name: str = REGISTERED_MODEL_NAME) -> str:
    """A few lines on the current champion and how to browse it in the MLflow UI.

    Raises:
        GateRefused: there is no champion.
    """
    version = champion_version(client(tracking_uri), model_name)
    if version is None:
        raise GateRefused(f"{model_name} has no {CHAMPION_ALIAS} yet")
    recorded = result_from_tags(model_name, version, reused=False)
    uri = tracking_uri or ""
    browse = (
        f"mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite") else f"open {uri} in a browser"
    )
    baseline = (recorded.baseline or {}).get("roc_auc")
    return "\n".join(
        [
            f"champion: {model_name} version {version.version} (run {version.run_id})",
            f"test metrics: {rounded(dict(sorted(recorded.candidate.items())))}",
            f"decision threshold: {version_threshold(version):.4f} (label 1 at or above it)",
            f"baseline test ROC AUC: {'n/a' if baseline is None else f'{baseline:.4f}'}",
            f"decision: {version.tags.get(names.TAG_REASON, '')}",
            f"browse: {browse}",
            f"load: mlflow.pyfunc.load_model('models:/{model_name}@{CHAMPION_ALIAS}')",
        ]
    )
