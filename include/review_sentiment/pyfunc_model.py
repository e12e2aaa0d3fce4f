"""The registered model: an MLflow pyfunc that scores raw review text.

It applies exactly the training preprocessing (settings and stopwords stored beside it); the
Keras model holds its vectorisers (vocabularies as text) and the decision threshold chosen on
validation is stored beside it, so callers send the original columns ``Review Text`` and
optionally ``Title``, and get ``probability`` (of "recommended") and ``label`` (1 = recommended).
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd

from review_sentiment import schema
from review_sentiment.names import (
    ARTIFACT_DECISION,
    ARTIFACT_KERAS,
    ARTIFACT_PREPROCESS,
    DECISION_THRESHOLD_KEY,
    LABEL,
    PROBABILITY,
)


class SentimentModel(mlflow.pyfunc.PythonModel):
    """P(recommended) and the thresholded label, one row per input row."""

    def load_context(self, context: Any) -> None:
        from review_sentiment.console import import_keras

        import_keras()
        import keras

        from review_sentiment.artifacts import read_json
        from review_sentiment.preprocess import cleaner_from_payload

        # safe_mode stays on: loading a model must never run arbitrary code.
        self._model = keras.saving.load_model(
            context.artifacts[ARTIFACT_KERAS], compile=False, safe_mode=True
        )
        self.threshold = float(read_json(context.artifacts[ARTIFACT_DECISION])[DECISION_THRESHOLD_KEY])
        self._cleaner = cleaner_from_payload(read_json(context.artifacts[ARTIFACT_PREPROCESS]))

    # The DataFrame hint tells MLflow that the logged signature, not the hint, describes the input.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        import numpy as np

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if schema.MODEL_TEXT_COLUMN not in frame.columns:
            raise ValueError(f"input needs a {schema.MODEL_TEXT_COLUMN!r} column, got {list(frame.columns)}")
        texts = frame[schema.MODEL_TEXT_COLUMN].fillna("").astype(str)
        titles = (
            frame[schema.MODEL_TITLE_COLUMN].fillna("").astype(str)
            if schema.MODEL_TITLE_COLUMN in frame.columns
            else pd.Series([""] * len(frame), index=frame.index)
        )
        clean = np.asarray(self._cleaner.clean_many(texts, titles), dtype=object)
        probability = np.zeros(0, dtype=np.float64)
        if len(clean):
            probability = np.asarray(
                self._model.predict(clean, batch_size=1024, verbose=0), dtype=np.float64
            ).reshape(-1)
        return pd.DataFrame(
            {PROBABILITY: probability, LABEL: (probability >= self.threshold).astype(np.int64)},
            index=frame.index,
        )
