"""The registered model: an MLflow pyfunc that scores raw review text.

It applies exactly the training preprocessing (settings and stopwords stored beside it, through
``preprocess.clean_reviews`` as the preprocess stage does), then the training features and the
trained core (``serving``: vocabularies and IDF weights as JSON, the core as a ``.keras`` file
loaded with ``safe_mode``); the decision threshold chosen on validation is stored beside it,
with the Platt scaling fitted there when the raw probabilities were miscalibrated
(``calibration``). Callers send the original columns ``Review Text`` and optionally
``Title``, and get ``probability`` (of "recommended") and ``label`` (1 = recommended).

Versions logged before 2026-11-30 hold one Keras model with the vectorisers inside (artifact
``keras_model``); they load and score as they always did.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd

from review_sentiment import schema
from review_sentiment.names import (
    ARTIFACT_CORE,
    ARTIFACT_DECISION,
    ARTIFACT_FEATURES,
    ARTIFACT_KERAS,
    ARTIFACT_PREPROCESS,
    DECISION_CALIBRATION_KEY,
    DECISION_THRESHOLD_KEY,
    LABEL,
    PROBABILITY,
)


class SentimentModel(mlflow.pyfunc.PythonModel):
    """P(recommended) and the thresholded label, one row per input row."""

    def load_context(self, context: Any) -> None:
        from review_sentiment.artifacts import read_json
        from review_sentiment.calibration import PlattScaling
        from review_sentiment.preprocess import cleaner_from_payload

        decision = read_json(context.artifacts[ARTIFACT_DECISION])
        self.threshold = float(decision[DECISION_THRESHOLD_KEY])
        self._calibration = PlattScaling.from_json(decision.get(DECISION_CALIBRATION_KEY))
        self._cleaner = cleaner_from_payload(read_json(context.artifacts[ARTIFACT_PREPROCESS]))
        if ARTIFACT_CORE in context.artifacts:
            from review_sentiment.serving import CoreForward, TextFeatures

            self._features = TextFeatures(read_json(context.artifacts[ARTIFACT_FEATURES]))
            self._forward = CoreForward.load(context.artifacts[ARTIFACT_CORE], self._features.architecture)
            self._legacy = None
        else:  # a version logged before the core and its features were
            from review_sentiment.console import import_keras

            import_keras()
            import keras

            # safe_mode stays on: loading a model must never run arbitrary code.
            self._legacy = keras.saving.load_model(
                context.artifacts[ARTIFACT_KERAS], compile=False, safe_mode=True
            )

    def _probability(self, texts: pd.Series, titles: pd.Series) -> Any:
        import numpy as np

        from review_sentiment.preprocess import clean_reviews

        if not len(texts):
            return np.zeros(0, dtype=np.float64)
        # The title is cleaned on its own only for a model whose inputs read it.
        titles_alone = self._legacy is None and self._features.uses_titles
        clean, clean_titles = clean_reviews(self._cleaner, texts, titles, titles_alone=titles_alone)
        if self._legacy is not None:
            p = np.asarray(
                self._legacy.predict(np.asarray(clean, dtype=object), batch_size=1024, verbose=0),
                dtype=np.float64,
            ).reshape(-1)
        else:
            p = self._forward.probability(self._features.inputs(clean, clean_titles))
        return self._calibration.apply(p) if self._calibration is not None else p

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
        probability = self._probability(texts, titles)
        return pd.DataFrame(
            {PROBABILITY: probability, LABEL: (probability >= self.threshold).astype(np.int64)},
            index=frame.index,
        )
