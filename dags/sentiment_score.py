"""
### Daily scoring of new reviews with the champion

Scores the reviews that arrived in the run's window with the current champion of
`customer-sentiment-analysis` and writes one prediction per review and model version.

`resolve_champion` → `score` → `watch_predictions`

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
* **watch_predictions** reads back what `score` wrote and logs one point of the version's
  prediction series in MLflow (run `predictions champion v<N>` of the retraining experiment):
  count, mean probability, share labelled not-recommended, and the population stability index
  (PSI) of the probabilities against the version's test split, stored with it at registration.
  No labels are needed. A PSI above *PSI alert*, or a share labelled not-recommended more than
  *Label share shift* away from the test split's, mails an alert; the run stays green. A version
  registered without a reference gets a point without PSI, and the log says so.

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
    DEFAULT_LABEL_SHARE_SHIFT,
    DEFAULT_PSI_ALERT,
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
    "psi_alert": Param(DEFAULT_PSI_ALERT, type="number", minimum=0, title="PSI alert", section="Monitoring",
        description="Mail an alert when the PSI of the run's probabilities against the champion's test "
        "split is above this (0.1-0.25: a moderate shift; above 0.25: a major one)."),
    "label_share_shift": Param(DEFAULT_LABEL_SHARE_SHIFT, type="number", minimum=0, maximum=1,
        title="Label share shift", section="Monitoring",
        description="Mail an alert when the share labelled not-recommended is this much away from the "
        "test split's (0.10: ten percentage points)."),
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
        from review_sentiment.batch_score import Champion, score_reviews

        with stage() as s:
            p, pinned, source = s.params, Champion.from_dict(champion), s.reviews_source()
            target, output_path = s.predictions_target()
            done = score_reviews(
                source, pinned, window=s.scoring_window(p["rescore_days"]), target=target,
                output_path=output_path, dag_run_id=s.pipeline_run_id,
                tracking_uri=s.settings.tracking_uri, chunk_rows=p["chunk_rows"],
            ).to_dict()  # fmt: skip
            # The target as scored (its password redacted: lineage names the table, not the login).
            s.lineage(inputs=[source, pinned.uri], outputs=[done["target"]])
            return done

    @task(task_id=ids.WATCH_PREDICTIONS, execution_timeout=timedelta(minutes=15))
    def watch_predictions(champion: dict) -> dict:
        """One point of the champion's prediction series in MLflow; mail an alert when it moved."""
        from sentiment_mail import send

        from review_sentiment.batch_score import Champion
        from review_sentiment.watch import WatchPolicy
        from review_sentiment.watch import watch_predictions as run_watch

        with stage() as s:
            p = s.params
            found = run_watch(
                *s.predictions_target(), Champion.from_dict(champion), dag_run_id=s.pipeline_run_id,
                run_after=s.context["dag_run"].run_after, settings=s.settings,
                policy=WatchPolicy(psi_alert=p["psi_alert"], label_share_shift=p["label_share_shift"]),
            )  # fmt: skip
            if found.alert:  # mailed, never raised: the predictions are written, the run is green
                send(found.outcome(s.context["ti"].dag_id, s.context["ti"].run_id), s.settings, s.context)
            return found.to_dict()

    pinned = resolve_champion()
    score(pinned) >> watch_predictions(pinned)  # reads back what score wrote
