"""Access to the MLflow model registry: versions, aliases and the tags that record a decision.

The tags written by :func:`decision_tags` are read back by :func:`result_from_tags` (a cleared
``register`` returns what the first try decided) and by :func:`describe_champion`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from review_sentiment import names
from review_sentiment.config import CHAMPION_ALIAS, REGISTERED_MODEL_NAME
from review_sentiment.console import stderr_to_log
from review_sentiment.errors import GateRefused
from review_sentiment.metrics import rounded
from review_sentiment.tracking import client

log = logging.getLogger(__name__)

# Decision thresholds are chosen on validation; a version registered without one used 0.5.
_DEFAULT_THRESHOLD = 0.5


@dataclass
class RegisterResult:
    """What ``register`` decided; small enough for XCom."""

    model_name: str
    version: str
    run_id: str
    promoted: bool  # the champion alias is on this version (set by promote)
    reason: str
    candidate: dict[str, float] = field(default_factory=dict)
    champion: dict[str, float] | None = None  # on the comparison set
    champion_version: str | None = None
    reused: bool = False
    baseline: dict[str, float] | None = None
    passed: bool = False  # the gate's verdict
    outcome: str | None = None  # promoted or kept, once the week decided
    compared: dict[str, float] | None = None  # the candidate on the comparison set
    comparison_size: int | None = None
    experiment_id: str | None = None  # of the candidate's run
    monitoring: str | None = None  # the champion-monitoring alert of the week, if any

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegisterResult:
        return cls(**data)

    def note(self) -> str:
        """The week in one Markdown line (the DAG run's note): the outcome, the two scores on the
        comparison set and the reason."""
        if self.outcome == names.OUTCOME_PROMOTED:
            head = f"**promoted v{self.version}** to champion"
        elif self.outcome == names.OUTCOME_KEPT and self.champion_version:
            head = f"**kept champion v{self.champion_version}**; v{self.version} stays challenger"
        elif self.outcome == names.OUTCOME_KEPT:
            head = f"**not promoted**: v{self.version} stays challenger"
        else:
            head = f"v{self.version}: gate {names.DECISION_PASSED if self.passed else names.DECISION_REFUSED}"
        mine = (self.compared or self.candidate).get("roc_auc")
        theirs = (self.champion or {}).get("roc_auc")
        scores = "" if mine is None else f"candidate ROC AUC {mine:.4f}"
        if scores and theirs is not None:
            scores += f" vs champion {theirs:.4f} on {self.comparison_size} unseen test reviews"
        alert = f"monitoring alert: {self.monitoring}" if self.monitoring else ""
        return " - ".join(part for part in (head, scores, self.reason, alert) if part)

    def summary(self) -> str:
        """One line for the task log: the version, the verdict or outcome and rounded scores."""
        verdict = names.DECISION_PASSED if self.passed else names.DECISION_REFUSED
        parts = [f"version {self.version} of {self.model_name}: gate {verdict}"]
        if self.outcome:
            parts[0] += f", {self.outcome}"
        others = (("champion", self.champion), ("baseline", self.baseline))
        for who, scores in (("candidate", self.candidate), *others):
            if scores:
                parts.append(f"{who} {rounded(scores)}")
        if self.comparison_size is not None:
            parts.append(f"compared on {self.comparison_size} test reviews neither model was trained on")
        return "; ".join(parts) + f" ({self.reason})"


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
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(model_name, version, key, value)


def score_tags(prefix: str, scores: dict[str, float] | None) -> dict[str, str]:
    return {f"{prefix}{k}": f"{v:.6f}" for k, v in (scores or {}).items()}


def decision_tags(
    *,
    candidate: dict[str, float],
    threshold: float,
    baseline: dict[str, float] | None,
    baseline_run_id: str | None,
    champion: dict[str, float] | None,
    champion_version: str | None,
    compared: dict[str, float] | None,
    comparison_size: int | None,
    floor: float,
    force: bool,
    beat_baseline: bool,
    reason: str,
) -> dict[str, str]:
    """Every figure the gate weighed, as model-version tags (not the decision itself, written last)."""
    return {
        **score_tags(names.CANDIDATE_SCORES, candidate),
        names.TAG_THRESHOLD: f"{threshold:.6f}",
        **score_tags(names.BASELINE_SCORES, baseline),
        names.TAG_BASELINE_RUN: baseline_run_id or "none",
        names.TAG_BEAT_BASELINE: str(beat_baseline and baseline is not None).lower(),
        names.TAG_FLOOR: str(floor),
        names.TAG_FORCED: str(force).lower(),
        names.TAG_CHAMPION_VERSION: champion_version or "none",
        **score_tags(names.CHAMPION_SCORES, champion),
        **score_tags(names.CANDIDATE_COMPARED, compared),
        names.TAG_COMPARISON_SIZE: "none" if comparison_size is None else str(comparison_size),
        names.TAG_REASON: reason,
    }


def _scores(tags: dict[str, str], prefix: str) -> dict[str, float]:
    return {k.removeprefix(prefix): float(v) for k, v in tags.items() if k.startswith(prefix)}


def result_from_tags(model_name: str, version: Any, reused: bool) -> RegisterResult:
    """What an earlier registration decided, read back from its version's tags."""
    tags = version.tags
    champion = tags.get(names.TAG_CHAMPION_VERSION)
    size = tags.get(names.TAG_COMPARISON_SIZE, "none")
    outcome = tags.get(names.TAG_OUTCOME)
    return RegisterResult(
        model_name=model_name,
        version=str(version.version),
        run_id=version.run_id,
        promoted=outcome == names.OUTCOME_PROMOTED,
        passed=tags.get(names.TAG_DECISION) == names.DECISION_PASSED,
        outcome=outcome,
        reason=tags.get(names.TAG_OUTCOME_REASON) or tags.get(names.TAG_REASON, ""),
        compared=_scores(tags, names.CANDIDATE_COMPARED) or None,
        comparison_size=None if size == "none" else int(size),
        candidate=_scores(tags, names.CANDIDATE_SCORES),
        champion=_scores(tags, names.CHAMPION_SCORES) or None,
        champion_version=None if champion in (None, "none") else champion,
        reused=reused,
        baseline=_scores(tags, names.BASELINE_SCORES) or None,
    )


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


def set_outcome(mlflow_client: Any, model_name: str, version: str, outcome: str, reason: str) -> None:
    """Record what the week did with the version (promoted or kept) and why."""
    set_tags(
        mlflow_client, model_name, version, {names.TAG_OUTCOME: outcome, names.TAG_OUTCOME_REASON: reason}
    )


def describe_champion(tracking_uri: str | None, model_name: str = REGISTERED_MODEL_NAME) -> str:
    """A few lines on the current champion and how to browse it in the MLflow UI.

    Raises:
        GateRefused: there is no champion.
    """
    version = champion_version(client(tracking_uri), model_name)
    if version is None:
        raise GateRefused(f"{model_name} has no {CHAMPION_ALIAS} yet")
    tags = version.tags
    uri = tracking_uri or ""
    browse = (
        f"mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite") else f"open {uri} in a browser"
    )
    baseline = _scores(tags, names.BASELINE_SCORES).get("roc_auc")
    return "\n".join(
        [
            f"champion: {model_name} version {version.version} (run {version.run_id})",
            f"test metrics: {rounded(dict(sorted(_scores(tags, names.CANDIDATE_SCORES).items())))}",
            f"decision threshold: {version_threshold(version):.4f} (label 1 at or above it)",
            f"baseline test ROC AUC: {'n/a' if baseline is None else f'{baseline:.4f}'}",
            f"decision: {tags.get(names.TAG_REASON, '')}",
            f"browse: {browse}",
            f"load: mlflow.pyfunc.load_model('models:/{model_name}@{CHAMPION_ALIAS}')",
        ]
    )
