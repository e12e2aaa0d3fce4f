"""What every task of the sentiment DAGs needs around its one stage call, in one place.

    with stage() as s:
        return str(run_tokenize(s.path(cleaned), s.folder))

``stage()`` reads the settings once, refuses a trigger conf with keys that are not params, gives
the task its run-scoped output folder, the MLflow tags that tie a run to this task instance, the
DAG params, and turns a ``PipelineError`` (bad input, a bad grid, a refusal: retrying cannot help)
into an immediate failure with the reason. Anything else propagates and is retried.

Not a DAG file (see .airflowignore); imports only what the DAG file may import at parse time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException
from sentiment_mail import send

from review_sentiment import names, task_ids
from review_sentiment.config import Settings
from review_sentiment.errors import ConfigError, PipelineError

log = logging.getLogger(__name__)


def log_failure(context: Any) -> None:
    """Every task's failure callback: one line naming the run, the task (and map index) and why."""
    ti = context["ti"]
    where = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
    reason = context.get("exception") or "unknown reason"
    log.error("%s run %s failed at %s (try %s): %s", ti.dag_id, ti.run_id, where, ti.try_number, reason)


def task_defaults(execution_timeout: timedelta) -> dict[str, Any]:
    """The ``default_args`` of both DAGs: three retries a minute apart, the failure log line, and
    the DAG's usual time limit for a task."""
    return {
        "owner": "ml-platform",
        "retries": 3,
        "retry_delay": timedelta(seconds=60),
        "execution_timeout": execution_timeout,
        "on_failure_callback": log_failure,
    }


