"""The benchmark's baseline is the seed's loop, bug and slowness included."""

from __future__ import annotations

import nltk.corpus
import nltk.stem.porter
import pytest

from bench.seed_baseline import FIXED_PATTERN, SEED_PATTERN, seed_clean
from review_sentiment.cleaning_rules import PreprocessSettings
from review_sentiment.preprocess import TextCleaner

# Hand-worked through the seed's steps: letters only (by its regex), lowercase, split, drop NLTK
# stopwords, Porter stems.
CASES = [
    ("I LOVE this dress!!!", "love dress", "love dress"),
    ("Size 12, fits!!! 100%", "size fit", "size fit"),
    ("The soft fabric; it was not itchy", "soft fabric itchi", "soft fabric itchi"),
    # [^a-zA-z] keeps [ \ ] ^ _ and the backtick, so they stay inside the words; Porter then
    # reads "soft_fabric" as one long word and drops its "ic".
    ("soft_fabric [red] ^ `top` a\\b", "soft_fabr [red] ^ `top` a\\b", "soft fabric red top b"),
    ("café", "caf", "caf"),
]


@pytest.mark.parametrize(("text", "seed", "fixed"), CASES)
def test_matches_the_seed_by_hand(text: str, seed: str, fixed: str) -> None:
    assert seed_clean([text]) == [seed]
    assert seed_clean([text], FIXED_PATTERN) == [fixed]


def test_the_default_pattern_is_the_seeds_buggy_one() -> None:
    assert SEED_PATTERN == "[^a-zA-z]"
    assert FIXED_PATTERN == "[^a-zA-Z]"


def test_rebuilds_the_stopword_set_per_word_and_the_stemmer_per_review(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    words_calls, stemmers = [], []
    real_words = nltk.corpus.stopwords.words

    def counting_words(*args: str) -> list[str]:
        words_calls.append(args)
        return real_words(*args)

    class CountingStemmer(nltk.stem.porter.PorterStemmer):
        def __init__(self) -> None:
            stemmers.append(self)
            super().__init__()

    monkeypatch.setattr(nltk.corpus.stopwords, "words", counting_words)
    monkeypatch.setattr(nltk.stem.porter, "PorterStemmer", CountingStemmer)

    assert seed_clean(["Lovely soft dress", "Too big!", ""]) == ["love soft dress", "big", ""]
    assert len(words_calls) == 5  # one stopword list per word: 3 + 2 + 0
    assert set(words_calls) == {("english",)}
    assert len(stemmers) == 3  # one stemmer per review, even an empty one


def test_with_the_regex_fixed_agrees_with_the_project_cleaner() -> None:
    texts = [text for text, _, _ in CASES] + [
        "I didn't like it &amp; returned it",
        "Fits_true to size, 5'4\" 120lbs",
        "Back-ordered; worth the wait!!",
    ]
    project = TextCleaner(PreprocessSettings.notebook(unescape_html=False)).clean_many(texts)
    assert seed_clean(texts, FIXED_PATTERN) == project
    assert seed_clean(texts, SEED_PATTERN) != project  # the bug shows on these texts
