"""Behaviour of a trained model: the seed architecture, trained through the real stages.

Trains on about 3,000 real reviews (synthetic ones when the file is absent off CI), logs to a
throwaway SQLite MLflow store, loads the logged pyfunc here and scores raw text with it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from review_sentiment import schema
from review_sentiment.ingest import ingest
from review_sentiment.model import SEED_GRID, GridPoint
from review_sentiment.preprocess import PreprocessSettings, preprocess
from review_sentiment.synthetic import write_synthetic_csv
from review_sentiment.tokenize import tokenize
from review_sentiment.tracking import ensure_experiment
from review_sentiment.train import VALIDATION_METRIC, model_uri, train

REAL_ROWS = 21_186
TARGET_ROWS = 3_000
# The seed grid's first point: dim 32, batch 32, up to 50 epochs, early stopping after 2 idle ones
# (on this sample it stops after about 30 epochs, some 10 s on 2 cores).
POINT = GridPoint.from_dict(SEED_GRID[0])


@pytest.fixture
def source(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, float]:
    """The real file and the fraction that samples ~3,000 rows; else synthetic rows (never on CI)."""
    try:
        return request.getfixturevalue("real_reviews_path"), TARGET_ROWS / REAL_ROWS
    except pytest.skip.Exception:  # off CI and no real file; on CI the fixture fails instead
        return write_synthetic_csv(tmp_path / "synthetic.csv", n=TARGET_ROWS), 1.0


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A SQLite MLflow store in ``tmp_path``; MLflow's process-wide URI is reset afterwards."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    # MLflow exports the URIs it is given to the environment: let monkeypatch restore them.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    yield uri
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def _score(model, texts: list[str]) -> list[float]:
    request = pd.DataFrame({schema.MODEL_TEXT_COLUMN: texts, schema.MODEL_TITLE_COLUMN: [""] * len(texts)})
    return [float(p) for p in model.predict(request)]


@pytest.mark.slow
def test_trained_model_reacts_to_negation_and_sentiment(
    source: tuple[Path, float], tracking_uri: str, tmp_path: Path
) -> None:
    import mlflow.pyfunc

    path, fraction = source
    snapshot = ingest(path, tmp_path / "ingest", sample_fraction=fraction)
    cleaned = preprocess(snapshot, tmp_path / "preprocess", PreprocessSettings(keep_negations=True))
    manifest = tokenize(cleaned, tmp_path / "tokenize")
    experiment_id = ensure_experiment("behaviour", tracking_uri)
    run_id = train(manifest, POINT, experiment_id=experiment_id, tracking_uri=tracking_uri)

    run = mlflow.MlflowClient(tracking_uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    # The model learned something, or the behaviour checks below would prove nothing.
    assert run.data.metrics[VALIDATION_METRIC] > 0.75

    model = mlflow.pyfunc.load_model(model_uri(run_id, tracking_uri))
    loves, negated, positive, negative = _score(
        model,
        [
            "I love this dress",
            "I do not love this dress",
            "Absolutely love it! Gorgeous colour, fits perfectly and the fabric is so soft.",
            "Terrible quality, cheap thin fabric and it fell apart. Very disappointed, returning it.",
        ],
    )
    assert all(0.0 <= p <= 1.0 for p in (loves, negated, positive, negative))
    assert negated < loves, f"adding 'not' raised the score: {negated:.3f} >= {loves:.3f}"
    assert positive > negative, f"positive {positive:.3f} <= negative {negative:.3f}"
