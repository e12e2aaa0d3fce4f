"""Register: pick the best grid run, test it, register it, and promote it only through the gate."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
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
from review_sentiment.pyfunc_model import PROBABILITY
from review_sentiment.tokenize import Tokenized
from review_sentiment.tracking import TAG_PIPELINE_RUN, client
from review_sentiment.train import VALIDATION_METRIC, model_uri

log = logging.getLogger(__name__)

TAG_DECISION = "gate.decision"  # written last: its presence marks a finished registration
TAG_REASON = "gate.reason"
REPORT_ARTIFACT_PATH = "evaluation"
DECISION_THRESHOLD = "decision_threshold"
_POINT_FIELDS = frozenset(
    ("architecture", "embedding_dim", "batch_size", "max_epochs", "patience", "dense_units",
     "learning_rate", "dropout", "seed", "max_tokens", "conv_filters", "class_weight", "rating_weight")
)  # fmt: skip


def _param(text: str) -> Any:
    """An MLflow param (a string) back as the number it was, for GridPoint."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


# Grid-point parameters worth a line in the model card.
_CARD_PARAMS = (
    "architecture", "embedding_dim", "conv_filters", "dense_units", "dropout", "max_tokens",
    "class_weight", "rating_weight", "learning_rate", "batch_size", "vocabulary_size",
)  # fmt: skip


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
    baseline: dict[str, float] | None = None

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


def predict_probability(model: Any, request: Any) -> Any:
    """P(recommended) from a loaded pyfunc: the ``probability`` column, or the whole output of
    versions logged before the label output existed."""
    import numpy as np

    prediction = model.predict(request)
    if hasattr(prediction, "columns") and PROBABILITY in prediction.columns:
        prediction = prediction[PROBABILITY]
    return np.asarray(prediction, dtype=float).reshape(-1)


