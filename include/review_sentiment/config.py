"""One typed configuration surface: defaults here, deployment values from the environment.

Reading the environment happens when ``Settings.from_env()`` is called, never at import,
so importing this module (as the DAG file does at parse time) has no side effects.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from review_sentiment.layout import ArtifactLayout

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = Path(__file__).resolve().parent
NLTK_DATA_DIR = PACKAGE_DIR / "nltk_data"

# The real data set ships with the project (CC0, unchanged: data/README.md).
DEFAULT_REVIEWS_PATH = PROJECT_ROOT / "data" / "womens_clothing_reviews.csv.gz"
LOCAL_STATE_DIR = PROJECT_ROOT / ".local"

RETRAIN_DAG_ID = "sentiment_retrain"
TRAINING_POOL = "training"  # the Airflow pool of the train tasks (deploy/airflow/airflow-init.sh sets it)
SCORE_DAG_ID = "sentiment_score"
ROLLBACK_DAG_ID = "sentiment_rollback"
REGISTERED_MODEL_NAME = "customer-sentiment-analysis"
EXPERIMENT_NAME = "sentiment-retrain"
CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"

DEFAULT_SCHEDULE = "0 3 * * 1"  # Mondays 03:00 UTC
DEFAULT_SCORE_SCHEDULE = "0 5 * * *"  # daily 05:00 UTC, after the Monday retraining's usual end
# Where sentiment_score writes: a Parquet file per run under the artifact root, or postgres:<table>.
PREDICTIONS_PARQUET = "parquet"
DEFAULT_MLFLOW_UI_URL = "http://127.0.0.1:5000"
DEFAULT_AIRFLOW_UI_URL = "http://127.0.0.1:8080"
DEFAULT_SMTP_CONN_ID = "smtp_default"
# The Airflow connection of the reviews database (AIRFLOW_CONN_REVIEWS_DB): postgres: sources and
# the predictions table.
DEFAULT_REVIEWS_CONN_ID = "reviews_db"
# sentiment_score: reviews per chunk (bounds its memory) and the days a new champion re-scores.
DEFAULT_SCORE_CHUNK_ROWS = 50_000
DEFAULT_RESCORE_DAYS = 7
# Longer than any promotion (scoring the champion inside the lock takes seconds), shorter than
# the register task's execution_timeout, so a stuck holder shows up as a clear error.
DEFAULT_LOCK_TIMEOUT_S = 600.0
DEFAULT_PROMOTION_FLOOR = 0.85
# The drift check of the week's new reviews against the champion's training snapshot (drift.py).
# Each bar sits above what chance gives a random week of MIN_NEW reviews of the real data (2,000
# random 200-review weeks: |label share difference| at most 0.084 in 99.9%, rating total-variation
# distance at most 0.129 in 99.9% and 0.140 at most; text AUC mean 0.49, sd 0.037), and below what
# a week of one department with inverted labels gives (label difference about 0.6, text AUC about 0.8).
DEFAULT_DRIFT_LABEL_SHARE = 0.10
DEFAULT_DRIFT_RATING_DISTANCE = 0.15
DEFAULT_DRIFT_TEXT_AUC = 0.60
DEFAULT_DRIFT_MIN_NEW_REVIEWS = 200
# The weekly champion monitoring alerts below this ROC AUC on the new week's reviews, or this much
# below the champion's own test ROC AUC (monitor.monitor_champion, the DAG's monitoring params).
DEFAULT_MONITOR_FLOOR = 0.85
DEFAULT_MONITOR_MARGIN = 0.05
# The shared sequence vocabulary; each grid point uses its most frequent ``max_tokens``.
DEFAULT_MAX_TOKENS = 20000
DEFAULT_NGRAM_MAX_TOKENS = 40000
# The title block's n-grams: the real training titles have about 15,800 distinct 1-2-grams.
DEFAULT_TITLE_NGRAM_MAX_TOKENS = 20000
DEFAULT_SEQUENCE_LENGTH = 120
# The key of the review-id hash that assigns each review its split (tokenize.split_frame).
SPLIT_SALT = "review-sentiment-split-v1"
# The gate's non-inferiority margin: a candidate passes the champion comparison when the lower
# bound of its candidate - champion ROC AUC interval (uncertainty.py) is above -margin. 0.002 is
# half the standard error of a ROC AUC on ~2,000 unseen test reviews: a loss that small is noise.
DEFAULT_NONINFERIORITY_MARGIN = 0.002
# That interval's paired bootstrap: resamples and seed (fixed, so a retried register agrees).
DEFAULT_BOOTSTRAP_RESAMPLES = 2000
DEFAULT_BOOTSTRAP_SEED = 20
# sentiment_housekeeping (housekeeping.py): a weekly pass on Sundays 06:00 UTC, between the daily
# scoring and Monday's retraining. Run folders go after 8 weeks: two months of weekly runs to
# compare or debug, longer than the longest approval wait (720 h). Challengers are archived after
# 12 weeks: a version not made champion within a quarter will not be, and archiving is only a
# stage change (it deletes nothing). The last 3 champions in the ledger, and the current one, keep
# everything they reference: a rollback two moves back still finds its training snapshot.
HOUSEKEEPING_DAG_ID = "sentiment_housekeeping"
HOUSEKEEPING_EXPERIMENT = "sentiment-housekeeping"
DEFAULT_HOUSEKEEPING_SCHEDULE = "0 6 * * 0"
DEFAULT_KEEP_RUN_WEEKS = 8
DEFAULT_KEEP_CHALLENGER_WEEKS = 12
DEFAULT_KEEP_CHAMPIONS = 3
# The smoke check (smoke.py): test reviews register stores with their probabilities, which the
# registered version must reproduce to SMOKE_TOLERANCE; its latency budget in seconds per 1,000
# ordinary reviews (measured on this loaded 2-core machine: 0.06 s for a make-run champion, 0.14-
# 0.18 s for the quick run's; a legacy in-graph TF-IDF version takes about 1 s); the limit on the
# whole fresh-process check (loading TensorFlow and the model took 20 s there).
SMOKE_SAMPLE_SIZE = 200
SMOKE_TOLERANCE = 1e-6
SMOKE_LATENCY_BUDGET_S = 5.0
SMOKE_TIMEOUT_S = 600.0
# sentiment_score's prediction watch (watch.py): an alert when the population stability index of
# the champion's probabilities against its test split's passes PSI_ALERT (0.1-0.25 is the usual
# "moderate shift" band; 0.2 is the issue's), or when the share it labels not-recommended moves by
# more than LABEL_SHARE_SHIFT (the label drift check's 0.10). Fewer scored reviews than
# WATCH_MIN_REVIEWS give a point but no alert: with 10 bins, the PSI of an unshifted sample of n
# is about 9/n, so 200 keeps the noise near 0.05, well under 0.2.
DEFAULT_PSI_ALERT = 0.2
DEFAULT_LABEL_SHARE_SHIFT = 0.10
DEFAULT_WATCH_MIN_REVIEWS = 200
DEFAULT_PSI_BINS = 10


@dataclass(frozen=True)
class Settings:
    """Deployment settings, each overridable by the environment variable named beside it."""

    reviews_path: Path  # REVIEWS_PATH
    artifact_root: Path  # SENTIMENT_ARTIFACT_ROOT
    tracking_uri: str  # MLFLOW_TRACKING_URI
    experiment_name: str  # SENTIMENT_EXPERIMENT
    model_name: str  # SENTIMENT_MODEL_NAME
    mlflow_ui_url: str  # MLFLOW_UI_URL (links shown in the Airflow UI)
    schedule: str  # SENTIMENT_SCHEDULE
    data_roots: tuple[Path, ...]  # SENTIMENT_DATA_ROOTS (os.pathsep-separated; default: REVIEWS_PATH's dir)
    lock_uri: str  # SENTIMENT_LOCK_URI (a postgresql:// URI; empty: a lock file under the artifact root)
    lock_timeout_s: float  # SENTIMENT_LOCK_TIMEOUT
    source: str  # SENTIMENT_SOURCE (the source param's default, a file or postgres:<table>; REVIEWS_PATH)
    airflow_ui_url: str  # SENTIMENT_AIRFLOW_UI_URL (links in notifications)
    notify_to: tuple[str, ...]  # SENTIMENT_NOTIFY_TO (comma-separated addresses; empty: no mail)
    smtp_conn_id: str  # SENTIMENT_SMTP_CONN_ID (the Airflow connection of the mail server)
    score_schedule: str = DEFAULT_SCORE_SCHEDULE  # SENTIMENT_SCORE_SCHEDULE (sentiment_score's cron)
    predictions: str = PREDICTIONS_PARQUET  # SENTIMENT_PREDICTIONS (parquet, or postgres:<table>)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default: ``os.environ``).

        Raises:
            ValueError: a value that must be a number is not.
        """
        env = dict(os.environ if env is None else env)
        reviews_path = Path(env.get("REVIEWS_PATH", str(DEFAULT_REVIEWS_PATH)))
        roots = tuple(Path(p) for p in env.get("SENTIMENT_DATA_ROOTS", "").split(os.pathsep) if p.strip())
        try:
            lock_timeout = float(env.get("SENTIMENT_LOCK_TIMEOUT") or DEFAULT_LOCK_TIMEOUT_S)
        except ValueError:
            raise ValueError(
                f"SENTIMENT_LOCK_TIMEOUT must be a number of seconds, got {env['SENTIMENT_LOCK_TIMEOUT']!r}"
            ) from None
        return cls(
            reviews_path=reviews_path,
            artifact_root=Path(env.get("SENTIMENT_ARTIFACT_ROOT", str(LOCAL_STATE_DIR / "artifacts"))),
            tracking_uri=env.get("MLFLOW_TRACKING_URI") or default_tracking_uri(),
            experiment_name=env.get("SENTIMENT_EXPERIMENT", EXPERIMENT_NAME),
            model_name=env.get("SENTIMENT_MODEL_NAME", REGISTERED_MODEL_NAME),
            mlflow_ui_url=env.get("MLFLOW_UI_URL", DEFAULT_MLFLOW_UI_URL).rstrip("/"),
            schedule=env.get("SENTIMENT_SCHEDULE", DEFAULT_SCHEDULE),
            data_roots=roots or (reviews_path.parent,),
            lock_uri=env.get("SENTIMENT_LOCK_URI", ""),
            lock_timeout_s=lock_timeout,
            source=env.get("SENTIMENT_SOURCE") or str(reviews_path),
            airflow_ui_url=env.get("SENTIMENT_AIRFLOW_UI_URL", DEFAULT_AIRFLOW_UI_URL).rstrip("/"),
            notify_to=tuple(a.strip() for a in env.get("SENTIMENT_NOTIFY_TO", "").split(",") if a.strip()),
            smtp_conn_id=env.get("SENTIMENT_SMTP_CONN_ID") or DEFAULT_SMTP_CONN_ID,
            score_schedule=env.get("SENTIMENT_SCORE_SCHEDULE") or DEFAULT_SCORE_SCHEDULE,
            predictions=env.get("SENTIMENT_PREDICTIONS") or PREDICTIONS_PARQUET,
        )

    @property
    def layout(self) -> ArtifactLayout:
        """The artifact root's folders and files."""
        return ArtifactLayout(self.artifact_root)

    def lock_target(self) -> str:
        """Where promotions of the model are serialised: the lock URI, else a lock file."""
        return self.lock_uri or str(self.layout.lock_file(self.model_name))


def default_tracking_uri() -> str:
    """The embedded MLflow store used when ``MLFLOW_TRACKING_URI`` is unset: SQLite under .local/."""
    return f"sqlite:///{LOCAL_STATE_DIR / 'mlflow' / 'mlflow.db'}"
