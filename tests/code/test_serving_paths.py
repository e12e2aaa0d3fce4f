"""The registered model's fast path scores as training computed, and as the legacy one did, and
legacy versions still load.

Each default-grid architecture is trained briefly (one epoch) on the real reviews (synthetic ones
when the file is absent off CI); then the trained core is served through ``SentimentModel`` from
raw text and compared with Keras on tokenize's own inputs (one code path, title block included).
A core without the title block (the legacy form has none) is also served two ways: the new
artifacts (core + features JSON, numpy forward pass) and the legacy one (a Keras model with
``TextVectorization`` inside).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bench.cores import brief_core, core_inputs, write_core, write_legacy
from review_sentiment.artifacts import read_json, write_json
from review_sentiment.cleaning_rules import PreprocessSettings
from review_sentiment.features import TITLE_BLOCK
from review_sentiment.model import DEFAULT_GRID, GridPoint
from review_sentiment.names import (
    ARTIFACT_DECISION,
    ARTIFACT_KERAS,
    ARTIFACT_PREPROCESS,
)
from review_sentiment.preprocess import preprocess
from review_sentiment.pyfunc_model import SentimentModel
from review_sentiment.scoring import model_request
from review_sentiment.tokenize import Tokenized, make_ngram_vectorizer, tokenize

TOLERANCE = 1e-5
SETTINGS = PreprocessSettings()
POINTS = [GridPoint.from_dict({**p, "max_epochs": 1}) for p in DEFAULT_GRID]
CNN = next(p for p in POINTS if p.architecture == "cnn")
LINEAR = next(p for p in POINTS if p.architecture == "tfidf")


@pytest.fixture(scope="module")
def tokenized(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Tokenized:
    from review_sentiment.ingest import ingest
    from review_sentiment.synthetic import write_synthetic_csv

    tmp = tmp_path_factory.mktemp("serving-paths")
    try:
        path = request.getfixturevalue("real_reviews_path")
    except pytest.skip.Exception:  # off CI and no real file; on CI the fixture fails instead
        path = write_synthetic_csv(tmp / "synthetic.csv", n=3_000)
    snapshot = ingest(path, tmp / "ingest")
    return Tokenized(tokenize(preprocess(snapshot, tmp / "preprocess", SETTINGS), tmp / "tokenize"))


def _context(
    tmp: Path, data: Tokenized, artifacts: dict[str, Path], decision: dict | None = None
) -> SimpleNamespace:
    decision = write_json(tmp / "decision.json", decision or {"threshold": 0.5})
    return SimpleNamespace(
        artifacts={
            **{k: str(v) for k, v in artifacts.items()},
            ARTIFACT_PREPROCESS: str(data.settings_path),
            ARTIFACT_DECISION: str(decision),
        }
    )


def served_new(
    data: Tokenized, point: GridPoint, tmp: Path, core: object, ngrams: dict | None
) -> SentimentModel:
    """``core`` as train registers it: the core and its features JSON."""
    model = SentimentModel()
    model.load_context(_context(tmp, data, write_core(tmp, data, point, core, ngrams)))
    return model


def served_both_ways(data: Tokenized, point: GridPoint, tmp: Path) -> tuple[SentimentModel, SentimentModel]:
    """The same briefly trained core, without the title block, as the new model and as a legacy
    (``keras_model``) one."""
    core, ngrams = brief_core(data, point, epochs=1, titles=False)
    legacy = SentimentModel()
    legacy.load_context(_context(tmp, data, write_legacy(tmp, data, point, core, ngrams)))
    return served_new(data, point, tmp, core, ngrams), legacy


@pytest.mark.parametrize("point", [p for p in POINTS if p.uses_ngrams], ids=lambda p: p.name)
def test_serving_computes_what_training_read(tokenized: Tokenized, point: GridPoint, tmp_path: Path) -> None:
    """Raw text through the registered model equals Keras on tokenize's inputs, title block in."""
    assert TITLE_BLOCK in read_json(tokenized.ngrams_path)  # the DAG's settings keep titles
    core, ngrams = brief_core(tokenized, point, epochs=1)
    model = served_new(tokenized, point, tmp_path, core, ngrams)
    test = tokenized.frame("test")
    served = model.predict(None, model_request(test))["probability"].to_numpy()
    trained = core.predict(core_inputs(tokenized, "test", point), verbose=0)["recommended"]
    assert served.std() > 0.01
    np.testing.assert_allclose(served, np.asarray(trained).reshape(-1), atol=TOLERANCE, rtol=0)
    # The title is read on its own: the same text under another title scores differently.
    request = model_request(test.head(200))
    retitled = request.assign(Title="terrible, returned it")
    moved = model.predict(None, retitled)["probability"] - model.predict(None, request)["probability"]
    assert (moved.abs() > 1e-4).mean() > 0.9