def gate(
    candidate_auc: float,
    champion_auc: float | None,
    floor: float,
    force: bool = False,
    *,
    baseline_auc: float | None = None,
    drift: str | None = None,
) -> tuple[bool, str]:
    """The promotion rule: no label drift, above the floor, better than the linear baseline
    trained in the same run, and no worse than the champion, all on the same test split.

    Args:
        candidate_auc: The candidate's test ROC AUC.
        champion_auc: The current champion's, or None when there is none.
        floor: Lowest test ROC AUC a champion may have.
        force: Promote whatever the scores (recorded as forced).
        baseline_auc: The baseline's test ROC AUC (None: no baseline in this run).
        drift: Why the data drifted, when it did (blocks promotion).

    Returns:
        Whether to promote, and the reason in words.
    """
    if force:
        return True, "force-promoted by request, gate skipped"
    if not math.isfinite(candidate_auc):
        return False, "candidate test ROC AUC is not finite (diverged model)"
    if drift:
        return False, f"label drift blocks promotion: {drift}"
    if candidate_auc < floor:
        return False, f"candidate test ROC AUC {candidate_auc:.4f} is below the floor {floor:.4f}"
    if baseline_auc is not None and math.isfinite(baseline_auc) and candidate_auc <= baseline_auc:
        return False, (
            f"candidate test ROC AUC {candidate_auc:.4f} does not beat the TF-IDF + logistic regression "
            f"baseline's {baseline_auc:.4f}"
        )
    if champion_auc is not None and math.isfinite(champion_auc) and candidate_auc < champion_auc:
        return False, (
            f"candidate test ROC AUC {candidate_auc:.4f} is worse than the champion's {champion_auc:.4f}"
        )
    beats = f", baseline's {baseline_auc:.4f}" if baseline_auc is not None else ""
    if champion_auc is None or not math.isfinite(champion_auc):
        return (
            True,
            f"no champion score to beat; candidate test ROC AUC {candidate_auc:.4f} >= floor "
            f"{floor:.4f}{beats}",
        )
    return (
        True,
        f"candidate test ROC AUC {candidate_auc:.4f} >= champion's {champion_auc:.4f} and floor "
        f"{floor:.4f}{beats}",
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


def _score(uri: str, test: Any) -> Any:
    """P(recommended) of the pyfunc at ``uri`` on the raw test texts, end to end."""
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(uri)
    request = pd.DataFrame(
        {
            schema.MODEL_TEXT_COLUMN: test[schema.TEXT].astype(str),
            schema.MODEL_TITLE_COLUMN: test[schema.TITLE].fillna("").astype(str),
        }
    )
    return predict_probability(model, request)


def register(
    run_ids: list[str],
    manifest_path: str | Path,
    *,
    baseline_run_id: str | None = None,
    label_stats_path: str | Path | None = None,
    artifact_root: str | Path | None = None,
    tracking_uri: str | None = None,
    model_name: str = REGISTERED_MODEL_NAME,
    floor: float = DEFAULT_PROMOTION_FLOOR,
    pipeline_run_id: str | None = None,
    force: bool = False,
    beat_baseline: bool = True,
    lock_uri: str | None = None,
) -> RegisterResult:
    """Register the best grid run as a new version, report on it, promote it through the gate.

    The new version always gets the ``challenger`` alias; ``champion`` moves only when
    :func:`gate` passes: no label drift against the last promoted run's data, test ROC AUC at
    least ``floor``, above the baseline's and at least the current champion's on the same test
    split. The read-compare-set of ``champion`` runs under :func:`promotion_lock`, so two runs
    registering at once cannot both win: the later one compares against the earlier's result.
    The decision, scores and drift figures are tags on the version; the evaluation report is
    logged to the candidate's run under ``evaluation/`` and the model card is the version's
    description.

    Idempotent per pipeline run (``pipeline_run_id``, else the best run id): a second call
    finds the version it made, creates none and moves no alias.

    Args:
        run_ids: MLflow run ids of the grid.
        manifest_path: The tokenize manifest, whose test split every model is scored on.
        baseline_run_id: The run of this pipeline run's linear baseline (None: no baseline).
        label_stats_path: Ingest's ``label_stats.json`` (None: no drift check).
        artifact_root: Where the drift reference of the last promotion lives.
        tracking_uri: MLflow tracking/registry URI.
        model_name: Registered model name.
        floor: Lowest test ROC AUC a champion may have.
        pipeline_run_id: Id of the pipeline run (e.g. the Airflow run id) for idempotency.
        force: Promote even if the gate refuses (recorded as forced).
        beat_baseline: Require the candidate to beat the baseline (off for quick plumbing runs
            whose tiny models cannot; the baseline's scores are recorded either way).
        lock_uri: Where the promotion lock lives (see :func:`promotion_lock`).

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

    data = Tokenized(manifest_path)
    test = data.frame("test")
    best_run = mlflow_client.get_run(best)
    threshold = float(best_run.data.metrics.get(DECISION_THRESHOLD, 0.5))
    candidate_uri = model_uri(best, tracking_uri)
    candidate_p = _score(candidate_uri, test)
    evidence = _Evidence(
        candidate=binary_metrics(test[schema.LABEL].to_numpy(dtype=int), candidate_p, threshold),
        threshold=threshold,
        baseline_run_id=baseline_run_id,
        drift=_label_drift(label_stats_path, artifact_root, model_name),
    )
    baseline_p = None
    if baseline_run_id:
        evidence.baseline, baseline_p = _baseline_on_test(baseline_run_id, test, tracking_uri)

    if existing is None:
        tags = {TAG_PIPELINE_RUN: pipeline_run_id} if pipeline_run_id else {}
        existing = mlflow.register_model(candidate_uri, model_name, tags=tags, await_registration_for=300)
    version = str(existing.version)
    for key, value in evidence.candidate.items():
        mlflow_client.log_metric(best, f"test_{key}", value)

    decision = _decide_under_lock(
        mlflow_client,
        model_name,
        version,
        test,
        evidence,
        floor=floor,
        force=force,
        beat_baseline=beat_baseline,
        lock_uri=lock_uri,
        on_promote=lambda: _save_drift_reference(
            label_stats_path, artifact_root, model_name, pipeline_run_id
        ),
    )
    champion_version = decision.champion_version
    _log_report(
        mlflow_client,
        best_run,
        version,
        model_name,
        data,
        test,
        candidate_p,
        threshold,
        others=[
            ("TF-IDF + LR baseline", baseline_p),
            (f"champion v{champion_version}" if champion_version else "", decision.champion_p),
        ],
        decision=decision.reason,
    )
    outcome = "promoted" if decision.promote else "refused"
    mlflow_client.set_model_version_tag(model_name, version, TAG_DECISION, outcome)
    log.info("version %s of %s: %s (%s)", version, model_name, outcome, decision.reason)
    return RegisterResult(
        model_name=model_name,
        version=version,
        run_id=best,
        promoted=decision.promote,
        reason=decision.reason,
        candidate=evidence.candidate,
        champion=decision.champion_scores,
        champion_version=champion_version,
        baseline=evidence.baseline,
    )


@dataclass
class _Evidence:
    """What the gate weighs besides the champion, gathered before the lock is taken."""

    candidate: dict[str, float]
    threshold: float
    baseline_run_id: str | None
    drift: Any  # drift.DriftResult | None
    baseline: dict[str, float] | None = None


@dataclass
class _Decision:
    """The gate's verdict and the champion it was weighed against."""

    promote: bool
    reason: str
    champion_version: str | None
    champion_p: Any
    champion_scores: dict[str, float] | None


def _baseline_on_test(
    baseline_run_id: str, test: Any, tracking_uri: str | None
) -> tuple[dict[str, float], Any]:
    """The baseline's test scores and its probabilities in ``test``'s row order.

    Raises:
        GateRefused: the baseline did not score every review of this test split.
    """
    import numpy as np

    from review_sentiment.baseline import baseline_scores

    scores, predictions = baseline_scores(baseline_run_id, tracking_uri)
    by_id = predictions.set_index(schema.ID)["probability"]
    probability = by_id.reindex(test[schema.ID]).to_numpy(dtype=float)
    if np.isnan(probability).any():
        raise GateRefused(f"baseline run {baseline_run_id} did not score this run's test split")
    return scores, probability


def _label_drift(
    label_stats_path: str | Path | None, artifact_root: str | Path | None, model_name: str
) -> Any:
    """This run's label shares against the last promoted run's (None: no drift check asked)."""
    if label_stats_path is None or artifact_root is None:
        return None
    from review_sentiment import drift

    current = drift.load_label_stats(label_stats_path)
    return drift.check_label_drift(current, drift.load_reference_stats(artifact_root, model_name))


def _save_drift_reference(
    label_stats_path: str | Path | None,
    artifact_root: str | Path | None,
    model_name: str,
    pipeline_run_id: str | None,
) -> None:
    """After a promotion: this run's label shares become the reference of the next drift check."""
    if label_stats_path is None or artifact_root is None:
        return
    from review_sentiment import drift

    stats = drift.load_label_stats(label_stats_path)
    drift.save_reference_stats(artifact_root, model_name, stats, pipeline_run_id=pipeline_run_id)


def _decide_under_lock(
    mlflow_client: Any,
    model_name: str,
    version: str,
    test: Any,
    evidence: _Evidence,
    *,
    floor: float,
    force: bool,
    beat_baseline: bool,
    lock_uri: str | None,
    on_promote: Callable[[], None],
) -> _Decision:
    """Read and score the champion, gate, tag the version and move the aliases, all under the
    promotion lock, so that two runs registering at once cannot both win."""
    from review_sentiment.promotion import promotion_lock

    with promotion_lock(model_name, lock_uri=lock_uri):
        # Read the champion only now, under the lock: a run that promoted meanwhile is seen.
        champion_version = _champion(mlflow_client, model_name)
        if champion_version is not None and str(champion_version.version) == version:
            champion_version = None  # a retry of this very registration: nothing else to beat
        champion_p = champion_scores = None
        if champion_version is not None:
            champion_p = _score(f"models:/{model_name}/{champion_version.version}", test)
            # At its own threshold (versions from before thresholds existed used 0.5).
            champion_threshold = float(champion_version.tags.get("candidate.threshold", 0.5))
            champion_scores = binary_metrics(
                test[schema.LABEL].to_numpy(dtype=int), champion_p, champion_threshold
            )
        baseline = evidence.baseline
        drifted = evidence.drift is not None and evidence.drift.drifted
        promote, reason = gate(
            evidence.candidate["roc_auc"],
            champion_scores["roc_auc"] if champion_scores else None,
            floor,
            force,
            baseline_auc=baseline["roc_auc"] if baseline and beat_baseline else None,
            drift=evidence.drift.reason if drifted else None,
        )
        version_tags = {
            **{f"candidate.test_{k}": f"{v:.6f}" for k, v in evidence.candidate.items()},
            "candidate.threshold": f"{evidence.threshold:.6f}",
            **({f"baseline.test_{k}": f"{v:.6f}" for k, v in baseline.items()} if baseline else {}),
            "baseline.run_id": evidence.baseline_run_id or "none",
            "gate.beat_baseline": str(beat_baseline and baseline is not None).lower(),
            "gate.floor": str(floor),
            "gate.forced": str(force).lower(),
            "champion.version": champion_version.version if champion_version else "none",
            **(
                {f"champion.test_{k}": f"{v:.6f}" for k, v in champion_scores.items()}
                if champion_scores
                else {}
            ),
            **(evidence.drift.to_tags() if evidence.drift is not None else {}),
            TAG_REASON: reason,
        }
        for key, value in version_tags.items():
            mlflow_client.set_model_version_tag(model_name, version, key, value)
        mlflow_client.set_registered_model_alias(model_name, CHALLENGER_ALIAS, version)
        if promote:
            mlflow_client.set_registered_model_alias(model_name, CHAMPION_ALIAS, version)
            on_promote()
    return _Decision(
        promote=promote,
        reason=reason,
        champion_version=str(champion_version.version) if champion_version else None,
        champion_p=champion_p,
        champion_scores=champion_scores,
    )


def _log_report(
    mlflow_client: Any,
    run: Any,
    version: str,
    model_name: str,
    data: Tokenized,
    test: Any,
    probability: Any,
    threshold: float,
    *,
    others: list[tuple[str, Any]],
    decision: str,
) -> None:
    """Write the evaluation report, log it under ``evaluation/`` of the run, make the card the
    version's description."""
    import tempfile

    from review_sentiment.artifacts import read_json
    from review_sentiment.report import Scored, write_report

    manifest = data.manifest
    from review_sentiment.model import GridPoint

    fields = {k: _param(v) for k, v in run.data.params.items() if k in _POINT_FIELDS}
    point = GridPoint.from_dict({**fields, "name": "card"})
    # Only what the architecture reads: an n-gram MLP has no embedding to describe.
    relevant = set(_CARD_PARAMS)
    if not point.uses_tokens:
        relevant -= {"embedding_dim", "conv_filters", "max_tokens", "vocabulary_size"}
    params = {k: v for k, v in run.data.params.items() if k in relevant}
    with tempfile.TemporaryDirectory() as tmp:
        report = write_report(
            tmp,
            test,
            Scored(f"candidate v{version}", probability),
            threshold,
            others=[Scored(name, p) for name, p in others if name and p is not None],
            card={
                "model_name": model_name,
                "version": version,
                "run_id": run.info.run_id,
                "params": params,
                "data": {
                    "rows_in": manifest.get("rows_in"),
                    "split_rows": {k: sum(v.values()) for k, v in manifest.get("label_counts", {}).items()},
                    "preprocess": {
                        k: v for k, v in read_json(data.settings_path).items() if k != "stopwords"
                    },
                },
                "decision": decision,
            },
        )
        mlflow_client.log_artifacts(run.info.run_id, tmp, artifact_path=REPORT_ARTIFACT_PATH)
    mlflow_client.update_model_version(model_name, version, description=report["model_card"])
    mlflow_client.set_model_version_tag(
        model_name, version, "report.artifacts", f"runs:/{run.info.run_id}/{REPORT_ARTIFACT_PATH}"
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
    baseline = {
        k.removeprefix("baseline.test_"): float(v) for k, v in tags.items() if k.startswith("baseline.test_")
    }
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
        baseline=baseline or None,
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
            f"decision threshold: {tags.get('candidate.threshold', '0.5')} (label 1 at or above it)",
            f"baseline test ROC AUC: {tags.get('baseline.test_roc_auc', 'n/a')}",
            f"decision: {tags.get(TAG_REASON, '')}",
            f"browse: {browse}",
            f"load: mlflow.pyfunc.load_model('models:/{model_name}@{CHAMPION_ALIAS}')",
        ]
    )
