"""Pathological review text: a 1 MB review, emoji, right-to-left and zero-width characters, HTML
and SQL-looking strings go through ingest, preprocess and the vocabulary unchanged where they
should be, in bounded memory and time. (The SQL round trip through a real PostgreSQL table is in
tests/integration/test_bad_input_on_postgres.py.)
"""

from __future__ import annotations

import random
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from review_sentiment import schema
from review_sentiment.cleaning_rules import PreprocessSettings
from review_sentiment.features import SequenceEncoder
from review_sentiment.ingest import ingest
from review_sentiment.preprocess import CLEAN, TextCleaner, preprocess
from tests.data.test_malformed_input import csv_text, rows

MB = 1_000_000
WORDS = ("the", "dress", "fits", "perfectly", "soft", "fabric", "lovely", "colour", "runs", "small", "cheap")

PATHOLOGICAL = {
    "emoji": "Love it 😍👗🔥 fits perfectly 👍🏽 family 👨‍👩‍👧",
    "rtl": "جميل جدا the fabric is soft \u202eevil\u202c שמלה יפה",
    "zero-width": "gr\u200beat fab\u200cric, fi\u200dts\u2060 perfectly\ufeff, soft\u00adly",
    "html": "<b>great</b> dress<br/><script>alert('x')</script> &amp; I didn&#39;t return it",
    "sql-drop": "Robert'); DROP TABLE reviews; --",
    "sql-or": "' OR '1'='1'; SELECT * FROM pg_shadow; /*",
    "sql-placeholders": "%s %(review_text)s $1 {cols} \\x27 E'\\\\' ; COMMIT; VACUUM",
    # A bare CR is a line break to a CSV reader: tested (rejected) in test_malformed_input.py.
    "control": "tabs\tand vertical tabs\x0b\x0cand a bell\x07",
}


def long_review(size: int = MB, seed: int = 0) -> str:
    rng = random.Random(seed)
    parts, length = [], 0
    while length <= size:
        word = rng.choice(WORDS)
        parts.append(word)
        length += len(word) + 1
    return " ".join(parts)[:size]


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, str]]:
    """Ingest a file whose first rows carry the pathological texts; return the snapshot and them."""
    base = rows()
    texts = [*PATHOLOGICAL.values(), long_review()]
    expected = {}
    for index, text in enumerate(texts):
        base[index] = {**base[index], "Review Text": text}
        expected[int(base[index]["Unnamed: 0"])] = text
    folder = tmp_path_factory.mktemp("pathological")
    source = folder / "reviews.csv"
    source.write_text(csv_text(base), encoding="utf-8", newline="")
    return ingest(source, folder / "ingest"), expected


def test_ingest_keeps_every_text_exactly(snapshot) -> None:
    path, expected = snapshot
    snap = pd.read_parquet(path).set_index(schema.ID)
    for review_id, text in expected.items():
        assert snap.loc[review_id, schema.TEXT] == text, review_id
    assert len(snap.loc[max(expected), schema.TEXT]) == MB


def test_preprocess_cleans_them_to_ascii_words(snapshot, tmp_path: Path) -> None:
    path, expected = snapshot
    cleaned = pd.read_parquet(preprocess(path, tmp_path, PreprocessSettings.notebook())).set_index(schema.ID)[
        CLEAN
    ]
    by_case = dict(zip(PATHOLOGICAL, expected, strict=False))
    for case, review_id in by_case.items():
        assert cleaned[review_id].isascii(), case
        assert all(word.isalpha() and word.islower() for word in cleaned[review_id].split()), case
    assert cleaned[by_case["emoji"]] == "love fit perfectli famili"
    assert cleaned[by_case["rtl"]] == "fabric soft evil"
    # Invisible characters inside a word do not split it.
    assert cleaned[by_case["zero-width"]] == "great fabric fit perfectli softli"
    # Markup is text, never interpreted: tag names are words like any other; entities unescaped.
    assert cleaned[by_case["html"]] == "b great b dress br script alert x script return"
    assert cleaned[by_case["sql-drop"]] == "robert drop tabl review"


@pytest.mark.parametrize(
    "text",
    [long_review(), "😍" * (MB // 4), "\u200b" * MB, "<b>" * (MB // 3), "a" * MB, "é" * MB],
    ids=["words", "emoji", "zero-width", "tags", "one-word", "latin"],
)
def test_a_1mb_review_is_cleaned_in_bounded_memory_and_time(text: str) -> None:
    cleaner = TextCleaner(PreprocessSettings.notebook(keep_negations=True))
    tracemalloc.start()
    started = time.perf_counter()
    try:
        cleaner.clean(text)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = len(text.encode("utf-8"))
    # Linear: a few copies of the text plus one small object per word (measured: at most 9 MB
    # for the 1 MB text of short words, 0.5 s on one core).
    assert peak < 16 * MB, f"peak {peak / MB:.1f} MB for {size / MB:.1f} MB of text"
    assert seconds < 5, f"{seconds:.1f} s"


def test_a_1mb_review_becomes_one_fixed_width_row() -> None:
    clean = TextCleaner(PreprocessSettings.notebook()).clean(long_review())
    tokens = SequenceEncoder(["", "[UNK]", "soft", "fabric", "dress"], 120).encode([clean, "soft fabric"])
    assert tokens.shape == (2, 120)
    assert tokens.dtype.kind == "i"
    assert np.all(tokens[0] > 0)  # truncated, not padded
    assert tokens[1, :2].tolist() == [2, 3]
