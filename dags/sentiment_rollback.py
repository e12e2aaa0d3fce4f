"""
### Roll the champion back

Moves the `champion` alias of `customer-sentiment-analysis` back to an earlier version, by hand,
with a reason. Trigger it with **Trigger DAG w/ config**: *Version* (empty: the champion before
the current one, as the champion ledger says), *Reason* (required) and *Force*.

`rollback`

* Takes the promotion lock (the one `sentiment_retrain`'s `promote` takes), so a rollback and a
  promotion never interleave, and records the move in the **champion ledger** (tags `ledger.<n>`
  on the registered model; `python -m review_sentiment history` prints it) before moving the alias.
* **Refuses** (the run fails at once, nothing moved, the failure is mailed) a version that does not
  exist or was deleted, is not ready, is archived, never passed the gate (`gate.decision` is not
  `passed`) or failed its smoke check (`smoke.passed` is `false`), the last three unless *Force*.
* Then updates the Asset `sentiment_champion` (the restored version in the event's extra), so
  `sentiment_score` re-scores the recent reviews with it, and mails the outcome.
* A rollback to the version that already is champion moves nothing, writes no ledger entry and
  says so (a green run); a cleared task repeats nothing.

The same from a shell: `python -m review_sentiment rollback --to VERSION --reason TEXT [--force]`.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param, task
from sentiment_assets import CHAMPION, CHAMPION_MOVED
from sentiment_mail import mail_failure
from sentiment_stage import stage, task_defaults

from review_sentiment import task_ids as ids
from review_sentiment.config import ROLLBACK_DAG_ID

# fmt: off
PARAMS = {
    # "null" too: the trigger form treats a plain string as required (an empty field blocks the
    # Trigger button) and sends a cleared field as null; empty means the previous champion.
    "to_version": Param("", type=["null", "string"], pattern="^(v?[0-9]+)?$", title="Version",
        description="The model version to make champion again; empty: the champion before the current "
        "one in the champion ledger."),
    "reason": Param(type="string", minLength=1, maxLength=1000, title="Reason",
        description="Why the champion is rolled back; recorded in the champion ledger and the mail."),
    "force": Param(False, type="boolean", title="Force",
        description="Also roll back to a version that is archived, never passed the gate or failed its "
        "smoke check."),
}
# fmt: on


with DAG(
    dag_id=ROLLBACK_DAG_ID,
    description="Move the champion back to an earlier version, recorded in the champion ledger",
    doc_md=__doc__,
    params=PARAMS,
    schedule=None,  # by hand only: the trigger form, the REST API or the CLI
    tags=["ml", "mlflow", "rollback", "sentiment"],
    default_args=task_defaults(execution_timeout=timedelta(minutes=10)),
    on_failure_callback=mail_failure,  # a refused rollback fails the run: mailed as a failure
    max_active_runs=1,
    catchup=False,
    dagrun_timeout=timedelta(minutes=30),
    is_paused_upon_creation=False,
) as dag:
    # The inlet: to see an earlier try's event (a cleared task emits none twice).
    @task(task_id=ids.ROLLBACK, inlets=[CHAMPION], outlets=[CHAMPION_MOVED])
    def rollback() -> dict:
        """Move champion back under the promotion lock, recorded in the ledger; an event on the
        champion asset (sentiment_score re-scores) only when it moved; mail the outcome."""
        from review_sentiment.names import OUTCOME_ROLLED_BACK
        from review_sentiment.rollback import rollback as run_rollback

        with stage() as s:
            p = s.params
            done = run_rollback(
                p["to_version"] or None, p["reason"], settings=s.settings, force=p["force"],
                pipeline_run_id=s.pipeline_run_id, by=s.triggering_user,
            ).to_dict()  # fmt: skip
            s.announce(OUTCOME_ROLLED_BACK, done)
            s.emit_champion_moved(done, CHAMPION_MOVED, CHAMPION)
            return done

    rollback()
