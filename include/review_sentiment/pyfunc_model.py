"""The registered model: an MLflow pyfunc that scores raw review text.

It applies exactly the training preprocessing (settings and stopwords stored beside it); the
Keras model holds its vectorisers (vocabularies as text) and the decision threshold chosen on
validation is stored beside it, so callers send the original columns ``Review Text`` and
optionally ``Title``, and get ``probability`` (of "recommended") and ``label`` (1 = recommended).
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc

from review_sentiment import schema

ARTIFACT_KERAS = "keras_model"
ARTIFACT_PREPROCESS = "preprocess"
ARTIFACT_DECISION = "decision"
# Versions logged before the vectorisers moved into the Keras model carry the vocabulary as JSON.
ARTIFACT_VOCABULARY = "vocabulary"
PROBABILITY = "probability"
LABEL = "label"


class SentimentModel(mlflow.pyfunc.PythonModel):
    """P(recommended) and the thresholded label, one row per input row."""

    def load_context(self, context: Any) -> None:
        import keras

        from review_sentiment.artifacts import read_json
        from review_sentiment.preprocess import cleaner_from_payload
        from review_sentiment.tokenize import make_vectorizer

        # safe_mode stays on: loading a model must never run arbitrary code.
        self._model = keras.saving.load_model(
            context.artifacts[ARTIFACT_KERAS], compile=False, safe_mode=True
        )
        self._vectorizer = None
        if ARTIFACT_VOCABULARY in context.artifacts:
            vocabulary = read_json(context.artifacts[ARTIFACT_VOCABULARY])
            self._vectorizer = make_vectorizer(vocabulary["tokens"], vocabulary["sequence_length"])
        decision = context.artifacts.get(ARTIFACT_DECISION)
        self.threshold = float(read_json(decision)["threshold"]) if decision else 0.5
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
        clean = np.asarray(self._cleaner.clean_many(texts, titles), dtype=object)
        probability = np.zeros(0, dtype=np.float64)
        if len(clean):
            features = self._vectorizer(clean) if self._vectorizer is not None else clean
            probability = np.asarray(
                self._model.predict(features, batch_size=1024, verbose=0), dtype=np.float64
            ).reshape(-1)
        return pd.DataFrame(
            {PROBABILITY: probability, LABEL: (probability >= self.threshold).astype(np.int64)},
            index=frame.index,
        )
