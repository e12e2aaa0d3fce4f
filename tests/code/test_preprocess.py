"""Unit tests of the preprocess stage: the seed's cleaning steps, one concern per test."""

from __future__ import annotations

import re

import nltk
import pandas as pd
import pytest

from review_sentiment import schema
from review_sentiment.artifacts import read_json
from review_sentiment.cleaning_rules import CANT, NEGATED_AUXILIARIES, NEGATIONS, PreprocessSettings
from review_sentiment.config import NLTK_DATA_DIR
from review_sentiment.layout import OUTPUT_NAME, SETTINGS_NAME
from review_sentiment.preprocess import (
    CLEAN,
    CLEAN_TITLE,
    TextCleaner,
    clean_frame,
    clean_reviews,
    cleaner_from_payload,
    english_stopwords,
    preprocess,
    settings_payload,
)

SEED = PreprocessSettings.notebook()
NEGATING = PreprocessSettings.notebook(keep_negations=True)


@pytest.fixture(scope="module")
def seed_cleaner() -> TextCleaner:
    return TextCleaner(SEED)


@pytest.fixture(scope="module")
def negating_cleaner() -> TextCleaner:
    return TextCleaner(NEGATING)


@pytest.mark.parametrize("char", ["[", "\\", "]", "^", "_", "`"])
def test_keeps_only_letters_unlike_the_seed_regex(seed_cleaner: TextCleaner, char: str) -> None:
    text = f"lovely{char}fabric"
    # The seed's [^a-zA-z] range A-z covers these six ASCII characters and kept them.
    assert re.sub("[^a-zA-z]", " ", text) == text
    assert seed_cleaner.clean(text) == "love fabric"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Size 12, fits!!! 100%", "size fit"),
        ("5'4\" and 120lbs", "lb"),
        ("café", "caf"),
        ("", ""),
        ("   \n\t ", ""),
    ],
)
def test_drops_digits_punctuation_and_non_ascii(seed_cleaner: TextCleaner, text: str, expected: str) -> None:
    assert seed_cleaner.clean(text) == expected


@pytest.mark.parametrize("text", ["GORGEOUS Dress", "gorgeous dress", "GoRgEoUs DrEsS"])
def test_lowercases(seed_cleaner: TextCleaner, text: str) -> None:
    assert seed_cleaner.clean(text) == "gorgeou dress"


def test_stopwords_come_from_the_shipped_nltk_copy() -> None:
    words = english_stopwords()
    assert len(words) == 198
    assert {"not", "no", "nor", "the", "t", "didn", "didn't"} <= words
    # The package's own copy is first on NLTK's path, so no worker ever needs nltk.download.
    assert nltk.data.path[0] == str(NLTK_DATA_DIR)
    assert str(nltk.data.find("corpora/stopwords/english")).startswith(str(NLTK_DATA_DIR))
    shipped = (NLTK_DATA_DIR / "corpora" / "stopwords" / "english").read_text().split()
    assert frozenset(shipped) == words


@pytest.mark.parametrize(
    ("word", "stem"),
    [
        ("running", "run"),
        ("dresses", "dress"),
        ("flattering", "flatter"),
        ("comfortable", "comfort"),
        ("returned", "return"),
        ("perfectly", "perfectli"),
        ("beautifully", "beauti"),
    ],
)
def test_porter_stems(seed_cleaner: TextCleaner, word: str, stem: str) -> None:
    assert seed_cleaner.clean(word) == stem


def test_seed_settings_drop_negations(seed_cleaner: TextCleaner) -> None:
    assert seed_cleaner.clean("I did not like it, no way, nor the colour") == "like way colour"
    assert seed_cleaner.clean("I didn't like it") == "like"


@pytest.mark.parametrize(
    "negated",
    ["didn't", "don't", "doesn't", "isn't", "wasn't", "weren't", "won't", "couldn't", "shouldn't", "didn’t"],
)
def test_keep_negations_maps_nt_forms_to_not(negating_cleaner: TextCleaner, negated: str) -> None:
    assert negating_cleaner.clean(f"I {negated} like it") == "not like"


@pytest.mark.parametrize("word", sorted(NEGATIONS))
def test_keep_negations_keeps_no_nor_not(negating_cleaner: TextCleaner, word: str) -> None:
    assert negating_cleaner.clean(f"{word} stretch") == f"{word} stretch"


def test_keep_negations_still_drops_other_stopwords(negating_cleaner: TextCleaner) -> None:
    assert negating_cleaner.clean("It is the best t shirt") == "best shirt"
    released = TextCleaner(SEED).stopwords - negating_cleaner.stopwords
    assert released == (NEGATIONS | NEGATED_AUXILIARIES) & english_stopwords()


def test_keep_negations_sees_html_encoded_apostrophes(negating_cleaner: TextCleaner) -> None:
    assert negating_cleaner.clean("I didn&#39;t like it") == "not like"


