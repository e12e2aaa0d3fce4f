"""MLflow connection helpers: one place that knows the tracking URI and experiment."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from review_sentiment.config import default_tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient

# Tags that tie an MLflow run to the Airflow task instance that made it, so links and
# searches work in both directions.
TAG_DAG_ID = "airflow.dag_id"
TAG_RUN_ID = "airflow.run_id"
TAG_TASK_ID = "airflow.task_id"
TAG_MAP_INDEX = "airflow.map_index"
TAG_PIPELINE_RUN = "pipeline_run_id"


def client(tracking_uri: str | None = None) -> MlflowClient:
    """An ``MlflowClient`` on ``tracking_uri`` (default: the embedded store), set globally too."""
    import mlflow

    uri = tracking_uri or default_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(name: str, tracking_uri: str | None = None) -> str:
    """Return the id of experiment ``name``, creating it if needed.

    Called once before the grid fans out: parallel ``set_experiment`` calls race.
    """
    from mlflow.exceptions import MlflowException

    mlflow_client = client(tracking_uri)
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    uri = tracking_uri or default_tracking_uri()
    # A SQLite store keeps artifacts beside its database (MLflow would use the cwd's ./mlruns);
    # a tracking server picks its own place.
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    try:
        return mlflow_client.create_experiment(name, artifact_location=location)
    except MlflowException:
        # Another process created it between our look-up and create.
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id
