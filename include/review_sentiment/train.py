"""Train one grid point and log it to MLflow as a pyfunc that scores raw text."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from review_sentiment import names, schema
from review_sentiment.artifacts import read_json, write_json
from review_sentiment.config import PACKAGE_DIR
from review_sentiment.console import import_keras, quiet_mlflow
from review_sentiment.decision_rule import DecisionRule, choose_rule
from review_sentiment.features import ReviewNgrams
from review_sentiment.metrics import MINORITY_LABEL, rounded
from review_sentiment.model import (
    NGRAMS_INPUT,
    RATING_OUTPUT,
    RECOMMENDED_OUTPUT,
    TEXT_INPUT,
    TOKENS_INPUT,
    GridPoint,
    build_model,
)
from review_sentiment.preprocess import CLEAN
from review_sentiment.serving import features_payload, inference_core
from review_sentiment.tokenize import Tokenized, make_ngram_vectorizer, make_vectorizer
from review_sentiment.tracking import client, close_stale_runs

log = logging.getLogger(__name__)

_RUNTIME_PACKAGES = (
    "mlflow", "tensorflow-cpu", "keras", "nltk", "pandas", "numpy", "scipy", "pyarrow", "scikit-learn",
)  # fmt: skip


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
    """Input: raw text (and an optional title); output: P(recommended) and the thresholded label."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(
        inputs=Schema(
            [
                ColSpec("string", schema.MODEL_TEXT_COLUMN),
                ColSpec("string", schema.MODEL_TITLE_COLUMN, required=False),
            ]
        ),
        outputs=Schema([ColSpec("double", names.PROBABILITY), ColSpec("long", names.LABEL)]),
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


def _log_datasets(data: Tokenized) -> None:
    """The splits this run saw, as MLflow dataset inputs (with digests): the run's page shows
    which reviews made the model."""
    import mlflow.data

    for split, context in (("train", "training"), ("validation", "validation"), ("test", "testing")):
        frame = data.frame(split)[[schema.ID, CLEAN, schema.LABEL]]
        dataset = mlflow.data.from_pandas(
            frame, source=str(data.manifest_path), targets=schema.LABEL, name=split
        )
        log_input_once(dataset, context)


# The mapped trains of one DAG run log the same splits (same digests) at the same moment: the
# tracking store's insert of the shared dataset row can lose that race with a unique violation,
# and a second attempt finds the row the winner wrote.
_DATASET_RACE = ("dataset_pk", "UNIQUE constraint failed: datasets", "duplicate key value")


def log_input_once(dataset: Any, context: str, attempts: int = 3) -> None:
    """``mlflow.log_input``, retried when a parallel run inserted the same dataset first."""
    import mlflow
    from mlflow.exceptions import MlflowException

    for attempt in range(1, attempts + 1):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except MlflowException as exc:
            if attempt == attempts or not any(marker in str(exc) for marker in _DATASET_RACE):
                raise
            log.info("dataset %s was being logged by a parallel run; retrying", dataset.name)
            time.sleep(0.2 * attempt)


def _inputs(data: Tokenized, split: str, point: GridPoint) -> dict[str, Any]:
    """The model inputs of ``split``: capped token ids and/or the TF-IDF n-gram matrix."""
    import numpy as np

    inputs: dict[str, Any] = {}
    if point.uses_tokens:
        x, _ = data.arrays(split)
        # The shared vocabulary is frequency-ordered, so capping ids at max_tokens is exactly a
        # max_tokens vocabulary: the rarer words become out-of-vocabulary (id 1).
        inputs[TOKENS_INPUT] = np.where(x >= point.max_tokens, 1, x).astype(np.int32)
    if point.uses_ngrams:
        inputs[NGRAMS_INPUT] = data.ngrams(split)
    return inputs


def _targets(data: Tokenized, split: str, outputs: list[str]) -> dict[str, Any]:
    """A target per model output: the label for every recommendation head, the stars for the
    rating head."""
    import numpy as np

    _, y = data.arrays(split)
    label = y.astype(np.float32)
    targets = {name: label for name in outputs if name != RATING_OUTPUT}
    if RATING_OUTPUT in outputs:
        # Stars 1..5 scaled to -1..1; a training signal only, never a model input. A missing
        # rating counts as the neutral 3 rather than poisoning the loss with NaN.
        stars = data.frame(split)["rating"].to_numpy(dtype=np.float32, na_value=3.0)
        targets[RATING_OUTPUT] = (stars - 3.0) / 2.0
    return targets


