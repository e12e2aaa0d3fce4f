"""The registered model: an MLflow pyfunc that scores raw review text.

It applies exactly the training preprocessing (settings and stopwords stored beside it) and
vocabulary, so callers send the original columns ``Review Text`` and optionally ``Title``.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc

from review_sentiment import schema

ARTIFACT_KERAS = "keras_model"
ARTIFACT_VOCABULARY = "vocabulary"
ARTIFACT_PREPROCESS = "preprocess"


class SentimentModel(mlflow.pyfunc.PythonModel):
    """Probability that a review recommends the item, one per input row."""

    def load_context(self, context: Any) -> None:
        import keras

        from review_sentiment.artifacts import read_json
        from review_sentiment.preprocess import cleaner_from_payload
        from review_sentiment.tokenize import make_vectorizer

        # safe_mode stays on: loading a model must never run arbitrary code.
        self._model = keras.saving.load_model(
            context.artifacts[ARTIFACT_KERAS], compile=False, safe_mode=True
        )
        vocabulary = read_json(context.artifacts[ARTIFACT_VOCABULARY])
        self._vectorizer = make_vectorizer(vocabulary["tokens"], vocabulary["sequence_length"])
        self._cleaner = cleaner_from_payload(read_json(context.artifacts[ARTIFACT_PREPROCESS]))

    def predict(self, context, model_input, params=None):
        import numpy as np
        import pandas as pd

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if schema.MODEL_TEXT_COLUMN not in frame.columns:
            raise ValueError(f"input needs a {schema.MODEL_TEXT_COLUMN!r} column, got {list(frame.columns)}")
        texts = frame[schema.MODEL_TEXT_COLUMN].fillna("").astype(str)
        titles = (
            frame[schema.MODEL_TITLE_COLUMN].fillna("").astype(str)
            if schema.MODEL_TITLE_COLUMN in frame.columns
            else pd.Series([""] * len(frame), index=frame.index)
        )
        clean = self._cleaner.clean_many(texts, titles)
        if not clean:
            return np.zeros(0, dtype=np.float64)
        tokens = self._vectorizer(np.asarray(clean, dtype=object))
        probability = self._model.predict(tokens, batch_size=1024, verbose=0)
        return np.asarray(probability, dtype=np.float64).reshape(-1)
