"""Unit tests of the tokenize stage: the split, the vocabulary and the encoding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from review_sentiment import schema
from review_sentiment.artifacts import read_json
from review_sentiment.cleaning_rules import PreprocessSettings
from review_sentiment.errors import DataContractError
from review_sentiment.features import SequenceEncoder
from review_sentiment.preprocess import CLEAN, CLEAN_TITLE, clean_frame, preprocess
from review_sentiment.synthetic import synthetic_rows
from review_sentiment.tokenize import (
    SPLIT_COLUMNS,
    SPLITS,
    Tokenized,
    fit_vocabulary,
    split_frame,
    tokenize,
)
from review_sentiment.validate import validate_reviews
from tests.support.hashing import text_hashes


def _reviews(n: int, seed: int = 0) -> pd.DataFrame:
    """Synthetic reviews in the canonical schema, validated and cleaned as the stages do it."""
    raw = pd.DataFrame(synthetic_rows(n, seed)).rename(columns=schema.ORIGINAL_TO_CANONICAL)
    frame, _ = validate_reviews(raw, min_rows=0)
    return frame.join(clean_frame(frame, PreprocessSettings.notebook()))


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    return _reviews(2000)


def _split_of(splits: dict[str, pd.DataFrame]) -> dict[int, str]:
    return {int(i): name for name, part in splits.items() for i in part[schema.ID]}


def test_split_does_not_depend_on_row_order_and_the_salt_reshuffles(reviews: pd.DataFrame) -> None:
    first, again = split_frame(reviews), split_frame(reviews.sample(frac=1.0, random_state=3))
    for name in SPLITS:
        pd.testing.assert_frame_equal(first[name], again[name])
    other = split_frame(reviews, salt="another-salt")
    assert set(other["test"][schema.ID]) != set(first["test"][schema.ID])


def test_growing_or_sampling_the_data_moves_no_review_to_another_split(reviews: pd.DataFrame) -> None:
    before = _split_of(split_frame(reviews))
    more = _reviews(105, seed=11)  # 5% new reviews, new ids
    more[schema.ID] += 1_000_000
    grown = _split_of(split_frame(pd.concat([reviews, more], ignore_index=True)))
    sampled = _split_of(split_frame(reviews.sample(frac=0.25, random_state=5)))
    assert len(grown) > len(before)
    assert 0 < len(sampled) < len(before)
    assert {i: grown[i] for i in before} == before
    # A sample may keep a duplicate text under another id than the full data does (the synthetic
    # reviews repeat often): compare the reviews that both kept.
    both = sampled.keys() & before.keys()
    assert len(both) > 200
    assert {i: before[i] for i in both} == {i: sampled[i] for i in both}
    # So a model trained on this week's train and validation splits never sees next week's test.
    seen = {i for i, name in before.items() if name != "test"}
    assert not seen & {i for i, name in grown.items() if name == "test"}


@pytest.mark.parametrize("fractions", [(0.1, 0.1), (0.2, 0.1), (0.15, 0.25)])
def test_split_sizes_follow_the_fractions(reviews: pd.DataFrame, fractions: tuple[float, float]) -> None:
    splits = split_frame(reviews, fractions=fractions)
    total = sum(len(part) for part in splits.values())
    # A hash, not a shuffle: shares within three standard errors (about 0.02 on ~2,000 reviews).
    assert len(splits["validation"]) / total == pytest.approx(fractions[0], abs=0.025)
    assert len(splits["test"]) / total == pytest.approx(fractions[1], abs=0.025)


def test_every_split_holds_both_classes_in_about_the_overall_share(reviews: pd.DataFrame) -> None:
    splits = split_frame(reviews)
    overall = pd.concat(splits.values())[schema.LABEL].mean()
    assert 0.7 < overall < 0.95  # the synthetic data is imbalanced, as the real data is
    for name, part in splits.items():
        assert part[schema.LABEL].mean() == pytest.approx(overall, abs=0.04), name
        assert set(part[schema.LABEL]) == {0, 1}, name


def test_a_split_without_one_class_is_named(reviews: pd.DataFrame) -> None:
    with pytest.raises(DataContractError, match=r"the (test|validation) split has no reviews labelled 0"):
        split_frame(reviews[reviews[schema.LABEL] == 1].head(40))


def test_no_clean_text_in_two_splits(reviews: pd.DataFrame) -> None:
    # Duplicates that differ only in case and punctuation clean to the same text.
    echoes = reviews.head(300).copy()
    echoes[schema.ID] += 100_000
    echoes[schema.TEXT] = echoes[schema.TEXT].str.upper() + "!!"
    echoes[[CLEAN, CLEAN_TITLE]] = clean_frame(echoes, PreprocessSettings.notebook())
    splits = split_frame(pd.concat([reviews, echoes], ignore_index=True))
    hashes = {name: text_hashes(part[CLEAN]) for name, part in splits.items()}
    assert not hashes["train"] & hashes["validation"]
    assert not hashes["train"] & hashes["test"]
    assert not hashes["validation"] & hashes["test"]
    train, validation, test = (set(part[schema.ID]) for part in splits.values())
    assert not train & validation
    assert not train & test
    assert not validation & test


def test_duplicates_and_empty_texts_are_dropped(reviews: pd.DataFrame) -> None:
    extra = reviews.head(50).copy()
    extra[schema.ID] += 100_000
    empty = reviews.tail(20).copy()
    empty[schema.ID] += 200_000
    empty[CLEAN] = ""
    frame = pd.concat([reviews, extra, empty], ignore_index=True)
    splits = split_frame(frame)
    kept = pd.concat(splits.values())
    assert kept[CLEAN].is_unique
    assert (kept[CLEAN].str.len() > 0).all()
    assert len(kept) == reviews.loc[reviews[CLEAN] != "", CLEAN].nunique()
    # Of two rows with the same clean text the earlier id stays, whatever the input order.
    assert not (set(kept[schema.ID]) & set(extra[schema.ID]))


def test_split_keeps_the_documented_columns(reviews: pd.DataFrame) -> None:
    for part in split_frame(reviews).values():
        assert tuple(part.columns) == SPLIT_COLUMNS
        assert list(part.index) == list(range(len(part)))


@pytest.mark.parametrize("max_tokens", [3, 10, 40])
def test_vocabulary_starts_with_padding_and_oov_and_respects_max_tokens(
    reviews: pd.DataFrame, max_tokens: int
) -> None:
    vocabulary = fit_vocabulary(reviews[CLEAN].tolist(), max_tokens)
    assert vocabulary[:2] == ["", "[UNK]"]
    assert len(vocabulary) == max_tokens  # the data has more distinct tokens than any max_tokens here
    assert len(set(vocabulary)) == len(vocabulary)


def test_vocabulary_orders_tokens_by_frequency() -> None:
    vocabulary = fit_vocabulary(["fit fit fit love love dress", "fit love"], max_tokens=100)
    assert vocabulary == ["", "[UNK]", "fit", "love", "dress"]


@pytest.mark.parametrize("sequence_length", [1, 4, 12])
def test_encode_round_trips_through_the_vocabulary(sequence_length: int) -> None:
    texts = ["love dress fit perfectli", "fabric cheap", "dress"]
    vocabulary = fit_vocabulary(texts, max_tokens=100)
    x = SequenceEncoder(vocabulary, sequence_length).encode(texts)
    assert x.shape == (3, sequence_length)
    assert x.dtype == np.int32
    for row, text in zip(x, texts, strict=True):
        tokens = text.split()[:sequence_length]
        assert [vocabulary[i] for i in row[: len(tokens)]] == tokens
        assert (row[len(tokens) :] == 0).all()  # padded at the end with the pad id


def test_encode_maps_unknown_tokens_to_the_oov_id() -> None:
    vocabulary = ["", "[UNK]", "love", "dress"]
    assert SequenceEncoder(vocabulary, 5).encode(["love zigzag dress"]).tolist() == [[2, 1, 3, 0, 0]]


def test_encode_of_nothing_has_the_fixed_width() -> None:
    assert SequenceEncoder(["", "[UNK]", "a"], 7).encode([]).shape == (0, 7)


def test_tokenize_stage_writes_a_complete_manifest(tmp_path, reviews: pd.DataFrame) -> None:
    snapshot = tmp_path / "ingest" / "reviews.parquet"
    snapshot.parent.mkdir()
    reviews.drop(columns=[CLEAN, CLEAN_TITLE]).to_parquet(snapshot, index=False)
    cleaned = preprocess(snapshot, tmp_path / "preprocess")

    manifest_path = tokenize(cleaned, tmp_path / "tokenize", max_tokens=50, sequence_length=16)

    data = Tokenized(manifest_path)
    assert data.manifest["vocabulary_size"] == 50
    assert data.manifest["sequence_length"] == 16
    assert read_json(data.vocabulary_path)["tokens"][:2] == ["", "[UNK]"]
    assert read_json(data.settings_path) == read_json(cleaned.parent / "preprocess.json")
    rows = 0
    for name in SPLITS:
        x, y = data.arrays(name)
        frame = data.frame(name)
        assert x.shape == (len(frame), 16)
        assert x.max() < 50
        assert y.tolist() == frame[schema.LABEL].tolist()
        rows += len(frame)
    assert rows + data.manifest["duplicates_or_empty_dropped"] == data.manifest["rows_in"] == len(reviews)
    assert not list((tmp_path / "tokenize").glob(".*.tmp"))


@pytest.mark.parametrize("use_title", [True, False])
def test_the_title_gets_its_own_ngram_block_when_the_run_keeps_titles(
    tmp_path, reviews: pd.DataFrame, use_title: bool
) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from review_sentiment.features import TITLE_BLOCK, NgramTfidf

    snapshot = tmp_path / "ingest" / "reviews.parquet"
    snapshot.parent.mkdir()
    reviews.drop(columns=[CLEAN, CLEAN_TITLE]).to_parquet(snapshot, index=False)
    settings = PreprocessSettings(use_title=use_title)
    data = Tokenized(tokenize(preprocess(snapshot, tmp_path / "preprocess", settings), tmp_path / "tokenize"))
    payload = read_json(data.ngrams_path)
    assert (TITLE_BLOCK in payload) is use_title
    text_width = NgramTfidf(payload).size
    matrix = data.ngrams("validation")
    if not use_title:
        assert matrix.shape[1] == text_width
        return
    train = data.frame("train")
    # The title block is scikit-learn's TF-IDF of the cleaned titles, fitted on train only.
    reference = TfidfVectorizer(token_pattern=r"\S+", lowercase=False, ngram_range=(1, 2)).fit(
        train[CLEAN_TITLE]
    )
    block = matrix[:, text_width:]
    assert block.shape[1] == len(payload[TITLE_BLOCK]["tokens"]) == len(reference.vocabulary_) + 1
    order = [reference.vocabulary_[t] for t in payload[TITLE_BLOCK]["tokens"][1:]]
    expected = reference.transform(data.frame("validation")[CLEAN_TITLE])[:, order]
    np.testing.assert_allclose(block[:, 1:].toarray(), expected.toarray(), atol=1e-6)
    # Each block is L2-normalised on its own: a review with a title has two unit blocks.
    titled = (data.frame("validation")[CLEAN_TITLE].str.len() > 0).to_numpy()
    norms = np.sqrt(np.asarray(block.multiply(block).sum(axis=1))).ravel()
    assert titled.any()
    np.testing.assert_allclose(norms[titled & (norms > 0)], 1.0, rtol=1e-5)


def test_model_inputs_are_the_same_built_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    from review_sentiment import features
    from review_sentiment import tokenize as stage
    from review_sentiment.features import ReviewNgrams, model_inputs

    texts = ["love it", "not good too small", "", "love love it not", "runs small"] * 7
    titles = ["great", "", "meh", "love it", "small"] * 7
    ngrams = ReviewNgrams(stage.fit_ngrams(texts, 50, titles=titles))
    sequences = SequenceEncoder(fit_vocabulary(texts, 20), 3)
    whole = ngrams.transform(texts, titles)
    monkeypatch.setattr(features, "ENCODE_BATCH", 4)  # 35 rows: nine batches, the last of three
    batched = model_inputs(texts, titles, sequences=sequences, ngrams=ngrams)
    assert batched["ngrams"].shape == whole.shape
    assert batched["ngrams"].nnz == whole.nnz > 0
    np.testing.assert_array_equal(batched["ngrams"].toarray(), whole.toarray())
    np.testing.assert_array_equal(batched["tokens"], sequences.encode(texts))
    empty = model_inputs([], [], sequences=sequences, ngrams=ngrams)
    assert empty["ngrams"].shape == (0, whole.shape[1])
    assert empty["tokens"].shape == (0, 3)
    assert set(model_inputs(texts, None, sequences=sequences, ngrams=None)) == {"tokens"}


def test_tokenize_reads_clean_title_and_refuses_a_file_without_it(tmp_path, reviews: pd.DataFrame) -> None:
    cleaned = tmp_path / "preprocess" / "reviews_clean.parquet"
    cleaned.parent.mkdir()
    reviews.drop(columns=[CLEAN_TITLE]).to_parquet(cleaned, index=False)
    (tmp_path / "preprocess" / "preprocess.json").write_text("{}")
    with pytest.raises(DataContractError, match="clean_title"):
        tokenize(cleaned, tmp_path / "tokenize")