@pytest.mark.parametrize(
    ("use_title", "title", "expected"),
    [
        (True, "Great dress!", "great dress fit well"),
        (True, "", "fit well"),
        (False, "Great dress!", "fit well"),
    ],
)
def test_use_title_prepends_the_title(use_title: bool, title: str, expected: str) -> None:
    cleaner = TextCleaner(PreprocessSettings.notebook(use_title=use_title))
    assert cleaner.clean("Fits well.", title=title) == expected


@pytest.mark.parametrize(
    ("unescape", "expected"),
    [(True, "gorgeou soft"), (False, "quot gorgeou quot amp soft")],
)
def test_html_entities_are_unescaped_first(unescape: bool, expected: str) -> None:
    cleaner = TextCleaner(PreprocessSettings.notebook(unescape_html=unescape))
    assert cleaner.clean("&quot;Gorgeous&quot; &amp; soft") == expected


def test_clean_many_pairs_titles_with_texts() -> None:
    cleaner = TextCleaner(PreprocessSettings.notebook(use_title=True))
    assert cleaner.clean_many(["Fits well", "Too small"], ["Love", ""]) == ["love fit well", "small"]
    with pytest.raises(ValueError, match=r"shorter|longer"):
        cleaner.clean_many(["Fits well", "Too small"], ["Love"])


def test_clean_frame_returns_the_clean_text_and_title_columns_on_the_same_index() -> None:
    frame = pd.DataFrame(
        {schema.TEXT: ["Loved it!", None, "Runs small"], schema.TITLE: ["Wow", "", None]},
        index=[10, 20, 30],
    )
    cleaned = clean_frame(frame, PreprocessSettings.notebook(use_title=True))
    assert list(cleaned.columns) == [CLEAN, CLEAN_TITLE]
    assert list(cleaned.index) == [10, 20, 30]
    assert cleaned[CLEAN].tolist() == ["wow love", "", "run small"]
    assert cleaned[CLEAN_TITLE].tolist() == ["wow", "", ""]


def test_without_use_title_clean_title_is_empty_and_the_title_unread() -> None:
    frame = pd.DataFrame({schema.TEXT: ["Loved it!", "Runs small"], schema.TITLE: ["Wow", "Meh"]})
    cleaned = clean_frame(frame, SEED)
    assert cleaned[CLEAN].tolist() == ["love", "run small"]
    assert cleaned[CLEAN_TITLE].tolist() == ["", ""]


def test_clean_reviews_can_skip_the_title_alone() -> None:
    cleaner = TextCleaner(PreprocessSettings.notebook(use_title=True))
    texts, titles = pd.Series(["Fits well", "Too small"]), pd.Series(["Love", ""])
    assert clean_reviews(cleaner, texts, titles) == (["love fit well", "small"], ["love", ""])
    assert clean_reviews(cleaner, texts, titles, titles_alone=False) == (["love fit well", "small"], None)


def test_the_cant_rule_matches_its_ascii_key() -> None:
    # The batch cleaner only searches texts holding the key: every ASCII match must hold it.
    key = CANT.ascii_key.decode("ascii")
    assert CANT.pattern.fullmatch(key)
    assert CANT.pattern.fullmatch(key.upper())
    assert CANT.apply("I can't, CAN'T, can’t") == "I not, not, not"


@pytest.mark.parametrize(
    "settings",
    [SEED, NEGATING, PreprocessSettings.notebook(use_title=True, unescape_html=False)],
    ids=["seed", "negations", "title-raw-html"],
)
def test_payload_rebuilds_the_same_cleaner(settings: PreprocessSettings) -> None:
    texts = ["I didn&#39;t love the [fit]", "NOT for me, no", "Fits_true to size"]
    titles = ["Meh", "", "Great"]
    rebuilt = cleaner_from_payload(settings_payload(settings))
    assert rebuilt.settings == settings
    assert rebuilt.clean_many(texts, titles) == TextCleaner(settings).clean_many(texts, titles)


def test_preprocess_stage_writes_clean_text_and_its_settings(tmp_path) -> None:
    snapshot = tmp_path / "ingest" / "reviews.parquet"
    snapshot.parent.mkdir()
    frame = pd.DataFrame(
        {schema.ID: [1, 2], schema.TITLE: ["", "Nope"], schema.TEXT: ["Love it", "Didn't fit"]}
    )
    frame.to_parquet(snapshot, index=False)
    before = snapshot.read_bytes()

    out = preprocess(snapshot, tmp_path / "preprocess", NEGATING)

    assert out == tmp_path / "preprocess" / OUTPUT_NAME
    written = pd.read_parquet(out)
    assert written[CLEAN].tolist() == ["love", "not fit"]
    assert written[CLEAN_TITLE].tolist() == ["", ""]  # NEGATING leaves titles out
    assert written[schema.ID].tolist() == [1, 2]
    payload = read_json(out.parent / SETTINGS_NAME)
    assert payload["keep_negations"] is True
    assert len(payload["stopwords"]) == 198
    assert snapshot.read_bytes() == before  # the input is never modified
    assert not [p.name for p in out.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("text", ["I can't wear it", "I CAN’T wear it"])
def test_keep_negations_keeps_cant(negating_cleaner: TextCleaner, text: str) -> None:
    assert negating_cleaner.clean(text) == "not wear"
