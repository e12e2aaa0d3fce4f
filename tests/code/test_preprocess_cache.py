"""The preprocess cache: hits, invalidation, only new reviews cleaned, output as a cold run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import review_sentiment.preprocess as pre
from review_sentiment import schema
from review_sentiment.__main__ import main as cli_main
from review_sentiment.preprocess import (
    CACHE_STEMS_NAME,
    CACHE_TEXTS_NAME,
    CLEAN,
    OUTPUT_NAME,
    SETTINGS_NAME,
    PreprocessCache,
    PreprocessSettings,
    TextCleaner,
    cache_fingerprint,
    cleaner_inputs,
    preprocess,
)

SEED = PreprocessSettings()
TEXTS = [
    "Love this dress, fits perfectly!",
    "Runs small &amp; the fabric is cheap. I didn't keep it",
    "",
    "Love this dress, fits perfectly!",  # a repeated review
    "GORGEOUS colour_but [too] long",
    "I can't wear it to work",
    None,
    "Soft, warm and flattering; returned the other one",
]
TITLES = ["Wow", "", "Meh", "Nice", None, "Nope", "", "Cosy"]


def _frame(texts: list[str | None], titles: list[str | None] | None = None) -> pd.DataFrame:
    titles = titles if titles is not None else [""] * len(texts)
    return pd.DataFrame({schema.ID: range(len(texts)), schema.TITLE: titles, schema.TEXT: texts})


def _snapshot(folder: Path, frame: pd.DataFrame) -> Path:
    path = folder / "reviews.parquet"
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


@pytest.fixture
def clean_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text TextCleaner.clean is called with, in order."""
    calls: list[str] = []
    original = TextCleaner.clean

    def counting(self: TextCleaner, text: str, title: str = "") -> str:
        calls.append(text)
        return original(self, text, title)

    monkeypatch.setattr(TextCleaner, "clean", counting)
    return calls


@pytest.mark.parametrize(
    "settings",
    [
        SEED,
        PreprocessSettings(keep_negations=True),
        PreprocessSettings(use_title=True),
        PreprocessSettings(unescape_html=False),
    ],
    ids=["seed", "negations", "title", "raw-html"],
)
def test_cached_runs_write_exactly_what_a_cold_run_writes(
    tmp_path: Path, settings: PreprocessSettings
) -> None:
    snapshot = _snapshot(tmp_path / "in", _frame(TEXTS, TITLES))
    cold = preprocess(snapshot, tmp_path / "cold", settings)
    first = preprocess(snapshot, tmp_path / "first", settings, cache_dir=tmp_path / "cache")
    second = preprocess(snapshot, tmp_path / "second", settings, cache_dir=tmp_path / "cache")

    expected = pd.read_parquet(cold)
    for out in (first, second):
        pd.testing.assert_frame_equal(pd.read_parquet(out), expected)
        assert out.read_bytes() == cold.read_bytes()
        assert (out.parent / SETTINGS_NAME).read_bytes() == (cold.parent / SETTINGS_NAME).read_bytes()


def test_second_run_cleans_nothing(tmp_path: Path, clean_calls: list[str]) -> None:
    snapshot = _snapshot(tmp_path / "in", _frame(TEXTS))
    preprocess(snapshot, tmp_path / "week1", SEED, cache_dir=tmp_path / "cache")
    # The repeated review is cleaned once.
    assert len(clean_calls) == len(set(cleaner_inputs(_frame(TEXTS), SEED)))

    clean_calls.clear()
    preprocess(snapshot, tmp_path / "week2", SEED, cache_dir=tmp_path / "cache")
    assert clean_calls == []


def test_only_new_reviews_are_cleaned(tmp_path: Path, clean_calls: list[str]) -> None:
    old, new = TEXTS[:5], ["Perfect for summer, light and airy", "The zipper broke after a week"]
    cache = tmp_path / "cache"
    preprocess(_snapshot(tmp_path / "w1", _frame(old)), tmp_path / "out1", SEED, cache_dir=cache)
    clean_calls.clear()

    out = preprocess(_snapshot(tmp_path / "w2", _frame(old + new)), tmp_path / "out2", SEED, cache_dir=cache)

    assert clean_calls == new
    cold = TextCleaner(SEED)
    assert pd.read_parquet(out)[CLEAN].tolist() == [cold.clean(t or "") for t in old + new]


def test_hits_and_misses_are_counted(tmp_path: Path) -> None:
    inputs = ["Love it", "Hate it", "Love it"]
    cache = PreprocessCache(tmp_path, TextCleaner(SEED))
    assert cache.clean(inputs) == ["love", "hate", "love"]
    assert (cache.hits, cache.misses, len(cache)) == (0, 3, 2)
    cache.save()

    again = PreprocessCache(tmp_path, TextCleaner(SEED))
    assert len(again) == 2
    assert again.clean([*inputs, "So comfy"]) == ["love", "hate", "love", "comfi"]
    assert (again.hits, again.misses) == (3, 1)


def test_a_settings_change_misses_the_old_entries(tmp_path: Path, clean_calls: list[str]) -> None:
    snapshot = _snapshot(tmp_path / "in", _frame(["I did not like it", "No, not for me"]))
    seed_out = preprocess(snapshot, tmp_path / "seed", SEED, cache_dir=tmp_path / "cache")
    clean_calls.clear()

    negating = PreprocessSettings(keep_negations=True)
    out = preprocess(snapshot, tmp_path / "neg", negating, cache_dir=tmp_path / "cache")

    assert len(clean_calls) == 2  # nothing came from the seed settings' entries
    assert pd.read_parquet(out)[CLEAN].tolist() == ["not like", "no not"]
    assert pd.read_parquet(seed_out)[CLEAN].tolist() == ["like", ""]
    assert len(list((tmp_path / "cache").iterdir())) == 2  # one folder per fingerprint


