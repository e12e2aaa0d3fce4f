"""Train one grid point and log it to MLflow as a pyfunc that scores raw text."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from review_sentiment import schema
from review_sentiment.config import PACKAGE_DIR
from review_sentiment.metrics import binary_metrics
from review_sentiment.model import GridPoint, build_model
from review_sentiment.pyfunc_model import ARTIFACT_KERAS, ARTIFACT_PREPROCESS, ARTIFACT_VOCABULARY
from review_sentiment.tokenize import Tokenized
from review_sentiment.tracking import client

log = logging.getLogger(__name__)

MODEL_NAME_IN_RUN = "model"
VALIDATION_METRIC = "val_roc_auc"
TAG_MODEL_ID = "model_id"
_RUNTIME_PACKAGES = ("mlflow", "tensorflow-cpu", "keras", "nltk", "pandas", "numpy", "scikit-learn")


def input_example() -> Any:
    """A raw-text request, as callers of the registered model send it."""
    import pandas as pd

    return pd.DataFrame(
        {
            schema.MODEL_TEXT_COLUMN: ["Love this dress, it fits perfectly", "Returned it, cheap fabric"],
            schema.MODEL_TITLE_COLUMN: ["Great", ""],
        }
    )


def model_signature() -> Any:
    """Input: raw text (and an optional title); output: one probability per row."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(
        inputs=Schema(
            [
                ColSpec("string", schema.MODEL_TEXT_COLUMN),
                ColSpec("string", schema.MODEL_TITLE_COLUMN, required=False),
            ]
        ),
        outputs=Schema([ColSpec("double")]),
    )


def _pip_requirements() -> list[str]:
    pins = []
    for name in _RUNTIME_PACKAGES:
        try:
            pins.append(f"{name}=={version(name)}")
        except Exception:  # noqa: BLE001 - a missing optional pin just stays unpinned
            pins.append(name)
    return pins


class _EpochLogger:
    """Keras callback logging every epoch's metrics to the active MLflow run."""

    def __new__(cls) -> Any:
        import keras
        import mlflow

        class EpochLogger(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                if logs:
                    mlflow.log_metrics({k: float(v) for k, v in logs.items()}, step=epoch)

        return EpochLogger()


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


def train(
    manifest_path: str | Path,
    point: GridPoint | dict[str, Any],
    *,
    experiment_id: str,
    tracking_uri: str | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """Fit one grid point with early stopping on validation; log everything; return the run id.

    Args:
        manifest_path: The tokenize stage's manifest.
        point: The grid point (or its dict form).
        experiment_id: MLflow experiment, created upstream (see ``ensure_experiment``).
        tracking_uri: MLflow tracking URI (default: the embedded store).
        tags: Extra run tags, e.g. the Airflow dag/run/task ids that made this run.

    Returns:
        The MLflow run id.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import mlflow

    point = point if isinstance(point, GridPoint) else GridPoint.from_dict(point)
    tags = {k: str(v) for k, v in (tags or {}).items()}
    client(tracking_uri)
    closed = close_stale_runs(experiment_id, tags, tracking_uri)
    if closed:
        log.warning("marked %d stale RUNNING run(s) of this task FAILED", closed)

    data = Tokenized(manifest_path)
    x_train, y_train = data.arrays("train")
    x_val, y_val = data.arrays("validation")
    vocab_size = int(data.manifest["vocabulary_size"])
    sequence_length = int(data.manifest["sequence_length"])

    keras.utils.set_random_seed(point.seed)
    with mlflow.start_run(experiment_id=experiment_id, run_name=point.name, tags=tags) as run:
        mlflow.log_params(
            {
                **point.to_dict(),
                "vocabulary_size": vocab_size,
                "sequence_length": sequence_length,
                "train_rows": len(y_train),
                "validation_rows": len(y_val),
            }
        )
        model = build_model(point, vocab_size, sequence_length)
        stopper = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=point.patience, restore_best_weights=True
        )
        started = time.monotonic()
        history = model.fit(
            x_train,
            y_train,
            validation_data=(x_val, y_val),  # early stopping watches validation, never test
            epochs=point.max_epochs,
            batch_size=point.batch_size,
            callbacks=[stopper, _EpochLogger()],
            verbose=0,
        )
        fit_seconds = time.monotonic() - started
        probability = model.predict(x_val, batch_size=1024, verbose=0).reshape(-1)
        scores = binary_metrics(y_val, probability)
        epochs = len(history.history["loss"])
        mlflow.log_metrics(
            {
                **{f"val_{k}": v for k, v in scores.items()},
                "epochs_trained": epochs,
                "best_epoch": max(epochs - point.patience, 1) if stopper.stopped_epoch else epochs,
                "fit_seconds": fit_seconds,
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            keras_path = Path(tmp) / "model.keras"
            model.save(keras_path)
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME_IN_RUN,
                python_model=str(PACKAGE_DIR / "pyfunc_entry.py"),
                code_paths=[str(PACKAGE_DIR)],
                artifacts={
                    ARTIFACT_KERAS: str(keras_path),
                    ARTIFACT_VOCABULARY: str(data.vocabulary_path),
                    ARTIFACT_PREPROCESS: str(data.settings_path),
                },
                signature=model_signature(),
                input_example=input_example(),
                pip_requirements=_pip_requirements(),
            )
        # MLflow 3 keeps models as LoggedModels outside the run's artifacts: remember the id.
        mlflow.set_tag(TAG_MODEL_ID, info.model_id)
        log.info("grid point %s: %s in %.1fs, %d epochs", point.name, scores, fit_seconds, epochs)
        return run.info.run_id
