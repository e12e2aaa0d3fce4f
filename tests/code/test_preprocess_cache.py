"""The preprocess cache: hits, invalidation, only new reviews cleaned, output as a cold run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import review_sentiment.preprocess as pre
import review_sentiment.preprocess_cache as cache_module
from review_sentiment import schema
from review_sentiment.cleaning_rules import PreprocessSettings
from review_sentiment.cli import main as cli_main
from review_sentiment.layout import OUTPUT_NAME, SETTINGS_NAME
from review_sentiment.preprocess import CLEAN, CLEAN_TITLE, TextCleaner, preprocess
from review_sentiment.preprocess_cache import (
    CACHE_INPUT,
    CACHE_OUTPUT,
    CACHE_STEMS_NAME,
    CACHE_TEXTS_NAME,
    PreprocessCache,
    cache_fingerprint,
    cleaner_input_array,
    cleaner_inputs,
)

SEED = PreprocessSettings.notebook()
SEED_TITLE = PreprocessSettings.notebook(use_title=True)
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
        PreprocessSettings.notebook(keep_negations=True),
        PreprocessSettings.notebook(use_title=True),
        PreprocessSettings.notebook(unescape_html=False),
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

    negating = PreprocessSettings.notebook(keep_negations=True)
    out = preprocess(snapshot, tmp_path / "neg", negating, cache_dir=tmp_path / "cache")

    assert len(clean_calls) == 2  # nothing came from the seed settings' entries
    assert pd.read_parquet(out)[CLEAN].tolist() == ["not like", "no not"]
    assert pd.read_parquet(seed_out)[CLEAN].tolist() == ["like", ""]
    assert len(list((tmp_path / "cache").iterdir())) == 2  # one folder per fingerprint


@pytest.mark.parametrize(
    "other",
    [
        PreprocessSettings.notebook(keep_negations=True),
        PreprocessSettings.notebook(use_title=True),
        PreprocessSettings.notebook(unescape_html=False),
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
    settings = PreprocessSettings.notebook(use_title=True)
    cache_dir = tmp_path / "cache"
    preprocess(
        _snapshot(tmp_path / "a", _frame(["Fits well"], ["Great"])), tmp_path / "o1", settings, cache_dir
    )

    out = preprocess(
        _snapshot(tmp_path / "b", _frame(["Fits well"], ["Awful"])), tmp_path / "o2", settings, cache_dir
    )

    assert pd.read_parquet(out)[CLEAN].tolist() == ["aw fit well"]
    assert pd.read_parquet(out)[CLEAN_TITLE].tolist() == ["aw"]


def test_a_rerun_cleans_only_new_titles(tmp_path: Path, clean_calls: list[str]) -> None:
    settings = PreprocessSettings.notebook(use_title=True)
    cache_dir = tmp_path / "cache"
    preprocess(
        _snapshot(tmp_path / "a", _frame(["Fits well"], ["Great"])), tmp_path / "o1", settings, cache_dir
    )
    clean_calls.clear()

    out = preprocess(
        _snapshot(tmp_path / "b", _frame(["Fits well", "Fits well"], ["Great", "Lovely"])),
        tmp_path / "o2",
        settings,
        cache_dir,
    )

    # The new pair's input and its new title; the known title and review come from the cache.
    assert clean_calls == ["Lovely Fits well", "Lovely"]
    assert pd.read_parquet(out)[CLEAN_TITLE].tolist() == ["great", "love"]


def test_a_hit_is_an_exact_match_of_the_whole_input(tmp_path: Path) -> None:
    cached = ["Love it", "Love it, fits well"]
    cache = PreprocessCache(tmp_path, TextCleaner(SEED))
    cache.clean(cached)
    cache.save()
    # Prefixes, extensions, case, whitespace and accents all differ from the cached inputs.
    near = ["Love i", "Love it ", "love it", "Love it, fits well!", "Lové it", "Love\u00a0it"]

    again = PreprocessCache(tmp_path, TextCleaner(SEED))
    out = again.clean([*near, *cached])

    cold = TextCleaner(SEED)
    assert out == [cold.clean(t) for t in [*near, *cached]]
    assert (again.hits, again.misses) == (len(cached), len(near))


def test_string_and_arrow_inputs_give_the_same_result(tmp_path: Path) -> None:
    texts = ["Love it", "Très joli, un peu court", "emoji \U0001f60d dress", "", "Love it"]
    by_list = PreprocessCache(tmp_path / "a", TextCleaner(SEED))
    by_array = PreprocessCache(tmp_path / "b", TextCleaner(SEED))

    assert by_list.clean(texts) == by_array.clean(pa.array(texts, pa.large_string()))
    assert len(by_list) == len(by_array) == 4


def test_a_lone_surrogate_in_a_python_input_is_cleaned_not_an_error(tmp_path: Path) -> None:
    texts = ["bad \ud800 char", "fine"]
    cache = PreprocessCache(tmp_path, TextCleaner(SEED))
    assert cache.clean(texts) == [TextCleaner(SEED).clean(t) for t in texts]
    cache.save()
    assert PreprocessCache(tmp_path, TextCleaner(SEED)).clean(texts[:1]) == ["bad char"]


_OBJECT_TEXTS = ["Fits well", None, "", "Très joli", float("nan"), "Runs small &amp; cheap"]
_OBJECT_TITLES = ["Great", "", None, "Ça va", "Nope", float("nan")]


@pytest.mark.parametrize("settings", [SEED, SEED_TITLE], ids=["text", "title"])
@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({schema.TITLE: _OBJECT_TITLES, schema.TEXT: _OBJECT_TEXTS}, dtype=object),
        pd.DataFrame({schema.TITLE: _OBJECT_TITLES, schema.TEXT: _OBJECT_TEXTS}).astype("str"),
        pd.DataFrame({schema.TITLE: [None, None], schema.TEXT: [None, "x"]}, dtype=object),
        pd.DataFrame({schema.TITLE: [1, 2], schema.TEXT: [3.5, "mixed"]}, dtype=object),
        pd.DataFrame({schema.TITLE: pd.Series([], dtype=object), schema.TEXT: pd.Series([], dtype=object)}),
    ],
    ids=["object", "str-dtype", "all-null", "not-strings", "empty"],
)
def test_cleaner_input_array_is_cleaner_inputs_in_utf8(
    frame: pd.DataFrame, settings: PreprocessSettings
) -> None:
    array = cleaner_input_array(frame, settings)
    assert array.type == pa.large_binary()
    assert array.to_pylist() == [t.encode("utf-8") for t in cleaner_inputs(frame, settings)]


def test_cleaner_input_array_of_a_parquet_snapshot(tmp_path: Path) -> None:
    frame = pd.read_parquet(_snapshot(tmp_path, _frame(TEXTS, TITLES)))
    for settings in (SEED, PreprocessSettings.notebook(use_title=True)):
        expected = [t.encode("utf-8") for t in cleaner_inputs(frame, settings)]
        assert cleaner_input_array(frame, settings).to_pylist() == expected


def test_a_cache_format_change_misses_the_old_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = PreprocessCache(tmp_path, TextCleaner(SEED))
    cache.clean(["Love it"])
    cache.save()

    monkeypatch.setattr(cache_module, "CACHE_FORMAT", cache_module.CACHE_FORMAT + 1)

    assert len(PreprocessCache(tmp_path, TextCleaner(SEED))) == 0


def test_the_cache_keeps_working_after_it_replaced_its_own_mapped_file(tmp_path: Path) -> None:
    first = PreprocessCache(tmp_path, TextCleaner(SEED))
    first.clean(["Love it"])
    first.save()
    cache = PreprocessCache(tmp_path, TextCleaner(SEED))  # memory-maps texts.arrow

    assert cache.clean(["Love it", "Hate it"]) == ["love", "hate"]
    cache.save()  # renames a new file over the mapped one
    assert cache.clean(["Love it", "Hate it", "So comfy"]) == ["love", "hate", "comfi"]
    cache.save()
    assert PreprocessCache(tmp_path, TextCleaner(SEED)).clean(["So comfy", "Love it"]) == ["comfi", "love"]
    assert (cache.hits, cache.misses) == (3, 2)


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


def _bad_offsets(path: Path) -> None:
    """A well-formed Arrow file whose input column's offsets run backwards."""
    offsets = np.array([0, 6, 3], dtype=np.int64)
    inputs = pa.Array.from_buffers(
        pa.large_binary(), 2, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"abcdef")]
    )
    table = pa.table({CACHE_INPUT: inputs, CACHE_OUTPUT: pa.array(["x", "y"], pa.large_string())})
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _other_schema(path: Path) -> None:
    table = pa.table({"key_hi": pa.array([1], pa.uint64()), CACHE_OUTPUT: pa.array(["x"])})
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b"not an arrow file"),
        lambda p: p.write_bytes(b""),
        lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
        lambda p: p.write_bytes(p.read_bytes()[:-12]),
        _other_schema,
        _bad_offsets,
    ],
    ids=["garbage", "empty", "half", "no-footer", "other-schema", "bad-offsets"],
)
def test_an_unreadable_cache_file_is_ignored_and_rewritten(
    tmp_path: Path, damage: Callable[[Path], object]
) -> None:
    cache = PreprocessCache(tmp_path, TextCleaner(SEED))
    cache.clean(["Love it"])
    cache.save()
    damage(cache.folder / CACHE_TEXTS_NAME)
    damage(cache.folder / CACHE_STEMS_NAME)

    again = PreprocessCache(tmp_path, TextCleaner(SEED))
    assert len(again) == 0
    assert again.clean(["Love it"]) == ["love"]
    again.save()
    assert len(PreprocessCache(tmp_path, TextCleaner(SEED))) == 1


