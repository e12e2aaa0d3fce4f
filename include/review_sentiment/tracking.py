"""MLflow connection helpers: the client, the experiment, runs of one task instance, model URIs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from review_sentiment.config import default_tracking_uri
from review_sentiment.console import quiet_mlflow
from review_sentiment.names import EXPERIMENT_KIND_TRAINING, TAG_EXPERIMENT_KIND, TAG_MODEL_ID

if TYPE_CHECKING:
    from mlflow import MlflowClient


def client(tracking_uri: str | None = None) -> MlflowClient:
    """An ``MlflowClient`` on ``tracking_uri`` (default: the embedded store), set globally too."""
    quiet_mlflow()
    import mlflow

    uri = tracking_uri or default_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(name: str, tracking_uri: str | None = None) -> str:
    """Return the id of experiment ``name``, creating it if needed, tagged as model training.

    Called once before the grid fans out: parallel ``set_experiment`` calls race. The kind tag
    makes MLflow's UI open the experiment on its model-training view (runs, metrics, models)
    rather than the GenAI one; it is set on an existing experiment too.
    """
    from mlflow.exceptions import MlflowException

    mlflow_client = client(tracking_uri)
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        experiment_id = found.experiment_id
        if found.tags.get(TAG_EXPERIMENT_KIND) != EXPERIMENT_KIND_TRAINING:
            mlflow_client.set_experiment_tag(experiment_id, TAG_EXPERIMENT_KIND, EXPERIMENT_KIND_TRAINING)
        return experiment_id
    uri = tracking_uri or default_tracking_uri()
    # A SQLite store keeps artifacts beside its database (MLflow would use the cwd's ./mlruns);
    # a tracking server picks its own place.
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    try:
        return mlflow_client.create_experiment(
            name, artifact_location=location, tags={TAG_EXPERIMENT_KIND: EXPERIMENT_KIND_TRAINING}
        )
    except MlflowException:
        # Another process created it between our look-up and create.
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def close_stale_runs(experiment_id: str, tags: dict[str, str], tracking_uri: str | None = None) -> int:
    """Mark earlier RUNNING runs of the same task instance FAILED (a killed try leaves one).

    Returns:
        How many runs were closed.
    """
    if not tags:
        return 0
    mlflow_client = client(tracking_uri)
    query = " and ".join(f"tags.`{k}` = '{_quote(v)}'" for k, v in sorted(tags.items()))
    stale = mlflow_client.search_runs([experiment_id], f"{query} and attributes.status = 'RUNNING'")
    for run in stale:
        mlflow_client.set_terminated(run.info.run_id, status="FAILED")
    return len(stale)


def _quote(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("'", "\\'")


def model_uri(run_id: str, tracking_uri: str | None = None) -> str:
    """The ``models:/<model_id>`` URI of the model logged by ``run_id``."""
    return f"models:/{client(tracking_uri).get_run(run_id).data.tags[TAG_MODEL_ID]}"