@dataclass(frozen=True)
class Stage:
    """One running task instance, as its stage call sees it."""

    settings: Settings
    params: Mapping[str, Any]
    context: Any  # Airflow's task context, for the rare task that needs more
    folder: Path  # <artifact root>/<dag_id>/<run_id>/<task_id>[-<map_index>]/
    tags: dict[str, str]  # MLflow run tags: the Airflow dag, run, task, map index and week
    pipeline_run_id: str  # <dag_id>/<run_id>
    week: str  # ISO week of the DAG run, e.g. 2026-W48

    def path(self, received: str) -> Path:
        """A path received through XCom, accepted only inside the artifact root."""
        return self.settings.layout.resolve(received)

    @staticmethod
    def connection_uri(conn_id: str) -> str:
        """The URI of an Airflow connection (e.g. ``AIRFLOW_CONN_REVIEWS_DB``), password included."""
        from airflow.sdk import BaseHook

        return BaseHook.get_connection(conn_id).get_uri()

    def reviews_source(self) -> str:
        """The run's reviews source (the ``source`` and ``source_conn_id`` params), checked and resolved
        (``sources.resolve_source``): a file under the data roots, or a table's URL."""
        from review_sentiment.sources import resolve_source

        p = self.params
        return resolve_source(p["source"], self.settings.data_roots, self.connection_uri, p["source_conn_id"])

    def predictions_target(self) -> tuple[str, Path]:
        """Where ``sentiment_score`` writes (the ``predictions`` params), as ``batch_score.score_reviews``
        takes it: ``parquet`` or the table's URL; and the run's Parquet file (the score task's)."""
        from review_sentiment.batch_score import resolve_target
        from review_sentiment.layout import PREDICTIONS_NAME

        p, ti = self.params, self.context["ti"]
        target = resolve_target(p["predictions"], self.connection_uri, p["predictions_conn_id"])
        score_dir = self.settings.layout.task_dir(ti.dag_id, ti.run_id, task_ids.SCORE, -1)
        return target, score_dir / PREDICTIONS_NAME

    def gate_policy(self) -> Any:
        """The register gate's policy (a ``GatePolicy``) from the run's Promotion params."""
        from review_sentiment.gate import GatePolicy

        p = self.params
        return GatePolicy(floor=p["promotion_floor"], beat_baseline=p["beat_baseline"],
                          force=p["force_promote"], margin=p["noninferiority_margin"])  # fmt: skip

    def pull(self, task_id: str, key: str = "return_value") -> Any:
        """An upstream task's XCom, for a task that must not take it as an argument (an argument
        is an upstream edge, which a join after a branch must not have: see the DAG)."""
        return self.context["ti"].xcom_pull(task_ids=task_id, key=key)

    @staticmethod
    def week_result(registered: Mapping[str, Any], monitored: Mapping[str, Any]) -> Any:
        """``register``'s result with the week's champion-monitoring alert (a ``RegisterResult``),
        from the two tasks' return values."""
        from review_sentiment.decision import RegisterResult

        return RegisterResult.from_dict({**registered, "monitoring": monitored["alert"]})

    @property
    def interval_start(self) -> datetime | None:
        """The start of the run's data interval (None for a manual run without one)."""
        return self.context.get("data_interval_start")

    @property
    def interval_end(self) -> datetime:
        """The end of the run's data interval (a manual run without one: when it was due)."""
        return self.context.get("data_interval_end") or self.context["dag_run"].run_after

    def scoring_window(self, rescore_days: int) -> Any:
        """The reviews window of a ``sentiment_score`` run (``batch_score.scoring_window``): an
        asset-triggered run has no data interval in Airflow 3.3, so it is told apart by run type."""
        from review_sentiment.batch_score import scoring_window

        run = self.context["dag_run"]
        return scoring_window(
            run_type=str(getattr(run.run_type, "value", run.run_type)), run_after=run.run_after,
            interval_start=self.interval_start, interval_end=self.context.get("data_interval_end"),
            rescore_days=rescore_days,
        )  # fmt: skip

    def announced_version(self) -> str | None:
        """The champion version the triggering asset event announced (an asset-triggered run)."""
        events = self.context.get("triggering_asset_events") or {}
        found = [e.extra.get(names.EVENT_VERSION) for key in events for e in events[key] if e.extra]
        return str(found[-1]) if found and found[-1] is not None else None

    def emit_champion_moved(self, result: Mapping[str, Any], alias: Any, asset: Any) -> bool:
        """After ``promote`` (or a rollback): an event on the champion asset, through the task's alias
        outlet, only when this run moved the alias; its extra records the new version. A try that finds the
        version already promoted by this run (``reused``) emits it only if no event says so yet:
        an earlier try that moved the alias and then crashed emitted nothing, while a cleared,
        successful promote did (``asset`` must be an inlet of the task, to read its events)."""
        if result.get("outcome") not in (names.OUTCOME_PROMOTED, names.OUTCOME_ROLLED_BACK):
            return False
        version = str(result["version"])
        if result.get("reused") and any(
            (e.extra or {}).get(names.EVENT_VERSION) == version
            and (e.extra or {}).get(names.EVENT_PIPELINE_RUN) == self.pipeline_run_id
            for e in self.context["inlet_events"][asset]
        ):
            return False
        extra = {
            names.EVENT_MODEL: result["model_name"],
            names.EVENT_VERSION: version,
            names.EVENT_PREVIOUS_VERSION: result.get("champion_version"),
            names.EVENT_PIPELINE_RUN: self.pipeline_run_id,
        }
        self.context["outlet_events"][alias].add(asset, extra=extra)
        return True

    def announce(self, kind: str, result: Mapping[str, Any], monitoring: str | None = None) -> bool:
        """Mail the week's outcome; off without recipients, a failing mail server only logged. A
        result reused by a cleared task was mailed by the first try."""
        from review_sentiment.notify import from_result

        if result.get("reused"):
            return False
        ti = self.context["ti"]
        outcome = from_result(kind, result, ti.dag_id, ti.run_id, monitoring or result.get("monitoring"))
        return send(outcome, self.settings, self.context)

    @property
    def triggering_user(self) -> str | None:
        """Who triggered the DAG run (None for a scheduled or asset-triggered run)."""
        return getattr(self.context["dag_run"], "triggering_user_name", None) or None

    def approver(self) -> str | None:
        """Who approved this run's promotion (the approval's responder), else who triggered a run
        that forces it; None otherwise. For the champion ledger."""
        responder = self.pull(task_ids.APPROVAL, names.XCOM_RESPONDER)
        if responder:
            return str(responder)
        return self.triggering_user if self.params.get("force_promote") else None

    def lineage(self, inputs: Sequence[str | Path], outputs: Sequence[str | Path]) -> None:
        """Declare what the task read and wrote to OpenLineage (``review_sentiment.lineage`` names
        them: file paths, ``postgresql://`` URLs, MLflow ``runs:/`` and ``models:/`` URIs).

        The provider's ``emit_dataset_lineage`` sends them in a RUNNING event of the task's
        OpenLineage run; hook lineage (``get_hook_lineage_collector``) would put them in the
        COMPLETE event, but the provider translates only ``file`` and ``postgres`` assets, so it
        would drop the MLflow runs and model versions. Off (no transport configured): one config
        read. A failure to emit is logged by the provider, never fails the task.
        """
        try:
            from airflow.providers.openlineage import conf as ol_conf
        except ImportError:  # the provider is optional
            return
        if ol_conf.is_disabled():
            return
        from airflow.providers.openlineage.api import emit_dataset_lineage
        from openlineage.client.event_v2 import InputDataset, OutputDataset

        from review_sentiment.lineage import dataset_of

        uri = self.settings.tracking_uri
        emit_dataset_lineage(
            inputs=[InputDataset(*dataset_of(ref, uri)) for ref in inputs],
            outputs=[OutputDataset(*dataset_of(ref, uri)) for ref in outputs],
        )

    @property
    def mlflow_run(self) -> dict[str, Any]:
        """Keyword arguments of a stage that logs an MLflow run: where, tagged how, named how
        (the week first, so the runs list reads by week)."""
        return {
            "tracking_uri": self.settings.tracking_uri,
            "tags": self.tags,
            "run_name_prefix": f"{self.week} ",
        }


def _check_conf(conf: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    """A trigger's conf may only set params: a misspelt key would otherwise be ignored and the
    run go ahead with the default (a full-data, 50-epoch run for ``{"epochs": 2}``)."""
    unknown = sorted(set(conf) - set(params))
    if unknown:
        raise ConfigError(f"unknown conf keys {unknown}; valid keys: {sorted(params)}")


@contextmanager
def stage() -> Iterator[Stage]:
    """The running task instance's :class:`Stage`; a ``PipelineError`` fails it at once."""
    context = get_current_context()
    ti = context["ti"]
    settings = Settings.from_env()
    week = context["dag_run"].run_after.strftime("%G-W%V")
    tags = {
        names.TAG_DAG_ID: ti.dag_id,
        names.TAG_RUN_ID: ti.run_id,
        names.TAG_TASK_ID: ti.task_id,
        names.TAG_MAP_INDEX: str(ti.map_index),
        names.TAG_WEEK: week,
    }
    folder = settings.layout.task_dir(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)
    try:
        # The DAG's declared params: the context's params also hold every conf key.
        _check_conf(context["dag_run"].conf or {}, context["dag"].params)
        yield Stage(settings, context["params"], context, folder, tags, f"{ti.dag_id}/{ti.run_id}", week)
    except PipelineError as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
