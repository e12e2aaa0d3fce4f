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
  ROC AUC above the floor, better than the baseline, no label drift, and non-inferior to the champion
  on the (500+) test reviews neither was trained on (ROC AUC difference's 95% CI above -margin).
* **decide** branches: **promote** moves `champion` to the new version (under a lock, re-checked
  if another run promoted meanwhile) and then updates the Asset `sentiment_champion` (the new
  version in the event's extra), which makes `sentiment_score` re-score the last week with it;
  **keep_champion** records that the week kept the champion. A refusal is a kept week, a
  successful run; bad data and crashes still fail it.

Every task writes under `$SENTIMENT_ARTIFACT_ROOT/<dag_id>/<run_id>/<task>/`, atomically, so a
cleared task re-runs to the same result; `register` never makes a second version for a run.
Trigger with **Trigger DAG w/ config** to change the grid, epochs, source, or promotion floor.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, CronTriggerTimetable, Param, task
from sentiment_assets import CHAMPION, CHAMPION_MOVED, REVIEWS
from sentiment_mail import mail_failure
from sentiment_stage import Approval, stage, task_defaults

from review_sentiment import config
from review_sentiment import task_ids as ids
from review_sentiment.approval import DEFAULT_TIMEOUT_HOURS
from review_sentiment.cleaning_rules import PreprocessSettings
from review_sentiment.model import GRIDS, GridPoint, grid_point_json_schema
from review_sentiment.names import XCOM_EXPERIMENT_ID, XCOM_RUN_ID

log = logging.getLogger(__name__)
SETTINGS = config.Settings.from_env()  # environment only: no network, DB or Variable look-ups
PREPROCESS_PARAMS = ("keep_negations", "use_title", "remove_stopwords")
# The package's defaults (and GridPoint's ranges): the CLI, the bench and a default trigger agree.
PREP = {f.name: f.default for f in fields(PreprocessSettings)}
LIMIT = {f.name: {"default": f.default, **f.metadata["bound"].json_schema()} for f in fields(GridPoint)
         if f.name in ("max_epochs", "patience")}  # fmt: skip


# The trigger form, one Param a row and grouped by section: a table, so laid out by hand.
# fmt: off
PARAMS = {
    "grid": Param([dict(p) for p in GRIDS["default"]], type="array", minItems=1, maxItems=32,
        items=grid_point_json_schema(), title="Model grid", section="Model grid",
        description="One entry per model config; each becomes a mapped train task and an MLflow run."),
    "max_epochs": Param(**LIMIT["max_epochs"], title="Max epochs", section="Model grid",
        description="Upper bound on epochs for every grid point (early stopping on validation)."),
    "patience": Param(**LIMIT["patience"], title="Early-stopping patience", section="Model grid",
        description="Epochs without validation-loss improvement before stopping."),
    # PREPROCESS_PARAMS: the preprocessing switches, passed to PreprocessSettings as they are.
    "keep_negations": Param(PREP["keep_negations"], type="boolean", title="Keep negations",
        section="Preprocessing", description="Keep not/no/nor and the n't forms, which NLTK's stopword "
        "list holds."),
    "use_title": Param(PREP["use_title"], type="boolean", title="Use the title", section="Preprocessing",
        description="Prepend the review title to its text."),
    "remove_stopwords": Param(PREP["remove_stopwords"], type="boolean", title="Remove stopwords",
        section="Preprocessing", description="Drop NLTK's English stopwords. Off keeps sentiment-bearing "
        "words such as too/but/very, which gives better models (see README, Model quality)."),
    "source": Param(SETTINGS.source, type="string", minLength=1, title="Source", section="Data source",
        description="A CSV/Parquet file in the original schema, or postgres:<table> to read that table "
        "through the Airflow connection below."),
    "source_conn_id": Param(config.DEFAULT_REVIEWS_CONN_ID, type="string", pattern="^[A-Za-z0-9_.-]+$",
        section="Data source", title="PostgreSQL connection id",
        description="Airflow connection (e.g. AIRFLOW_CONN_REVIEWS_DB) used for postgres: sources."),
    "weeks_of_data": Param(0, type="integer", minimum=0, maximum=520, title="Weeks of data",
        section="Data source", description="postgres: sources: only the reviews that arrived in the last N "
        "weeks before the end of the run's data interval (0 = all that had arrived by then). A file has no "
        "arrival times: it is read whole."),
    "sample_fraction": Param(1.0, type="number", exclusiveMinimum=0, maximum=1, title="Sample fraction",
        section="Data source", description="Share of each class to keep, for quick runs (1 = all reviews)."),
    "promotion_floor": Param(config.DEFAULT_PROMOTION_FLOOR, type="number", minimum=0.5, maximum=1,
        section="Promotion", title="Promotion floor", description="Lowest test ROC AUC a champion may have."),
    "beat_baseline": Param(True, type="boolean", title="Must beat the baseline", section="Promotion",
        description="Promote only a model whose test ROC AUC beats the TF-IDF + logistic regression baseline "
        "trained in the same run. Turn off only for quick plumbing runs with tiny models."),
    "noninferiority_margin": Param(config.DEFAULT_NONINFERIORITY_MARGIN, type="number", minimum=0,
        maximum=0.05, title="Non-inferiority margin", section="Promotion", description="Promote only if the "
        "95% CI lower bound of candidate - champion ROC AUC (unseen test reviews) is above -margin."),
    "require_approval": Param(False, type="boolean", title="Require approval", section="Promotion",
        description="Ask a human (Required Actions in the Airflow UI, or the REST API) before promoting what "
        "the gate passed; Reject or no answer keeps the champion."),
    "approval_timeout_hours": Param(DEFAULT_TIMEOUT_HOURS, type="number", exclusiveMinimum=0, maximum=720,
        title="Approval timeout (hours)", section="Promotion",
        description="With Require approval: hours to wait for an answer before keeping the champion."),
    "monitoring_floor": Param(config.DEFAULT_MONITOR_FLOOR, type="number", minimum=0, maximum=1,
        title="Monitoring floor", section="Monitoring",
        description="Alert when the champion's ROC AUC on the new week's reviews is below this."),
    "monitoring_margin": Param(config.DEFAULT_MONITOR_MARGIN, type="number", minimum=0, maximum=1,
        title="Monitoring margin", section="Monitoring",
        description="Alert when the champion's ROC AUC on the new week's reviews is this much below its own "
        "test ROC AUC."),
    "force_promote": Param(False, type="boolean", title="Force promote", section="Promotion",
        description="Make the new version champion even if the gate refuses (recorded on the version)."),
}
# fmt: on


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

    @task(
        task_id=ids.TRAIN, execution_timeout=timedelta(hours=1), map_index_template="{{ grid_point_label }}"
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
    def register(
        manifest: str, trained: list[dict[str, str]], linear: dict[str, str], label_stats: str
    ) -> dict:
        """Register the best run as the challenger, report on it, record the gate's verdict
        (idempotent per DAG run). The mapped results are read as one slice: iterating them would
        probe one past the end, which the task log shows as an error."""
        from review_sentiment.register import register as run_register

        with stage() as s:
            done = run_register(
                [t[XCOM_RUN_ID] for t in trained[:]], s.path(manifest), settings=s.settings,
                policy=s.gate_policy(), baseline_run_id=linear[XCOM_RUN_ID],
                label_stats_path=s.path(label_stats), pipeline_run_id=s.pipeline_run_id, settle=False,
            ).to_dict()  # fmt: skip
            version = f"models:/{done['model_name']}/{done['version']}"
            s.lineage(inputs=[manifest, f"runs:/{done['run_id']}"], outputs=[version])
            return done

    @task.branch(task_id=ids.DECIDE)
    def decide(result: dict, params: dict) -> str:
        """The week's way: what the gate passed is promoted (after an approval, if the run asks
        for one); otherwise the champion stays."""
        log.info("gate %s: %s", "passed" if result["passed"] else "refused", result["reason"])
        if not result["passed"]:
            return ids.GATE_REFUSED
        return ids.APPROVAL if params["require_approval"] else ids.GATE_PASSED

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
                label_stats_path=s.path(s.pull(ids.INGEST, "label_stats")), pipeline_run_id=s.pipeline_run_id,
            ).to_dict()  # fmt: skip
            s.announce(done["outcome"], done)
            moved = [f"models:/{done['model_name']}@{config.CHAMPION_ALIAS}"] if done["promoted"] else []
            s.lineage(inputs=[f"models:/{done['model_name']}/{done['version']}"], outputs=moved)
            s.emit_champion_moved(done, CHAMPION_MOVED, CHAMPION)
            return done

    @task(task_id=ids.KEEP_CHAMPION, execution_timeout=timedelta(minutes=5), trigger_rule=join)
    def keep_champion() -> dict:
        """Record that the week kept the champion; the new version stays the challenger."""
        from review_sentiment.register import keep_champion as run_keep

        with stage() as s:
            week = s.week_result(s.pull(ids.REGISTER), s.pull(ids.MONITOR_CHAMPION))
            done = run_keep(week, settings=s.settings).to_dict()
            s.announce(done["outcome"], done)
            return done

    snapshot = ingest()
    manifest = tokenize(preprocess(snapshot["snapshot"]))
    grid = prepare_grid()
    trained = train.partial(manifest=manifest).expand_kwargs(grid)
    candidate = register(manifest, trained, baseline(manifest, grid), snapshot["label_stats"])
    watch = monitor_champion()
    watch >> grid  # the champion is measured on the new week before anything is trained
    promoted, kept = promote(), keep_champion()
    passed, refused = EmptyOperator(task_id=ids.GATE_PASSED), EmptyOperator(task_id=ids.GATE_REFUSED)
    approval = Approval(
        task_id=ids.APPROVAL, register_task=ids.REGISTER, execution_timeout=timedelta(minutes=5)
    )
    way = decide(candidate)
    watch >> way  # the week's monitoring alert goes into its mail and note
    way >> [passed, approval, refused]
    passed >> promoted
    refused >> kept
    approval >> [promoted, kept]
