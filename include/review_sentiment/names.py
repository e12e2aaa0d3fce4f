"""Names shared between a writer and a reader in MLflow: run tags, params, metrics, artifacts,
model-version tags and the registered model's output columns. Each string is declared here only.
"""

from __future__ import annotations

# --- MLflow runs: the Airflow task instance that made them --------------------------------------
TAG_DAG_ID = "airflow.dag_id"
TAG_RUN_ID = "airflow.run_id"
TAG_TASK_ID = "airflow.task_id"
TAG_MAP_INDEX = "airflow.map_index"
TAG_WEEK = "airflow.week"  # ISO week of the DAG run, e.g. 2026-W48
TAG_ROLE = "sentiment.role"  # "candidate" (a grid point) or "baseline"
ROLE_CANDIDATE = "candidate"
ROLE_BASELINE = "baseline"
ROLE_MONITOR = "monitor"  # a champion version's weekly monitoring series
TAG_MONITORED_MODEL = "monitor.model"
TAG_MONITORED_VERSION = "monitor.version"
MONITOR_PREFIX = "monitor_"  # monitor_roc_auc, ... one point per week (step: yyyyww)
ROLE_PREDICTIONS = "predictions"  # a champion version's prediction series (sentiment_score)
PREDICTIONS_PREFIX = "predictions_"  # predictions_psi, ... one point per scoring run (step: yyyymmddHHMMSS)
TAG_MODEL_ID = "model_id"  # MLflow 3 keeps logged models apart from runs: the run remembers its id

# MLflow 3.17's UI opens an experiment in the view its kind names.
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_TRAINING = "custom_model_development"

# --- MLflow runs: params, metrics, artifacts ---------------------------------------------------
PARAM_GRID_POINT = "grid_point"  # the whole grid point as JSON, read back as it was
METRIC_THRESHOLD = "decision_threshold"
VALIDATION_METRIC = "val_roc_auc"
MODEL_ARTIFACT = "model"
REPORT_ARTIFACT_PATH = "evaluation"
BASELINE_PREDICTIONS = "baseline/test_predictions.csv"
REFERENCE_ARTIFACT = "monitoring/reference.json"  # the test split's probabilities in bins (watch.py)

# --- The registered model: its artifacts and output columns ------------------------------------
ARTIFACT_CORE = "keras_core"  # the trained core (inputs tokens/ngrams), see serving.py
ARTIFACT_FEATURES = "features"  # JSON: vocabularies and IDF weights the core's inputs come from
ARTIFACT_KERAS = "keras_model"  # legacy (before 2026-11-30): text in, TextVectorization inside
ARTIFACT_PREPROCESS = "preprocess"
ARTIFACT_DECISION = "decision"
PROBABILITY = "probability"
LABEL = "label"
DECISION_THRESHOLD_KEY = "threshold"  # in the model's decision artifact (JSON)
DECISION_CALIBRATION_KEY = "calibration"  # there too, when the probabilities were recalibrated
METRIC_BASELINE_MARGIN = "test_roc_auc_margin_over_baseline"  # on the candidate's run

# --- XCom of the tasks that log to MLflow, read by the Airflow UI's extra links -----------------
XCOM_RUN_ID = "run_id"
XCOM_EXPERIMENT_ID = "experiment_id"
XCOM_RESPONDER = "responded_by"  # the approval task's: who answered it, for the champion ledger