def export_legacy_serving_model(
    core: Any,
    point: GridPoint,
    vocabulary: list[str],
    sequence_length: int,
    ngrams: dict[str, Any] | None = None,
) -> Any:
    """The model as registered until 2026-11-30: cleaned text in, P(recommended) out, Keras
    ``TextVectorization`` layers inside (about 1,200 reviews a second).

    No longer logged (``train`` logs the core and its features; see ``serving``), but versions
    in this form still load (``pyfunc_model``), and the benchmark and tests compare with it.
    """
    import keras
    from keras import layers

    text = keras.Input(shape=(), dtype="string", name=TEXT_INPUT)
    feeds: dict[str, Any] = {}
    if point.uses_tokens:
        feeds[TOKENS_INPUT] = make_vectorizer(vocabulary[: point.max_tokens], sequence_length)(text)
    if point.uses_ngrams:
        # The same TF-IDF and row normalisation as tokenize's ngram_features, inside the graph.
        bag = make_ngram_vectorizer(ngrams)(text)
        feeds[NGRAMS_INPUT] = layers.UnitNormalization(name="l2_normalise")(bag)
    return keras.Model(text, core(feeds)[RECOMMENDED_OUTPUT], name=f"{core.name}_serving")


@dataclass(frozen=True)
class _Vocabularies:
    """What tokenize learned, that the model is built on and served with."""

    tokens: list[str]
    sequence_length: int
    ngrams: dict[str, Any] | None  # None for models that read no n-grams

    @classmethod
    def read(cls, data: Tokenized, point: GridPoint) -> _Vocabularies:
        ngrams = read_json(data.ngrams_path) if point.uses_ngrams else None
        return cls(read_json(data.vocabulary_path)["tokens"], int(data.manifest["sequence_length"]), ngrams)

    def features(self, point: GridPoint) -> dict[str, Any]:
        """The features JSON logged beside the core: what the pyfunc turns raw text into."""
        return features_payload(
            point.architecture,
            self.tokens[: point.max_tokens] if point.uses_tokens else None,
            self.sequence_length if point.uses_tokens else None,
            self.ngrams,
        )


@dataclass(frozen=True)
class _Fitted:
    """A fitted core, how its fit went, and its raw P(recommended) on the validation split."""

    core: Any
    epochs: int
    best_epoch: int
    seconds: float
    validation_probability: Any


def train(
    manifest_path: str | Path,
    point: GridPoint | dict[str, Any],
    *,
    experiment_id: str,
    tracking_uri: str | None = None,
    tags: dict[str, str] | None = None,
    run_name_prefix: str = "",
) -> str:
    """Fit one grid point with early stopping on validation; log everything; return the run id.

    In one MLflow run: log the inputs, fit, decide (``decision_rule.choose_rule``: calibration
    if needed, then the F1-optimal threshold for the not-recommended class, both on the
    validation split), log the outcome, then the model, which applies that rule in ``predict``.

    Args:
        manifest_path: The tokenize stage's manifest.
        point: The grid point (or its dict form).
        experiment_id: MLflow experiment, created upstream (see ``ensure_experiment``).
        tracking_uri: MLflow tracking/registry URI (default: the embedded store).
        tags: Extra run tags, e.g. the Airflow dag/run/task ids that made this run.
        run_name_prefix: Put before the grid point's name in the run name, e.g. the week.

    Returns:
        The MLflow run id.
    """
    import_keras()
    quiet_mlflow()
    import keras
    import mlflow

    point = point if isinstance(point, GridPoint) else GridPoint.from_dict(point)
    tags = {k: str(v) for k, v in (tags or {}).items()}
    client(tracking_uri)
    closed = close_stale_runs(experiment_id, tags, tracking_uri)
    if closed:
        log.warning("marked %d stale RUNNING run(s) of this task FAILED", closed)

    data = Tokenized(manifest_path)
    vocabularies = _Vocabularies.read(data, point)
    keras.utils.set_random_seed(point.seed)
    run_tags = {**tags, names.TAG_ROLE: names.ROLE_CANDIDATE}
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"{run_name_prefix}{point.name}", tags=run_tags
    ) as run:
        _log_inputs(data, point, vocabularies)
        fitted = _fit(data, point, vocabularies)
        rule = choose_rule(data.arrays("validation")[1].astype(int), fitted.validation_probability)
        _log_outcome(fitted, rule)
        _log_model(data, point, vocabularies, fitted.core, rule)
        log.info(
            "grid point %s: validation %s; threshold %.4f; %d epochs in %.1f s",
            point.name,
            rounded(rule.scores),
            rule.threshold,
            fitted.epochs,
            fitted.seconds,
        )
        return run.info.run_id