def test_a_title_block_needs_titles(tokenized: Tokenized) -> None:
    from review_sentiment.features import ReviewNgrams

    block = ReviewNgrams(read_json(tokenized.ngrams_path))
    with pytest.raises(ValueError, match="3 titles needed, got none"):
        block.transform(["a", "b", "c"])
    payload = read_json(tokenized.ngrams_path)
    with pytest.raises(ValueError, match="legacy Keras serving model has no title block"):
        make_ngram_vectorizer(payload)


@pytest.mark.parametrize("point", POINTS, ids=lambda p: p.name)
def test_the_new_path_scores_raw_text_as_the_legacy_one(
    tokenized: Tokenized, point: GridPoint, tmp_path: Path
) -> None:
    new, legacy = served_both_ways(tokenized, point, tmp_path)
    request = model_request(tokenized.frame("test"))
    request.loc[request.index[:3], "Review Text"] = ["", "zzzz qqqq", "Not good. Too small!"]
    fast, slow = new.predict(None, request), legacy.predict(None, request)
    assert len(fast) == len(request) > 100
    # The core learned something in its epoch, so equal outputs are not equal constants.
    assert slow["probability"].std() > 0.01
    np.testing.assert_allclose(fast["probability"], slow["probability"], atol=TOLERANCE, rtol=0)
    assert (fast["label"] == slow["label"]).mean() > 0.999  # a tie at the threshold may flip
    assert fast.index.equals(request.index)


def test_scores_do_not_depend_on_the_batch(tokenized: Tokenized, tmp_path: Path) -> None:
    # The CNN sorts reviews by length into chunks: a review's score must not depend on its
    # neighbours (the batch-scoring task calls predict chunk by chunk).
    core, ngrams = brief_core(tokenized, CNN, epochs=1)
    new = served_new(tokenized, CNN, tmp_path, core, ngrams)
    request = model_request(tokenized.frame("test")).head(300)
    whole = new.predict(None, request)["probability"].to_numpy()
    parts = np.concatenate(
        [new.predict(None, request.iloc[i : i + 7])["probability"] for i in range(0, 300, 7)]
    )
    np.testing.assert_allclose(parts, whole, atol=1e-6, rtol=0)
    assert len(new.predict(None, request.iloc[:0])) == 0


def test_a_legacy_version_logged_to_mlflow_still_loads_and_predicts(
    tokenized: Tokenized, tmp_path: Path
) -> None:
    import mlflow
    import mlflow.pyfunc

    from review_sentiment.config import PACKAGE_DIR
    from review_sentiment.train import input_example, model_signature

    point = LINEAR  # the quickest to train
    _, legacy = served_both_ways(tokenized, point, tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        # Artifacts under tmp_path: a SQLite store's default artifact root is ./mlruns in the cwd.
        experiment = mlflow.create_experiment("legacy", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            # Exactly the artifacts train logged before the core and features existed.
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(PACKAGE_DIR / "pyfunc_entry.py"),
                code_paths=[str(PACKAGE_DIR)],
                artifacts={
                    ARTIFACT_KERAS: str(tmp_path / "legacy.keras"),
                    ARTIFACT_PREPROCESS: str(tokenized.settings_path),
                    ARTIFACT_DECISION: str(tmp_path / "decision.json"),
                },
                signature=model_signature(),
                input_example=input_example(),
            )
        loaded = mlflow.pyfunc.load_model(info.model_uri)
        request = model_request(tokenized.frame("test")).head(50)
        out = loaded.predict(request)
    mlflow.set_tracking_uri(None)
    assert list(out.columns) == ["probability", "label"]
    np.testing.assert_allclose(out["probability"], legacy.predict(None, request)["probability"], atol=1e-6)
    assert isinstance(out, pd.DataFrame)
    assert out["probability"].between(0, 1).all()


def test_the_registered_model_applies_its_calibration_before_the_threshold(
    tokenized: Tokenized, tmp_path: Path
) -> None:
    from review_sentiment.calibration import PlattScaling

    core, ngrams = brief_core(tokenized, LINEAR, epochs=1)
    artifacts = write_core(tmp_path, tokenized, LINEAR, core, ngrams)
    raw = served_new(tokenized, LINEAR, tmp_path, core, ngrams)
    scaling = PlattScaling(slope=1.8, intercept=0.4)
    calibrated = SentimentModel()
    decision = {"threshold": 0.6, "calibration": scaling.to_json()}
    calibrated.load_context(_context(tmp_path / "calibrated", tokenized, artifacts, decision))
    request = model_request(tokenized.frame("test")).head(300)
    before = raw.predict(None, request)["probability"].to_numpy()
    out = calibrated.predict(None, request)
    np.testing.assert_allclose(out["probability"], scaling.apply(before), rtol=1e-9)
    assert not np.allclose(out["probability"], before, atol=1e-3)
    assert (out["label"] == (out["probability"] >= 0.6)).all()
