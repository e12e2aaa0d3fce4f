"""
### Weekly retraining of the review-sentiment model

Retrains the Keras review classifier (predicts *Recommended IND* from the review text) and
publishes it through the MLflow model registry as `customer-sentiment-analysis`.

* **ingest** reads the review file (or a PostgreSQL table), checks the data contract and writes a
  Parquet snapshot plus its label statistics. A contract violation fails the run at once, listing
  every problem.
* **preprocess** keeps letters, lowercases, Porter-stems; by default it keeps the title, the
  negations and the stopwords (a switch drops NLTK's English stopwords).
* **tokenize** de-duplicates, splits train/validation/test by a keyed hash of the review id (a
  review keeps its split from week to week) and fits the vocabularies on train only.
* **train** fits one grid point per mapped task; each is an MLflow run (link: *MLflow run*) whose
  model carries a decision threshold chosen on validation.
* **baseline** fits TF-IDF + logistic regression on the same splits, as its own MLflow run.
* **register** registers the best run as a new version (alias `challenger`, link: *MLflow model
  version*), logs its evaluation report (curves, slices, model card) and the gate's verdict: test
  ROC AUC above the floor, better than the baseline, and non-inferior to the champion
  on the (500+) test reviews neither was trained on (ROC AUC difference's 95% CI above -margin);
  it also checks the week's new reviews for drift against the champion's training snapshot
  (label share, ratings, a TF-IDF classifier telling new from old).
* **smoke_check** (when the gate passed or the run forces promotion) loads the new version by its
  `models:/` URI in a fresh process, as a user would, and requires sane scores for canned reviews
  (obvious praise and complaints on the right side of its threshold; empty, 1 MB, non-English,
  emoji, HTML-entity text), register's scores for a test sample to 1e-6, and 1,000 reviews
  within the latency budget; the verdict is tagged `smoke.*` on the version.
* **decide** branches: gate refused, smoke check failed (even when forced: force overrides the
  gate's judgement, never a version that does not load or score right) or the week drifted
  (without approval) keep the champion; otherwise **promote** (after an **approval** if the run
  asks for one; a drifted week asks too) moves `champion` to the new version (under a lock,
  re-checked if another run promoted meanwhile) and then updates the Asset `sentiment_champion`
  (the new version in the event's extra), which makes `sentiment_score` re-score the last week
  with it; **keep_champion** records why the week kept the champion (outcome `kept`,
  `smoke_failed` or `drift`) and mails it. A kept week is a successful run; bad data and crashes
  still fail it.

Every task writes under `$SENTIMENT_ARTIFACT_ROOT/<dag_id>/<run_id>/<task>/`, atomically, so a
cleared task re-runs to the same result; `register` never makes a second version for a run.
Trigger with **Trigger DAG w/ config** to change the grid, epochs, source, or promotion floor.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, CronTriggerTimetable, task
from sentiment_approval import Approval
from sentiment_assets import CHAMPION, CHAMPION_MOVED, REVIEWS
from sentiment_mail import mail_failure
from sentiment_params import PARAMS, PREPROCESS_PARAMS, SETTINGS
from sentiment_stage import stage, task_defaults

from review_sentiment import config
from review_sentiment import task_ids as ids
from review_sentiment.names import OUTCOME_KEPT, XCOM_EXPERIMENT_ID, XCOM_RUN_ID

log = logging.getLogger(__name__)

with DAG(
    dag_id=config.RETRAIN_DAG_ID,
    description="Weekly retraining of the review-sentiment model, gated into the MLflow registry",
    doc_md=__doc__,
    # No start_date: a new deployment waits for the next slot instead of starting a full retrain
    # for the latest past one (run_immediately=0 turns off Airflow's "within 10%" catch-up).
    # Each run covers the week before it (its data interval): a table source gives the reviews that
    # had arrived by the interval's end, so a rerun or backfill of a week reproduces its data.
    schedule=CronTriggerTimetable(
        SETTINGS.schedule, timezone="UTC", interval=timedelta(weeks=1), run_immediately=timedelta(0)
    ),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=3),
    is_paused_upon_creation=False,
    on_failure_callback=mail_failure,
    tags=["ml", "mlflow", "retraining", "sentiment"],
    default_args=task_defaults(execution_timeout=timedelta(minutes=30)),
    params=PARAMS,
) as dag:

    @task(
        task_id=ids.INGEST, execution_timeout=timedelta(minutes=20), inlets=[REVIEWS], multiple_outputs=True
    )
    def ingest() -> dict[str, str]:
        """Snapshot the source as Parquet; the data contract is checked here."""
        from review_sentiment.ingest import ingest as run_ingest
        from review_sentiment.layout import IngestFiles

        with stage() as s:
            p = s.params
            snapshot = run_ingest(s.reviews_source(), s.folder, as_of=s.interval_end,
                                  weeks=p["weeks_of_data"], sample_fraction=p["sample_fraction"])  # fmt: skip
            files = IngestFiles.of(snapshot)
            s.lineage(inputs=[s.reviews_source()], outputs=[files.snapshot, files.label_stats])
            return {"snapshot": str(files.snapshot), "label_stats": str(files.label_stats)}

    @task(task_id=ids.MONITOR_CHAMPION, execution_timeout=timedelta(minutes=15), inlets=[REVIEWS])
    def monitor_champion() -> dict:
        """Score the champion on the reviews that arrived in this run's week (a table source): one
        point of its weekly series in MLflow; an alert when it drops."""
        from review_sentiment.monitor import monitor_champion as run_monitor

        with stage() as s:
            p = s.params
            return run_monitor(
                s.reviews_source(), s.interval_start, s.interval_end, settings=s.settings, week=s.week,
                floor=p["monitoring_floor"], margin=p["monitoring_margin"],
            ).to_dict()  # fmt: skip

    @task(task_id=ids.PREPROCESS, execution_timeout=timedelta(minutes=20))
    def preprocess(snapshot: str) -> str:
        """Clean the texts (cached across runs: only reviews not cleaned before are cleaned)."""
        from review_sentiment.cleaning_rules import PreprocessSettings
        from review_sentiment.preprocess import preprocess as run_preprocess

        with stage() as s:
            options = PreprocessSettings(**{k: s.params[k] for k in PREPROCESS_PARAMS})
            cache = s.settings.layout.preprocess_cache
            cleaned = run_preprocess(s.path(snapshot), s.folder, options, cache_dir=cache)
            s.lineage(inputs=[snapshot], outputs=[cleaned])
            return str(cleaned)

    @task(task_id=ids.TOKENIZE, execution_timeout=timedelta(minutes=20))
    def tokenize(cleaned: str) -> str:
        """Split and vectorise; returns the manifest path."""
        from review_sentiment.tokenize import tokenize as run_tokenize

        with stage() as s:
            split = run_tokenize(s.path(cleaned), s.folder)
            s.lineage(inputs=[cleaned], outputs=[split])
            return str(split)

    @task(task_id=ids.PREPARE_GRID, execution_timeout=timedelta(minutes=5))
    def prepare_grid() -> list[dict[str, Any]]:
        """Create the MLflow experiment once (parallel set_experiment races) and expand the grid."""
        from review_sentiment.model import resolve_grid
        from review_sentiment.tracking import ensure_experiment

        with stage() as s:
            overrides = {"max_epochs": s.params["max_epochs"], "patience": s.params["patience"]}
            points = resolve_grid([{**p, **overrides} for p in s.params["grid"]])
            experiment_id = ensure_experiment(s.settings.experiment_name, s.settings.tracking_uri)
            return [{"point": p.to_dict(), XCOM_EXPERIMENT_ID: experiment_id} for p in points]

    # The training pool bounds how many grid points train at once, whatever the grid's size: each
    # holds TensorFlow and the training arrays (its slots: SENTIMENT_TRAINING_SLOTS, set by the init).
    @task(
        task_id=ids.TRAIN,
        execution_timeout=timedelta(hours=1),
        map_index_template="{{ grid_point_label }}",
        pool=config.TRAINING_POOL,
    )
    def train(manifest: str, point: dict[str, Any], experiment_id: str) -> dict[str, str]:
        """Train one grid point; returns its MLflow run id."""
        from review_sentiment.model import GridPoint
        from review_sentiment.train import train as run_train

        with stage() as s:
            s.context["grid_point_label"] = GridPoint.from_dict(point).label
            run_id = run_train(s.path(manifest), point, experiment_id=experiment_id, **s.mlflow_run)
            s.lineage(inputs=[manifest], outputs=[f"runs:/{run_id}"])
            return {XCOM_RUN_ID: run_id, XCOM_EXPERIMENT_ID: experiment_id}

    @task(task_id=ids.BASELINE, execution_timeout=timedelta(minutes=20))
    def baseline(manifest: str, grid: list[dict[str, Any]]) -> dict[str, str]:
        """TF-IDF + logistic regression on the same splits: the bar the champion must clear."""
        from review_sentiment.baseline import train_baseline

        with stage() as s:
            experiment_id = grid[0][XCOM_EXPERIMENT_ID]
            run_id = train_baseline(s.path(manifest), experiment_id=experiment_id, **s.mlflow_run)
            s.lineage(inputs=[manifest], outputs=[f"runs:/{run_id}"])
            return {XCOM_RUN_ID: run_id, XCOM_EXPERIMENT_ID: experiment_id}

    @task(task_id=ids.REGISTER, execution_timeout=timedelta(minutes=30))
    def register(manifest: str, trained: list[dict[str, str]], linear: dict[str, str], snapshot: str) -> dict:
        """Register the best run as the challenger, report on it, record the gate's verdict
        (idempotent per DAG run). The mapped results are read as one slice: iterating them would
        probe one past the end, which the task log shows as an error."""
        from review_sentiment.register import register as run_register

        with stage() as s:
            done = run_register(
                [t[XCOM_RUN_ID] for t in trained[:]], s.path(manifest), settings=s.settings,
                policy=s.gate_policy(), baseline_run_id=linear[XCOM_RUN_ID],
                snapshot_path=s.path(snapshot), pipeline_run_id=s.pipeline_run_id, settle=False,
            ).to_dict()  # fmt: skip
            version = f"models:/{done['model_name']}/{done['version']}"
            s.lineage(inputs=[manifest, f"runs:/{done['run_id']}"], outputs=[version])
            return done

    @task(task_id=ids.SMOKE_CHECK, execution_timeout=timedelta(minutes=20))
    def smoke_check(result: dict) -> dict:
        """Load the new version by its models:/ URI in a fresh process and score canned reviews,
        register's test sample and 1,000 reviews against the clock (skipped if the gate refused)."""
        from review_sentiment.smoke import check_week

        with stage() as s:
            return check_week(result, forced=s.params["force_promote"], settings=s.settings).to_dict()

    @task.branch(task_id=ids.DECIDE)
    def decide(result: dict, smoke: dict, params: dict) -> str:
        """The week's way (review_sentiment.routing): the gate refused, the smoke check failed or
        the week drifted keep the champion; otherwise promote (after an approval, if asked)."""
        from review_sentiment.routing import route

        way = route(
            result, smoke, forced=params["force_promote"], require_approval=params["require_approval"]
        )
        log.info("gate %s, smoke check %s: %s (%s)", result["passed"], smoke["status"], way.way, way.reason)
        return way.way

    # promote and keep_champion each follow one of two paths (straight from the gate, or through
    # the approval), so they run when one upstream succeeded and none failed. Their only upstream
    # tasks are those paths: they pull what they need from XCom rather than take it as arguments,
    # since an argument's task (always a success) would count as that one success.
    join = "none_failed_min_one_success"

    @task(
        task_id=ids.PROMOTE, execution_timeout=timedelta(minutes=30), trigger_rule=join,
        inlets=[CHAMPION], outlets=[CHAMPION_MOVED],  # the inlet: to see an earlier try's event
    )  # fmt: skip
    def promote() -> dict:
        """Move champion to the new version under the promotion lock (idempotent, race-safe); an
        event on the champion asset (sentiment_score re-scores) only when it moved."""
        from review_sentiment.register import promote as run_promote

        with stage() as s:
            week = s.week_result(s.pull(ids.REGISTER), s.pull(ids.MONITOR_CHAMPION))
            done = run_promote(
                week, s.path(s.pull(ids.TOKENIZE)), settings=s.settings, approved_by=s.approver(),
                pipeline_run_id=s.pipeline_run_id,
            ).to_dict()  # fmt: skip
            s.announce(done["outcome"], done)
            moved = [f"models:/{done['model_name']}@{config.CHAMPION_ALIAS}"] if done["promoted"] else []
            s.lineage(inputs=[f"models:/{done['model_name']}/{done['version']}"], outputs=moved)
            s.emit_champion_moved(done, CHAMPION_MOVED, CHAMPION)
            return done

    @task(task_id=ids.KEEP_CHAMPION, execution_timeout=timedelta(minutes=5), trigger_rule=join)
    def keep_champion() -> dict:
        """Record that the week kept the champion and why (outcome kept, smoke_failed or drift);
        the new version stays the challenger."""
        from review_sentiment.register import keep_champion as run_keep
        from review_sentiment.routing import route

        with stage() as s:
            p, week = s.params, s.week_result(s.pull(ids.REGISTER), s.pull(ids.MONITOR_CHAMPION))
            way = route(s.pull(ids.REGISTER), s.pull(ids.SMOKE_CHECK), forced=p["force_promote"],
                        require_approval=p["require_approval"])  # fmt: skip
            done = run_keep(week, settings=s.settings, reason=way.reason if way.keeps else None,
                            outcome=way.outcome or OUTCOME_KEPT).to_dict()  # fmt: skip
            s.announce(done["outcome"], done)
            return done

    snapshot = ingest()
    manifest = tokenize(preprocess(snapshot["snapshot"]))
    grid = prepare_grid()
    trained = train.partial(manifest=manifest).expand_kwargs(grid)
    candidate = register(manifest, trained, baseline(manifest, grid), snapshot["snapshot"])
    watch = monitor_champion()
    watch >> grid  # the champion is measured on the new week before anything is trained
    promoted, kept = promote(), keep_champion()
    passed, refused = EmptyOperator(task_id=ids.GATE_PASSED), EmptyOperator(task_id=ids.GATE_REFUSED)
    unsound, drifted = EmptyOperator(task_id=ids.SMOKE_FAILED), EmptyOperator(task_id=ids.DRIFTED)
    approval = Approval(
        task_id=ids.APPROVAL, register_task=ids.REGISTER, execution_timeout=timedelta(minutes=5)
    )
    way = decide(candidate, smoke_check(candidate))
    watch >> way  # the week's monitoring alert goes into its mail and note
    way >> [passed, approval, refused, unsound, drifted]
    passed >> promoted
    [refused, unsound, drifted] >> kept
    approval >> [promoted, kept]
