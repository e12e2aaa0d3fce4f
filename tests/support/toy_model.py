"""A tiny registered pyfunc for the scoring tests: counts a few words, no training, no Keras.

Logged as MLflow "models from code" (this file travels with the model), so any process with
MLflow loads it. ``model_config["bias"]`` shifts its probabilities, which tells versions apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

_GOOD = r"love|great|perfect|comfortable|flattering"
_BAD = r"cheap|return|poor|itchy|disappoint"


def toy_probability(texts: pd.Series, bias: float) -> np.ndarray:
    """What the toy model answers for ``texts`` (the tests compute it too)."""
    lower = texts.fillna("").astype(str).str.lower()
    score = lower.str.count(_GOOD).to_numpy(float) - lower.str.count(_BAD).to_numpy(float) + bias
    return 1.0 / (1.0 + np.exp(-score))


class ToySentiment(PythonModel):
    def load_context(self, context: Any) -> None:
        self.bias = float((context.model_config or {}).get("bias", 0.0))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        probability = toy_probability(model_input["Review Text"], self.bias)
        return pd.DataFrame({"probability": probability, "label": (probability >= 0.5).astype(int)})


mlflow.models.set_model(ToySentiment())


def register_toy_version(
    tracking_uri: str, model_name: str, *, bias: float = 0.0, threshold: float = 0.5, champion: bool = True
) -> str:
    """A new version of ``model_name`` (the toy, with ``bias``), its threshold tag, and the
    champion alias on it when ``champion``; returns the version."""
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    mlflow.set_experiment("score-tests")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(Path(__file__)), model_config={"bias": bias}
        )
    version = str(mlflow.register_model(info.model_uri, model_name).version)
    client = MlflowClient(tracking_uri, tracking_uri)
    client.set_model_version_tag(model_name, version, "candidate.threshold", f"{threshold:.6f}")
    if champion:
        client.set_registered_model_alias(model_name, "champion", version)
    return version


def store_toy_reference(
    tracking_uri: str, model_name: str, version: str, texts: pd.Series, *, bias: float, threshold: float
) -> Any:
    """What register stores with a version for prediction monitoring (``watch.save_reference``),
    for a toy version: its probabilities on ``texts`` (a stand-in for the test split)."""
    from mlflow import MlflowClient

    from review_sentiment.watch import save_reference

    client = MlflowClient(tracking_uri, tracking_uri)
    run_id = client.get_model_version(model_name, version).run_id
    return save_reference(client, run_id, toy_probability(texts, bias), threshold)


def real_weeks(path: Path, seed: int = 3) -> dict[str, pd.DataFrame]:
    """Reviews with text from the real review file: ``test`` (2,000 at random, the reference's
    stand-in), ``week`` (1,000 others at random) and ``one_star`` (every review rated 1, about 740)."""
    reviews = pd.read_csv(path)
    reviews = reviews.loc[reviews["Review Text"].fillna("").str.strip() != ""]
    shuffled = reviews.sample(frac=1.0, random_state=seed)
    one_star = reviews.loc[reviews["Rating"] == 1]
    return {"test": shuffled.iloc[:2_000], "week": shuffled.iloc[2_000:3_000], "one_star": one_star}