# --- Model-version tags ------------------------------------------------------------------------
TAG_PIPELINE_RUN = "pipeline_run_id"  # <dag_id>/<run_id>: one version per pipeline run
TAG_DECISION = "gate.decision"  # written last: its presence marks a finished registration
TAG_REASON = "gate.reason"
TAG_FLOOR = "gate.floor"
TAG_FORCED = "gate.forced"
TAG_BEAT_BASELINE = "gate.beat_baseline"
TAG_DRIFT = "gate.drift"
TAG_THRESHOLD = "candidate.threshold"
TAG_BASELINE_RUN = "baseline.run_id"
TAG_CHAMPION_VERSION = "champion.version"
TAG_REPORT = "report.artifacts"
# Test-split scores, one tag per metric under each prefix, e.g. candidate.test_roc_auc.
CANDIDATE_SCORES = "candidate.test_"
BASELINE_SCORES = "baseline.test_"
CHAMPION_SCORES = "champion.test_"
# Candidate and champion on the comparison set: the test reviews neither model was trained or
# early-stopped on (the champion's scores are under CHAMPION_SCORES).
CANDIDATE_COMPARED = "candidate.compared_"
TAG_COMPARISON_SIZE = "gate.comparison_size"
DECISION_PASSED = "passed"  # the gate's verdict, under TAG_DECISION
DECISION_REFUSED = "refused"
# What the week did with the version: written by the promote or keep_champion task.
TAG_OUTCOME = "outcome"
TAG_OUTCOME_REASON = "outcome.reason"
OUTCOME_PROMOTED = "promoted"
OUTCOME_KEPT = "kept"
OUTCOME_ROLLED_BACK = "rolled_back"  # a rollback's result (sentiment_rollback, the CLI), not a tag
OUTCOME_SMOKE_FAILED = "smoke_failed"  # kept: the version failed the smoke check (smoke.py)
OUTCOME_DRIFT = "drift"  # kept: the week's data drifted and no approval was asked (routing.py)
# The reviews a version was trained and early-stopped on (ids, JSON) on its run, and their digest.
SEEN_REVIEWS_ARTIFACT = "data/seen_review_ids.json"
TAG_SEEN_REVIEWS = "training.reviews"
TAG_SEEN_DIGEST = "training.reviews_digest"
# The ingest snapshot a version was trained on, relative to the artifact root (as
# ArtifactLayout.resolve takes it): the next weeks' drift check compares their new reviews with it.
TAG_TRAINING_SNAPSHOT = "training.snapshot"
# The paired bootstrap interval of candidate - champion on the comparison set (uncertainty.py), one
# tag per figure: gate.difference_roc_auc, ..._roc_auc_low, ..._roc_auc_high, the same for
# f1_not_recommended, then confidence and resamples. Also metrics on the candidate's run, under
# METRIC_DIFFERENCE (test_vs_champion_roc_auc_low, ...). And the margin the gate applied to it.
COMPARISON_DIFFERENCE = "gate.difference_"
METRIC_DIFFERENCE = "test_vs_champion_"
TAG_NONINFERIORITY_MARGIN = "gate.noninferiority_margin"
# When and why housekeeping archived a version (stage Archived) that never became champion.
TAG_ARCHIVED = "housekeeping.archived"
STAGE_ARCHIVED = "Archived"  # the registry stage housekeeping sets and rollback refuses without force
# The smoke check (smoke.py): the test-split sample register scored (inputs and probabilities,
# JSON) on the candidate's run, and the check's result on the version.
SMOKE_SAMPLE_ARTIFACT = "smoke/test_sample.json"
TAG_SMOKE_PASSED = "smoke.passed"  # true / false
TAG_SMOKE_REASON = "smoke.reason"
TAG_SMOKE_LATENCY = "smoke.seconds_per_1000"

# --- Airflow Assets: names and URIs (dags/sentiment_assets.py makes the Asset objects) ----------
# x- URIs are Airflow's free-form scheme: the provider URI formats want hosts and ports, which a
# DAG file cannot know without looking up a connection at parse time.
ASSET_CHAMPION = "sentiment_champion"  # the champion alias moved (sentiment_retrain's promote)
ASSET_CHAMPION_ALIAS = "sentiment_champion_moved"  # promote's outlet: an event only when it moved
ASSET_REVIEWS = "sentiment_reviews"  # the reviews source, read by ingest, monitor_champion, score
ASSET_PREDICTIONS = "sentiment_predictions"  # sentiment_score's output
ASSET_SCHEME = "x-sentiment"
# Keys of the champion event's extra.
EVENT_MODEL = "model_name"
EVENT_VERSION = "version"
EVENT_PREVIOUS_VERSION = "previous_version"
EVENT_PIPELINE_RUN = "pipeline_run_id"


def champion_asset_uri(model_name: str) -> str:
    """The champion of a registered model, as an Airflow Asset URI."""
    return f"{ASSET_SCHEME}://mlflow/models/{model_name}/champion"


def source_asset_uri(source: str) -> str:
    """A reviews source or predictions target (``postgres:<table>`` or a file/folder path) as an
    Asset URI: the table by connection-free name, the file by its path."""
    if source.startswith("postgres:"):
        return f"{ASSET_SCHEME}://postgres/{source.removeprefix('postgres:')}"
    return f"file://{source}"
