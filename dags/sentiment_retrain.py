"""
### Weekly retraining of the review-sentiment model

Retrains the Keras review classifier (predicts *Recommended IND* from the review text) and
publishes it through the MLflow model registry as `customer-sentiment-analysis`.

`ingest` → `preprocess` → `tokenize` → `train` (one mapped task per grid point) and
`baseline` → `register`

* **ingest** reads the review file (or a PostgreSQL table), checks the data contract and writes a
  Parquet snapshot plus its label statistics. A contract violation fails the run at once, listing
  every problem.
* **preprocess** keeps letters, lowercases, Porter-stems; by default it keeps the title, the
  negations and the stopwords (the seed dropped NLTK's stopwords: a switch turns that back on).
* **tokenize** de-duplicates, splits train/validation/test (stratified, seeded) and fits the
  sequence and word-n-gram vocabularies on train only.
* **train** fits one grid point per mapped task; each is an MLflow run (link: *MLflow run*) whose
  model carries a decision threshold chosen on validation.
* **baseline** fits TF-IDF + logistic regression on the same splits, as its own MLflow run.
* **register** registers the best run as a new version (alias `challenger`), logs its evaluation
  report (curves, slices, model card), and moves `champion` only if its test ROC AUC clears the
  floor, beats the baseline and is no worse than the current champion on the same test split,
  and the label distribution has not drifted. A refusal fails the task with the reason (link:
  *MLflow model version*).

Every task writes under `$SENTIMENT_ARTIFACT_ROOT/<dag_id>/<run_id>/<task>/`, atomically, so a
cleared task re-runs to the same result; `register` never makes a second version for a run.
Trigger with **Trigger DAG w/ config** to change the grid, epochs, source, or promotion floor.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, CronTriggerTimetable, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from review_sentiment.config import DEFAULT_PROMOTION_FLOOR, Settings
from review_sentiment.errors import PipelineError
from review_sentiment.model import GRIDS, GridPoint, grid_point_json_schema

DAG_ID = "sentiment_retrain"
log = logging.getLogger(__name__)
SETTINGS = Settings.from_env()  # environment only: no network, DB or Variable look-ups


def _fail_fast(exc: PipelineError) -> AirflowFailException:
    """Bad input or a gate refusal: retrying cannot help, so fail now with the reason."""
    return AirflowFailException(f"{type(exc).__name__}: {exc}")


def _task_dir(context: Any) -> Path:
    """The run-scoped output folder of the running task."""
    ti = context["ti"]
    return Settings.from_env().artifact_root / ti.dag_id / ti.run_id / ti.task_id


def _artifact(path: str) -> Path:
    """A path received through XCom, accepted only inside the artifact root."""
    from review_sentiment.artifacts import safe_path

    return safe_path(path, Settings.from_env().artifact_root)


def _log_failure(context: Any) -> None:
    ti = context["ti"]
    where = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
    reason = context.get("exception") or "unknown reason"
    log.error("%s run %s failed at %s (try %s): %s", ti.dag_id, ti.run_id, where, ti.try_number, reason)


with DAG(
    dag_id=DAG_ID,
    description="Weekly retraining of the review-sentiment model, gated into the MLflow registry",
    doc_md=__doc__,
    # No start_date: a new deployment waits for the next slot instead of starting a full retrain
    # for the latest past one (run_immediately=0 turns off Airflow's "within 10%" catch-up).
    schedule=CronTriggerTimetable(SETTINGS.schedule, timezone="UTC", run_immediately=timedelta(0)),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=3),
    is_paused_upon_creation=False,
    tags=["ml", "mlflow", "retraining", "sentiment"],
    default_args={
        "owner": "ml-platform",
        "retries": 3,
        "retry_delay": timedelta(seconds=60),
        "execution_timeout": timedelta(minutes=30),
        "on_failure_callback": _log_failure,
    },
    params={
        "grid": Param(
            [dict(p) for p in GRIDS["default"]],
            type="array",
            minItems=1,
            maxItems=32,
            items=grid_point_json_schema(),
            title="Model grid",
            description="One entry per model config; each becomes a mapped train task and an MLflow run.",
            section="Model grid",
        ),
        "max_epochs": Param(
            50,
            type="integer",
            minimum=1,
            maximum=500,
            title="Max epochs",
            description="Upper bound on epochs for every grid point (early stopping on validation).",
            section="Model grid",
        ),
        "patience": Param(
            2,
            type="integer",
            minimum=0,
            maximum=50,
            title="Early-stopping patience",
            description="Epochs without validation-loss improvement before training stops.",
            section="Model grid",
        ),
        "keep_negations": Param(
            True,
            type="boolean",
            title="Keep negations",
            description="Keep not/no/nor and the n't forms, which the seed's stopword removal drops.",
            section="Preprocessing",
        ),
        "use_title": Param(
            True,
            type="boolean",
            title="Use the title",
            description="Prepend the review title to its text.",
            section="Preprocessing",
        ),
        "remove_stopwords": Param(
            False,
            type="boolean",
            title="Remove stopwords",
            description="Drop NLTK's English stopwords, as the seed did. Off keeps sentiment-bearing words "
            "such as too/but/very (measured: better models); the seed grid's reproduction turns it on.",
            section="Preprocessing",
        ),
        "source": Param(
            str(SETTINGS.reviews_path),
            type="string",
            minLength=1,
            title="Source",
            description="A CSV/Parquet file in the original schema, or postgres:<table> to read that table "
            "through the Airflow connection below.",
            section="Data source",
        ),
        "source_conn_id": Param(
            "reviews_db",
            type="string",
            pattern="^[A-Za-z0-9_.-]+$",
            title="PostgreSQL connection id",
            description="Airflow connection (e.g. AIRFLOW_CONN_REVIEWS_DB) used for postgres: sources.",
            section="Data source",
        ),
        "sample_fraction": Param(
            1.0,
            type="number",
            exclusiveMinimum=0,
            maximum=1,
            title="Sample fraction",
            description="Share of each class to keep, for quick runs (1 = all reviews).",
            section="Data source",
        ),
        "promotion_floor": Param(
            DEFAULT_PROMOTION_FLOOR,
            type="number",
            minimum=0.5,
            maximum=1,
            title="Promotion floor",
            description="Lowest test ROC AUC a new champion may have.",
            section="Promotion",
        ),
        "beat_baseline": Param(
            True,
            type="boolean",
            title="Must beat the baseline",
            description="Promote only a model whose test ROC AUC beats the TF-IDF + logistic regression "
            "baseline trained in the same run. Turn off only for quick plumbing runs with tiny models.",
            section="Promotion",
        ),
        "force_promote": Param(
            False,
            type="boolean",
            title="Force promote",
            description="Make the new version champion even if the gate refuses (recorded on the version).",
            section="Promotion",
        ),
    },
) as dag:

    @task(execution_timeout=timedelta(minutes=20))
    def ingest() -> str:
        """Snapshot the source as Parquet; the data contract is checked here."""
        from review_sentiment.ingest import allowed_data_roots, check_source
        from review_sentiment.ingest import ingest as run_ingest

        context = get_current_context()
        params = context["params"]
        try:
            # A user-given value: checked before any file is opened or connection looked up.
            kind, source = check_source(str(params["source"]), allowed_data_roots())
            if kind == "table":
                from airflow.sdk import BaseHook

                # The connection's URI carries the password: it never enters params, XCom or logs.
                uri = BaseHook.get_connection(params["source_conn_id"]).get_uri()
                uri = uri.replace("postgres://", "postgresql://", 1)
                source = f"{uri}{'&' if '?' in uri else '?'}table={source}"
            return str(
                run_ingest(
                    source, _task_dir(get_current_context()), sample_fraction=float(params["sample_fraction"])
                )
            )
        except PipelineError as exc:
            raise _fail_fast(exc) from exc

    @task(execution_timeout=timedelta(minutes=20))
    def preprocess(snapshot: str) -> str:
        """Clean the texts with the seed's steps (plus the chosen options)."""
        from review_sentiment.preprocess import PreprocessSettings
        from review_sentiment.preprocess import preprocess as run_preprocess

        context = get_current_context()
        params = context["params"]
        settings = PreprocessSettings(
            keep_negations=params["keep_negations"],
            use_title=params["use_title"],
            remove_stopwords=params["remove_stopwords"],
        )
        # Kept across runs: only reviews not cleaned before (with these settings) are cleaned.
        cache_dir = Settings.from_env().artifact_root / "cache" / "preprocess"
        try:
            return str(run_preprocess(_artifact(snapshot), _task_dir(context), settings, cache_dir=cache_dir))
        except PipelineError as exc:
            raise _fail_fast(exc) from exc

    @task(execution_timeout=timedelta(minutes=20))
    def tokenize(cleaned: str) -> str:
        """Split and vectorise; returns the manifest path."""
        from review_sentiment.tokenize import tokenize as run_tokenize

        try:
            return str(run_tokenize(_artifact(cleaned), _task_dir(get_current_context())))
        except PipelineError as exc:
            raise _fail_fast(exc) from exc

    @task(execution_timeout=timedelta(minutes=5))
    def prepare_grid() -> list[dict[str, Any]]:
        """Create the MLflow experiment once (parallel set_experiment races) and expand the grid."""
        from review_sentiment.model import resolve_grid
        from review_sentiment.tracking import ensure_experiment

        params = get_current_context()["params"]
        try:
            points = resolve_grid(params["grid"])
        except ValueError as exc:
            raise AirflowFailException(f"invalid grid: {exc}") from exc
        experiment_id = ensure_experiment(SETTINGS.experiment_name, Settings.from_env().tracking_uri)
        overrides = {"max_epochs": params["max_epochs"], "patience": params["patience"]}
        return [{"point": {**p.to_dict(), **overrides}, "experiment_id": experiment_id} for p in points]

    @task(map_index_template="{{ grid_point_label }}", execution_timeout=timedelta(minutes=60))
    def train(manifest: str, point: dict[str, Any], experiment_id: str) -> dict[str, str]:
        """Train one grid point; returns its MLflow run id."""
        from review_sentiment.train import train as run_train

        context = get_current_context()
        grid_point = GridPoint.from_dict(point)
        context["grid_point_label"] = grid_point.label  # type: ignore[literal-required]
        ti = context["ti"]
        tags = {
            "airflow.dag_id": ti.dag_id,
            "airflow.run_id": ti.run_id,
            "airflow.task_id": ti.task_id,
            "airflow.map_index": str(ti.map_index),
        }
        try:
            run_id = run_train(
                _artifact(manifest),
                grid_point,
                experiment_id=experiment_id,
                tracking_uri=Settings.from_env().tracking_uri,
                tags=tags,
            )
        except PipelineError as exc:
            raise _fail_fast(exc) from exc
        return {"run_id": run_id, "experiment_id": experiment_id}

    @task(execution_timeout=timedelta(minutes=20))
    def baseline(manifest: str, grid: list[dict[str, Any]]) -> dict[str, str]:
        """TF-IDF + logistic regression on the same splits: the bar the champion must clear."""
        from review_sentiment.baseline import train_baseline

        ti = get_current_context()["ti"]
        experiment_id = grid[0]["experiment_id"]
        run_id = train_baseline(
            _artifact(manifest),
            experiment_id=experiment_id,
            tracking_uri=Settings.from_env().tracking_uri,
            tags={"airflow.dag_id": ti.dag_id, "airflow.run_id": ti.run_id, "airflow.task_id": ti.task_id},
        )
        return {"run_id": run_id, "experiment_id": experiment_id}

    @task(execution_timeout=timedelta(minutes=30))
    def register(
        manifest: str, trained: list[dict[str, str]], linear: dict[str, str], snapshot: str
    ) -> dict[str, Any]:
        """Register the best run, report on it, promote it only through the gate (idempotent per
        DAG run)."""
        from review_sentiment.drift import LABEL_STATS_NAME
        from review_sentiment.register import register as run_register
        from review_sentiment.register import require_promoted

        context = get_current_context()
        ti, params = context["ti"], context["params"]
        settings = Settings.from_env()
        try:
            result = run_register(
                [t["run_id"] for t in trained],
                _artifact(manifest),
                baseline_run_id=linear["run_id"],
                label_stats_path=_artifact(str(Path(snapshot).parent / LABEL_STATS_NAME)),
                artifact_root=settings.artifact_root,
                tracking_uri=settings.tracking_uri,
                model_name=settings.model_name,
                floor=float(params["promotion_floor"]),
                pipeline_run_id=f"{ti.dag_id}/{ti.run_id}",
                force=bool(params["force_promote"]),
                beat_baseline=bool(params["beat_baseline"]),
            )
            log.info("register: %s", result.to_dict())
            require_promoted(result)
        except PipelineError as exc:
            raise _fail_fast(exc) from exc
        return result.to_dict()

    snapshot = ingest()
    manifest = tokenize(preprocess(snapshot))
    grid = prepare_grid()
    trained = train.partial(manifest=manifest).expand_kwargs(grid)
    register(manifest, trained, baseline(manifest, grid), snapshot)
