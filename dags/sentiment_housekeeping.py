"""
### Weekly housekeeping of the review-sentiment artifacts

Keeps the artifact root and the model registry from growing without bound. Runs on Sundays at
06:00 UTC (between the daily scoring and Monday's retraining); **Trigger DAG w/ config** runs it
now, with *Dry run* to see the plan only (in the task log and the return value).

`housekeeping`

* **Deletes run folders** (`$SENTIMENT_ARTIFACT_ROOT/<dag_id>/<run_id>/`) last written more than
  *Keep weeks* ago: each is renamed into `trash/` first, then deleted, so a stopped run is
  completed by the next one.
* **Compacts the preprocess cache** to the reviews of the snapshots in the run folders it keeps.
* **Archives** (registry stage *Archived*, tag `housekeeping.archived`) versions older than
  *Challenger weeks* that never were champion and that no alias points at.
* **Never touches** the champion, the last *Keep champions* champions of the champion ledger,
  the run folders their version tags name (`pipeline_run_id`, `training.snapshot`), MLflow
  artifacts (models, seen-review records, reference distributions), `state/` or `locks/`.
* Plans and moves under the promotion lock, so no champion moves meanwhile; logs what it freed
  as a run of the MLflow experiment `sentiment-housekeeping`.

The same from a shell: `python -m review_sentiment housekeeping [--dry-run] [--keep-weeks N]`.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable, Param, task
from sentiment_mail import mail_failure
from sentiment_stage import stage, task_defaults

from review_sentiment import config
from review_sentiment import task_ids as ids

# fmt: off
PARAMS = {
    "keep_weeks": Param(config.DEFAULT_KEEP_RUN_WEEKS, type="integer", minimum=1, maximum=520,
        title="Keep weeks", description="Delete run folders last written more than this many weeks ago "
        "(unless a kept champion references them)."),
    "challenger_weeks": Param(config.DEFAULT_KEEP_CHALLENGER_WEEKS, type="integer", minimum=1, maximum=520,
        title="Challenger weeks", description="Archive versions older than this many weeks that never were "
        "champion."),
    "keep_champions": Param(config.DEFAULT_KEEP_CHAMPIONS, type="integer", minimum=1, maximum=100,
        title="Keep champions", description="The newest this many champions of the champion ledger (and "
        "the current one) keep every run folder they reference."),
    "dry_run": Param(False, type="boolean", title="Dry run",
        description="Only plan: log what would be deleted, compacted and archived; change nothing."),
}
# fmt: on


with DAG(
    dag_id=config.HOUSEKEEPING_DAG_ID,
    description="Delete old run folders, compact the preprocess cache, archive stale challengers",
    doc_md=__doc__,
    params=PARAMS,
    # run_immediately=0: unpausing or deploying it does not start a pass at once.
    schedule=CronTriggerTimetable(
        config.DEFAULT_HOUSEKEEPING_SCHEDULE,
        timezone="UTC",
        interval=timedelta(weeks=1),
        run_immediately=timedelta(0),
    ),
    tags=["ml", "mlflow", "housekeeping", "sentiment"],
    default_args=task_defaults(execution_timeout=timedelta(minutes=30)),
    on_failure_callback=mail_failure,
    max_active_runs=1,
    catchup=False,
    dagrun_timeout=timedelta(hours=2),
    is_paused_upon_creation=False,
) as dag:

    @task(task_id=ids.HOUSEKEEPING)
    def housekeeping() -> dict:
        """Plan and apply one pass (a retry completes an interrupted one); returns what it freed."""
        from review_sentiment.housekeeping import housekeeping as run_housekeeping
        from review_sentiment.housekeeping_plan import Policy

        with stage() as s:
            p = s.params
            policy = Policy(p["keep_weeks"], p["challenger_weeks"], p["keep_champions"])
            report = run_housekeeping(s.settings, policy, dry_run=p["dry_run"], tags=s.tags)
            return report.to_dict()

    housekeeping()
