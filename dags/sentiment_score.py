"""
### Daily scoring of new reviews with the champion

Scores the reviews that arrived in the run's window with the current champion of
`customer-sentiment-analysis` and writes one prediction per review and model version.

`resolve_champion` → `score`

* **resolve_champion** resolves the `champion` alias to one version, once; the whole run scores
  with that version (`models:/<name>/<version>`), even if a promotion moves the alias meanwhile.
  With no champion yet the run ends at once: this task and `score` are *skipped*, with the reason
  in the log, and the run is green.
* **score** streams the window's reviews in chunks (*Chunk rows*), scores them with the pinned
  version, and writes `review_id, model_name, model_version, probability, label, threshold,
  scored_at, dag_run_id`: to the PostgreSQL table `review_predictions` (the stack; created if
  missing) by upsert on `(review_id, model_version)`, one transaction per chunk, so a rerun
  replaces rather than duplicates and a killed run leaves whole chunks only; or, by default, to
  `predictions.parquet` in the task's folder under `$SENTIMENT_ARTIFACT_ROOT`.

**When it runs.** Daily (`SENTIMENT_SCORE_SCHEDULE`, 05:00 UTC), scoring the reviews that
arrived (`ingested_at`) in the day before; and whenever `sentiment_retrain`'s `promote` or a
`sentiment_rollback` run moves the champion (the Asset `sentiment_champion`), re-scoring the last
*Re-score days* ending when the event arrived, with the new version. A review file has no arrival
times: it is scored whole.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param, task
from sentiment_assets import CHAMPION, PREDICTIONS, REVIEWS
from sentiment_stage import stage, task_defaults

from review_sentiment import task_ids as ids
from review_sentiment.config import (
    DEFAULT_RESCORE_DAYS,
    DEFAULT_REVIEWS_CONN_ID,
    DEFAULT_SCORE_CHUNK_ROWS,
    SCORE_DAG_ID,
    Settings,
)

SETTINGS = Settings.from_env()  # environment only: no network, DB or Variable look-ups

# fmt: off
PARAMS = {
    "source": Param(SETTINGS.source, type="string", minLength=1, title="Source", section="Data",
        description="A CSV/Parquet file in the original schema (scored whole), or postgres:<table> (the "
        "reviews that arrived in the run's window) through the connection below."),
    "source_conn_id": Param(DEFAULT_REVIEWS_CONN_ID, type="string", pattern="^[A-Za-z0-9_.-]+$",
        section="Data", title="Source connection id", description="Airflow connection of postgres: sources."),
    "predictions": Param(SETTINGS.predictions, type="string", pattern="^(parquet|postgres:.+)$",
        title="Predictions", section="Data",
        description="parquet (a file in the task's folder under the artifact root) or postgres:<table> "
        "(upserted on review_id and model_version through the connection below)."),
    "predictions_conn_id": Param(DEFAULT_REVIEWS_CONN_ID, type="string", pattern="^[A-Za-z0-9_.-]+$",
        section="Data", title="Predictions connection id",
        description="Airflow connection of a postgres: predictions table."),
    "rescore_days": Param(DEFAULT_RESCORE_DAYS, type="integer", minimum=1, maximum=366, title="Re-score days",
        section="Scoring",
        description="A run triggered by a new champion re-scores the reviews of this many days before it."),
    "chunk_rows": Param(DEFAULT_SCORE_CHUNK_ROWS, type="integer", minimum=1000, maximum=1_000_000,
        title="Chunk rows", section="Scoring",
        description="Reviews read, scored and written at a time (one transaction each)."),
}
# fmt: on


with DAG(
    dag_id=SCORE_DAG_ID,
    description="Daily scoring of new reviews with the champion; again when the champion changes",
    doc_md=__doc__,
    # Daily, and on every champion event. An asset-triggered run has no data interval (Airflow
    # 3.3): the score task's window says what it re-scores.
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(
            SETTINGS.score_schedule, timezone="UTC", interval=timedelta(days=1), run_immediately=timedelta(0)
        ),
        assets=CHAMPION,
    ),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    is_paused_upon_creation=False,
    tags=["ml", "mlflow", "scoring", "sentiment"],
    default_args=task_defaults(execution_timeout=timedelta(minutes=60)),
    params=PARAMS,
) as dag:

    @task(task_id=ids.RESOLVE_CHAMPION, execution_timeout=timedelta(minutes=5))
    def resolve_champion() -> dict:
        """The champion's version, once for the whole run; skipped (not failed) without one."""
        from airflow.sdk.exceptions import AirflowSkipException

        from review_sentiment.batch_score import NoChampion
        from review_sentiment.batch_score import resolve_champion as run_resolve

        with stage() as s:
            found = run_resolve(s.settings, s.announced_version())
            if isinstance(found, NoChampion):
                raise AirflowSkipException(found.reason)
            return found.to_dict()

    @task(task_id=ids.SCORE, inlets=[REVIEWS], outlets=[PREDICTIONS])
    def score(champion: dict) -> dict:
        """Score the window's reviews with the pinned version; upsert the predictions in chunks."""
        from review_sentiment.batch_score import Champion, resolve_target, score_reviews
        from review_sentiment.layout import PREDICTIONS_NAME

        with stage() as s:
            p, pinned, source = s.params, Champion.from_dict(champion), s.reviews_source()
            done = score_reviews(
                source, pinned, window=s.scoring_window(p["rescore_days"]),
                target=resolve_target(p["predictions"], s.connection_uri, p["predictions_conn_id"]),
                output_path=s.folder / PREDICTIONS_NAME, dag_run_id=s.pipeline_run_id,
                tracking_uri=s.settings.tracking_uri, chunk_rows=p["chunk_rows"],
            ).to_dict()  # fmt: skip
            # The target as scored (its password redacted: lineage names the table, not the login).
            s.lineage(inputs=[source, pinned.uri], outputs=[done["target"]])
            return done

    score(resolve_champion())