def test_a_damaged_cache_does_not_fail_the_stage(tmp_path: Path) -> None:
    snapshot = _snapshot(tmp_path / "in", _frame(TEXTS))
    cold = preprocess(snapshot, tmp_path / "cold", SEED)
    preprocess(snapshot, tmp_path / "w1", SEED, cache_dir=tmp_path / "cache")
    folder = tmp_path / "cache" / cache_fingerprint(TextCleaner(SEED))
    for name in (CACHE_TEXTS_NAME, CACHE_STEMS_NAME):
        data = bytearray((folder / name).read_bytes())
        data[len(data) // 3 : len(data) // 3 + 64] = b"\xff" * 64
        (folder / name).write_bytes(bytes(data))

    out = preprocess(snapshot, tmp_path / "w2", SEED, cache_dir=tmp_path / "cache")

    assert len(pd.read_parquet(out)) == len(pd.read_parquet(cold))


def test_cli_preprocess_takes_a_cache_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = _snapshot(tmp_path / "in", _frame(TEXTS))
    cache_dir = tmp_path / "cache"
    args = [
        "preprocess",
        "--input",
        str(snapshot),
        "--cache-dir",
        str(cache_dir),
        *("--no-keep-negations", "--no-use-title", "--remove-stopwords"),  # SEED: the notebook's switches
        "--output",
        str(tmp_path / "out"),
    ]

    assert cli_main(args) == 0

    assert capsys.readouterr().out.strip().endswith(OUTPUT_NAME)
    folder = cache_dir / cache_fingerprint(TextCleaner(SEED))
    assert len(PreprocessCache(cache_dir, TextCleaner(SEED))) == len(set(cleaner_inputs(_frame(TEXTS), SEED)))
    assert (folder / CACHE_TEXTS_NAME).is_file()
