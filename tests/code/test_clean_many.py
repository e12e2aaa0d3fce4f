"""clean_many (the batched path the registered model serves with) equals clean() review by review."""

from __future__ import annotations

import itertools
import os

import pandas as pd
import pytest

from review_sentiment.cleaning_rules import PreprocessSettings
from review_sentiment.config import Settings
from review_sentiment.preprocess import TextCleaner
from tests.data.test_pathological_text import PATHOLOGICAL, long_review

ALL_SETTINGS = [PreprocessSettings(*flags) for flags in itertools.product([False, True], repeat=4)]
ADVERSARIAL = [
    "",
    " ",
    "a",
    "Can't",
    "I can’t wear it, CAN'T, can't, cAn'T",
    "scan't can'tx can't_ 1can't can't1 can'can't't",
    "I can&#39;t and didn&#39;t &amp;&amp; &quot;x&quot; &eacute;t&eacute; &#8203;gr&#x200b;eat &zwnj; & &",
    "gr\u200beat fab\u200cric fi\u200dts\u2060 perfectly\ufeff soft\u00adly",
    "café naïve ÉCOLE straße İstanbul ſtyle \u212aelvin fiancée",
    "😍👗 emoji 👍🏽 family 👨‍👩‍👧 \U0001f600x",
    "جميل جدا the fabric is soft \u202eevil\u202c שמלה יפה",
    "tabs\tand\nnew\rlines\x0b\x0c\x00nul\x07bell",
    "[brackets]_under_score^caret`back\\slash",
    "abcdefgh abcdefghi abcdefghijklmnop abcdefghijklmnopq " + "x" * 40 + " abcdefghijklmnopqrstuvwxyz",
    "supercalifragilisticexpialidocious Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "The THE the tHe didn't DIDN'T no nor not NOT",
    "bad \ud800 surrogate \udfff here",
    *PATHOLOGICAL.values(),
    long_review(200_000),
    "é" * 10_000,
    "\u200b" * 10_000 + "word",
    "a" * 100_000,
]
TITLES = ["", "Great!", "Can't", "&amp;", "Très bien", "abcdefghijklmnopqrstu", "\u200b", "None"]


def _real_reviews() -> tuple[list[str], list[str]]:
    """The real reviews with text, or the adversarial strings where the file is missing (never on CI)."""
    path = Settings.from_env().reviews_path
    if not path.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the real review file is missing on CI: {path}", pytrace=False)
        return ADVERSARIAL, [TITLES[i % len(TITLES)] for i in range(len(ADVERSARIAL))]
    frame = pd.read_csv(path, usecols=["Review Text", "Title"])
    frame = frame[frame["Review Text"].notna()]
    return frame["Review Text"].astype(str).tolist(), frame["Title"].fillna("").astype(str).tolist()


@pytest.fixture(scope="module")
def real() -> tuple[list[str], list[str]]:
    return _real_reviews()


def _check(settings: PreprocessSettings, texts: list[str], titles: list[str] | None) -> None:
    batched, single = TextCleaner(settings), TextCleaner(settings)
    expected = (
        [single.clean(text) for text in texts]
        if titles is None
        else [single.clean(text, title) for text, title in zip(texts, titles, strict=True)]
    )
    assert batched.clean_many(texts, titles) == expected
    # The memo (which the preprocess cache saves) fills with the same words, in the same order.
    assert list(batched.stems.items()) == list(single.stems.items())
    # A warm memo gives the same output again.
    assert batched.clean_many(texts, titles) == expected


@pytest.mark.parametrize("settings", ALL_SETTINGS, ids=str)
def test_clean_many_equals_clean_on_the_real_reviews(settings: PreprocessSettings, real) -> None:
    texts, titles = real
    _check(settings, texts, titles)


@pytest.mark.parametrize("settings", ALL_SETTINGS, ids=str)
def test_clean_many_equals_clean_on_adversarial_strings(settings: PreprocessSettings) -> None:
    titles = [TITLES[i % len(TITLES)] for i in range(len(ADVERSARIAL))]
    _check(settings, ADVERSARIAL, titles)
    _check(settings, ADVERSARIAL, None)
    for text in ADVERSARIAL:  # each alone: no word can lean on its neighbours
        _check(settings, [text], [text[:20]])


@pytest.mark.parametrize("settings", [PreprocessSettings.notebook(), ALL_SETTINGS[-1]], ids=str)
def test_clean_many_takes_series_lists_and_generators(settings: PreprocessSettings) -> None:
    texts = ["Love it!", "I can't", "", "Très &amp; joli"]
    titles = ["Wow", "", "Meh", "Ça"]
    expected = TextCleaner(settings).clean_many(texts, titles)
    cleaner = TextCleaner(settings)
    assert cleaner.clean_many(pd.Series(texts).astype(str), pd.Series(titles).astype(str)) == expected
    assert cleaner.clean_many(iter(texts), iter(titles)) == expected
    assert cleaner.clean_many([]) == []
    assert cleaner.clean_many([], []) == []


def test_clean_many_fails_on_what_clean_fails_on() -> None:
    cleaner = TextCleaner(PreprocessSettings.notebook(use_title=True))
    with pytest.raises(TypeError):
        cleaner.clean_many(["fine", None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"shorter|longer"):
        cleaner.clean_many(["a", "b"], ["t"])
    # A title that is not a string is formatted as clean() formats it.
    assert cleaner.clean_many(["fits"], [float("nan")]) == [cleaner.clean("fits", float("nan"))]  # type: ignore[list-item]
