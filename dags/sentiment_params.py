"""The trigger form of ``sentiment_retrain``: its params (one ``Param`` a row, grouped by
section) and the package defaults they start from, so the CLI, the bench and a default trigger
agree (tests/dags/test_defaults_agree.py).

Not a DAG file (see .airflowignore); imports only what the DAG file may import at parse time:
``Settings.from_env`` reads the environment only (no network, DB or Variable look-ups).
"""

from __future__ import annotations

from dataclasses import fields

from airflow.sdk import Param

from review_sentiment import config
from review_sentiment.approval import DEFAULT_TIMEOUT_HOURS
from review_sentiment.cleaning_rules import PreprocessSettings
from review_sentiment.model import GRIDS, GridPoint, grid_point_json_schema

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