def _log_inputs(data: Tokenized, point: GridPoint, vocabularies: _Vocabularies) -> None:
    """The run's params (the grid point, as fields and as JSON, and the data's sizes) and the
    splits it reads."""
    import mlflow

    mlflow.log_params(
        {
            **point.to_dict(),
            names.PARAM_GRID_POINT: point.to_json(),
            "vocabulary_size": min(len(vocabularies.tokens), point.max_tokens),
            "sequence_length": vocabularies.sequence_length,
            "train_rows": len(data.arrays("train")[1]),
            "validation_rows": len(data.arrays("validation")[1]),
        }
    )
    _log_datasets(data)


def _fit(data: Tokenized, point: GridPoint, vocabularies: _Vocabularies) -> _Fitted:
    """Build and fit the core with early stopping on validation (epochs logged as they end)."""
    import keras
    import numpy as np

    x_train, x_val = _inputs(data, "train", point), _inputs(data, "validation", point)
    # Up-weight the rare class in the loss only; the data and validation stay as they are.
    weights = np.where(data.arrays("train")[1] == MINORITY_LABEL, point.class_weight, 1.0)
    # The n-gram input's width: the review block and the title block side by side.
    width = ReviewNgrams(vocabularies.ngrams).size if vocabularies.ngrams else None
    core = build_model(point, len(vocabularies.tokens), vocabularies.sequence_length, width)
    outputs = list(core.output_names)
    y_train, y_val = _targets(data, "train", outputs), _targets(data, "validation", outputs)
    # The recommendation head's own validation loss: the rating head must not decide.
    monitor = "val_loss" if len(outputs) == 1 else f"val_{RECOMMENDED_OUTPUT}_loss"
    stopper = keras.callbacks.EarlyStopping(
        monitor=monitor, mode="min", patience=point.patience, restore_best_weights=True
    )
    started = time.monotonic()
    history = core.fit(
        x_train,
        y_train,
        sample_weight=weights.astype(np.float32) if point.class_weight != 1.0 else None,
        validation_data=(x_val, y_val),  # early stopping watches validation, never test
        epochs=point.max_epochs,
        batch_size=point.batch_size,
        callbacks=[stopper, _EpochLogger()],
        verbose=0,
    )
    seconds = time.monotonic() - started
    epochs = len(history.history["loss"])
    probability = core.predict(x_val, batch_size=1024, verbose=0)[RECOMMENDED_OUTPUT]
    return _Fitted(
        core=core,
        epochs=epochs,
        best_epoch=max(epochs - point.patience, 1) if stopper.stopped_epoch else epochs,
        seconds=seconds,
        validation_probability=np.asarray(probability).reshape(-1),
    )


def _log_outcome(fitted: _Fitted, rule: DecisionRule) -> None:
    """The run's final metrics: validation scores at the threshold, calibration, the fit's length."""
    import mlflow

    mlflow.log_metrics(
        {
            **{f"val_{k}": v for k, v in rule.scores.items()},
            names.METRIC_THRESHOLD: rule.threshold,
            "val_ece_uncalibrated": rule.uncalibrated_ece,
            "calibrated": float(rule.calibration is not None),
            "epochs_trained": fitted.epochs,
            "best_epoch": fitted.best_epoch,
            "fit_seconds": fitted.seconds,
        }
    )


def _log_model(
    data: Tokenized, point: GridPoint, vocabularies: _Vocabularies, core: Any, rule: DecisionRule
) -> None:
    """Log the pyfunc (core, features, preprocessing, decision) and tag the run with its id."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        core_path = Path(tmp) / "core.keras"
        inference_core(core).save(core_path)
        info = mlflow.pyfunc.log_model(
            name=names.MODEL_ARTIFACT,
            python_model=str(PACKAGE_DIR / "pyfunc_entry.py"),
            code_paths=[str(PACKAGE_DIR)],
            artifacts={
                names.ARTIFACT_CORE: str(core_path),
                names.ARTIFACT_FEATURES: str(
                    write_json(Path(tmp) / "features.json", vocabularies.features(point))
                ),
                names.ARTIFACT_PREPROCESS: str(data.settings_path),
                names.ARTIFACT_DECISION: str(write_json(Path(tmp) / "decision.json", rule.to_json())),
            },
            signature=model_signature(),
            input_example=input_example(),
            pip_requirements=_pip_requirements(),
        )
    # MLflow 3 keeps models as LoggedModels outside the run's artifacts: remember the id.
    mlflow.set_tag(names.TAG_MODEL_ID, info.model_id)
