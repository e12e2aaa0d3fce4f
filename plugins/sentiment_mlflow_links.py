"""Extra links from the retraining DAG to MLflow: ``train`` -> its run, ``register`` -> the version.

The MLflow UI's base URL comes from ``MLFLOW_UI_URL``. Links are resolved by the API server from
the task's XCom (its return value carries the run id or the version); the MLflow runs carry the
Airflow dag/run/task ids and map index as tags, so the way back is a search in MLflow. The
addresses come from ``review_sentiment.links``, which notifications use too.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink

from review_sentiment import task_ids
from review_sentiment.config import RETRAIN_DAG_ID, Settings
from review_sentiment.links import model_version_url, run_url
from review_sentiment.names import XCOM_EXPERIMENT_ID, XCOM_RUN_ID


def mlflow_ui_url() -> str:
    """Base URL of the MLflow UI as users' browsers reach it (``Settings.mlflow_ui_url``)."""
    return Settings.from_env().mlflow_ui_url


def _return_value(ti_key: Any) -> Any:
    """The task instance's return value, read from the metadata DB (the API server has access)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(
        run_id=ti_key.run_id,
        key="return_value",
        dag_ids=ti_key.dag_id,
        task_ids=ti_key.task_id,
        map_indexes=ti_key.map_index,
        limit=1,
    )
    with create_session() as session:
        row = session.scalars(query).first()
        return XComModel.deserialize_value(row) if row is not None else None


class _ReturnValueLink(BaseOperatorLink):
    """A link made from the return value of one of this DAG's ``tasks``: a dict holding ``key``."""

    tasks: ClassVar[tuple[str, ...]] = ()
    key: ClassVar[str] = ""

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        if ti_key.dag_id != RETRAIN_DAG_ID or ti_key.task_id not in self.tasks:
            return ""
        value = _return_value(ti_key)
        return self.url(value) if isinstance(value, dict) and self.key in value else ""

    @abstractmethod
    def url(self, value: dict[str, Any]) -> str:
        """The address for a return value that holds ``key``."""


class MLflowRunLink(_ReturnValueLink):
    """From a mapped ``train`` task instance (or ``baseline``) to the MLflow run it logged."""

    name = "MLflow run"
    tasks = task_ids.RUN_TASKS
    key = XCOM_RUN_ID

    def url(self, value: dict[str, Any]) -> str:
        return run_url(mlflow_ui_url(), value.get(XCOM_EXPERIMENT_ID, "0"), value[XCOM_RUN_ID])


class MLflowModelVersionLink(_ReturnValueLink):
    """From ``register`` (and ``promote``/``keep_champion``) to the model version it registered."""

    name = "MLflow model version"
    tasks = task_ids.VERSION_TASKS
    key = "version"

    def url(self, value: dict[str, Any]) -> str:
        return model_version_url(mlflow_ui_url(), value["model_name"], value["version"])


class SentimentMlflowLinksPlugin(AirflowPlugin):
    """Registers the MLflow links; they resolve only on this DAG's train and register tasks."""

    name = "sentiment_mlflow_links"
    global_operator_extra_links: ClassVar[list[BaseOperatorLink]] = [
        MLflowRunLink(),
        MLflowModelVersionLink(),
    ]
