"""Scoring raw reviews with a logged or registered model, end to end (text in, probability out)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from review_sentiment import schema
from review_sentiment.names import PROBABILITY

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def model_request(frame: pd.DataFrame) -> pd.DataFrame:
    """The registered model's input for reviews in canonical columns: the original names."""
    import pandas as pd

    return pd.DataFrame(
        {
            schema.MODEL_TEXT_COLUMN: frame[schema.TEXT].fillna("").astype(str),
            schema.MODEL_TITLE_COLUMN: frame[schema.TITLE].fillna("").astype(str),
        }
    )


def predict_probability(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """P(recommended) of each review in ``frame`` from a loaded pyfunc."""
    import numpy as np

    prediction = model.predict(model_request(frame))
    return np.asarray(prediction[PROBABILITY], dtype=float).reshape(-1)


def score(uri: str, frame: pd.DataFrame) -> np.ndarray:
    """Load the pyfunc at ``uri`` (``models:/...``) and score ``frame``'s reviews."""
    import mlflow.pyfunc

    return predict_probability(mlflow.pyfunc.load_model(uri), frame)
