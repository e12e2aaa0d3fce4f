"""The legacy registered Keras model is the trained one with its vectorisers in front: it must
score the cleaned text exactly as the trained core scores tokenize's token ids and n-gram
matrices. The legacy form has one text input, so these runs leave the title out (no title block;
``test_serving_paths`` covers the title block).

Untrained weights are enough (and fast): the check is that serving-time vectorisation (the
sequence vocabulary cut to ``max_tokens``, TF-IDF and row normalisation in Keras) equals
training-time vectorisation (tokenize's arrays, scikit-learn's TF-IDF).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from review_sentiment import schema
from review_sentiment.artifacts import read_json
from review_sentiment.cleaning_rules import PreprocessSettings
from review_sentiment.model import GridPoint, build_model
from review_sentiment.preprocess import CLEAN, preprocess
from review_sentiment.synthetic import synthetic_rows
from review_sentiment.tokenize import Tokenized, tokenize
from review_sentiment.train import _inputs, export_legacy_serving_model
from review_sentiment.validate import validate_reviews


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory: pytest.TempPathFactory) -> Tokenized:
    tmp = tmp_path_factory.mktemp("serving")
    raw = pd.DataFrame(synthetic_rows(1500, 3)).rename(columns=schema.ORIGINAL_TO_CANONICAL)
    frame, _ = validate_reviews(raw, min_rows=0)
    snapshot = tmp / "ingest" / "reviews.parquet"
    snapshot.parent.mkdir()
    frame.to_parquet(snapshot, index=False)
    settings = PreprocessSettings(use_title=False)
    cleaned = preprocess(snapshot, tmp / "preprocess", settings)
    return Tokenized(
        tokenize(cleaned, tmp / "tokenize", max_tokens=200, sequence_length=24, ngram_max_tokens=300)
    )


@pytest.mark.parametrize(
    "point",
    [
        GridPoint(name="seed", embedding_dim=8, max_tokens=60),  # fewer tokens than the shared vocabulary
        GridPoint(name="cnn", architecture="cnn", embedding_dim=8, conv_filters=4, max_tokens=200),
        GridPoint(name="tfidf", architecture="tfidf"),
        GridPoint(name="mlp", architecture="tfidf_mlp", dense_units=8, rating_weight=0.5),
        GridPoint(name="ens", architecture="ensemble", embedding_dim=8, conv_filters=4, dense_units=8),
    ],
    ids=lambda p: p.name,
)
def test_serving_model_scores_text_as_the_core_scores_arrays(tokenized: Tokenized, point: GridPoint) -> None:
    vocabulary = read_json(tokenized.vocabulary_path)["tokens"]
    ngrams = read_json(tokenized.ngrams_path)
    length = int(tokenized.manifest["sequence_length"])
    core = build_model(point, len(vocabulary), length, len(ngrams["tokens"]))
    served = export_legacy_serving_model(core, point, vocabulary, length, ngrams)

    inputs = _inputs(tokenized, "validation", point)
    expected = np.asarray(core.predict(inputs, verbose=0)["recommended"]).reshape(-1)
    texts = tokenized.frame("validation")[CLEAN].to_numpy(dtype=object)
    actual = np.asarray(served.predict(texts, verbose=0)).reshape(-1)
    assert actual.shape == expected.shape == (len(texts),)
    np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_serving_model_survives_a_safe_mode_save_and_load(tokenized: Tokenized, tmp_path: Path) -> None:
    import keras

    point = GridPoint(name="ens", architecture="ensemble", embedding_dim=8, conv_filters=4, dense_units=8)
    vocabulary = read_json(tokenized.vocabulary_path)["tokens"]
    ngrams = read_json(tokenized.ngrams_path)
    core = build_model(point, len(vocabulary), 24, len(ngrams["tokens"]))
    served = export_legacy_serving_model(core, point, vocabulary, 24, ngrams)
    served.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", compile=False, safe_mode=True)
    texts = np.asarray(["love it fits perfect", "not good too small return"], dtype=object)
    np.testing.assert_allclose(loaded.predict(texts, verbose=0), served.predict(texts, verbose=0), atol=1e-6)


def test_ngram_matrices_are_row_normalised_with_an_empty_oov_column(tokenized: Tokenized) -> None:
    assert "title" not in read_json(tokenized.ngrams_path)  # titles left out: one block
    matrix = tokenized.ngrams("train")
    assert matrix.shape == (len(tokenized.frame("train")), len(read_json(tokenized.ngrams_path)["tokens"]))
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1))).ravel()
    np.testing.assert_allclose(norms[norms > 0], 1.0, rtol=1e-5)
    assert matrix[:, 0].nnz == 0