@pytest.mark.parametrize(
    "other",
    [
        PreprocessSettings(keep_negations=True),
        PreprocessSettings(use_title=True),
        PreprocessSettings(unescape_html=False),
    ],
)
def test_every_setting_is_in_the_fingerprint(other: PreprocessSettings) -> None:
    assert cache_fingerprint(TextCleaner(other)) != cache_fingerprint(TextCleaner(SEED))
    assert cache_fingerprint(TextCleaner(other)) == cache_fingerprint(TextCleaner(other))


def test_a_stopword_list_change_misses_the_old_entries(tmp_path: Path) -> None:
    full = TextCleaner(SEED)
    cache = PreprocessCache(tmp_path, full)
    assert cache.clean(["the dress is lovely"]) == ["dress love"]
    cache.save()

    shorter = TextCleaner(SEED, stopwords=full.stopwords - {"is"})
    assert cache_fingerprint(shorter) != cache_fingerprint(full)
    other = PreprocessCache(tmp_path, shorter)
    assert len(other) == 0
    assert other.clean(["the dress is lovely"]) == ["dress is love"]


def test_a_cleaner_version_bump_misses_the_old_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = PreprocessCache(tmp_path, TextCleaner(SEED))
    cache.clean(["Love it"])
    cache.save()
    before = cache.fingerprint

    monkeypatch.setattr(pre, "CLEANER_VERSION", pre.CLEANER_VERSION + 1)

    bumped = PreprocessCache(tmp_path, TextCleaner(SEED))
    assert bumped.fingerprint != before
    assert len(bumped) == 0


def test_with_use_title_the_title_is_part_of_the_key(tmp_path: Path) -> None:
    settings = PreprocessSettings(use_title=True)
    cache_dir = tmp_path / "cache"
    preprocess(
        _snapshot(tmp_path / "a", _frame(["Fits well"], ["Great"])), tmp_path / "o1", settings, cache_dir
    )

    out = preprocess(
        _snapshot(tmp_path / "b", _frame(["Fits well"], ["Awful"])), tmp_path / "o2", settings, cache_dir
    )

    assert pd.read_parquet(out)[CLEAN].tolist() == ["aw fit well"]


def test_a_match_on_64_bits_only_is_not_a_hit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_keys = pre.text_keys

    def colliding(texts: list[str]) -> np.ndarray:
        keys = real_keys(texts).copy()
        keys[:, 0] = 7  # every text shares its first 64 bits
        return keys

    monkeypatch.setattr(pre, "text_keys", colliding)
    cache = PreprocessCache(tmp_path, TextCleaner(SEED))
    cache.clean(["Love it"])
    cache.save()

    again = PreprocessCache(tmp_path, TextCleaner(SEED))
    assert again.clean(["Hate it", "Love it"]) == ["hate", "love"]
    assert (again.hits, again.misses) == (1, 1)


def test_the_stem_memo_is_kept_between_runs(tmp_path: Path) -> None:
    cache = PreprocessCache(tmp_path, TextCleaner(SEED))
    cache.clean(["Flattering dresses"])
    cache.save()

    cleaner = TextCleaner(SEED)
    PreprocessCache(tmp_path, cleaner)
    assert cleaner.stems[b"flattering"] == "flatter"
    assert cleaner.stems[b"dresses"] == "dress"


def test_files_are_replaced_atomically_and_nothing_is_written_when_nothing_is_new(tmp_path: Path) -> None:
    cache = PreprocessCache(tmp_path, TextCleaner(SEED))
    cache.clean(["Love it"])
    cache.save()
    texts = cache.folder / CACHE_TEXTS_NAME
    stamp = texts.stat().st_mtime_ns

    again = PreprocessCache(tmp_path, TextCleaner(SEED))
    again.clean(["Love it"])
    again.save()

    assert texts.stat().st_mtime_ns == stamp
    assert {p.name for p in cache.folder.iterdir()} == {CACHE_TEXTS_NAME, CACHE_STEMS_NAME, "settings.json"}


def test_an_unreadable_cache_file_is_ignored_and_rewritten(tmp_path: Path) -> None:
    cache = PreprocessCache(tmp_path, TextCleaner(SEED))
    cache.clean(["Love it"])
    cache.save()
    (cache.folder / CACHE_TEXTS_NAME).write_bytes(b"not parquet")
    (cache.folder / CACHE_STEMS_NAME).write_bytes(b"")

    again = PreprocessCache(tmp_path, TextCleaner(SEED))
    assert len(again) == 0
    assert again.clean(["Love it"]) == ["love"]
    again.save()
    assert len(PreprocessCache(tmp_path, TextCleaner(SEED))) == 1


def test_cli_preprocess_takes_a_cache_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = _snapshot(tmp_path / "in", _frame(TEXTS))
    cache_dir = tmp_path / "cache"
    args = [
        "preprocess",
        "--input",
        str(snapshot),
        "--cache-dir",
        str(cache_dir),
        "--output",
        str(tmp_path / "out"),
    ]

    assert cli_main(args) == 0

    assert capsys.readouterr().out.strip().endswith(OUTPUT_NAME)
    folder = cache_dir / cache_fingerprint(TextCleaner(SEED))
    assert len(PreprocessCache(cache_dir, TextCleaner(SEED))) == len(set(cleaner_inputs(_frame(TEXTS), SEED)))
    assert (folder / CACHE_TEXTS_NAME).is_file()
