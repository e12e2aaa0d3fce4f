"""Preprocess: the seed's cleaning (letters only, lowercase, NLTK stopwords, Porter stems)."""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from review_sentiment import schema
from review_sentiment.artifacts import atomic_file, write_json
from review_sentiment.config import NLTK_DATA_DIR

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

OUTPUT_NAME = "reviews_clean.parquet"
SETTINGS_NAME = "preprocess.json"
CLEAN = "clean_text"
# Bump whenever TextCleaner can give a different output for the same input and settings: it is
# part of the cache fingerprint, so old cache entries stop matching.
CLEANER_VERSION = 2  # 2: invisible format characters are deleted, not made separators
CACHE_TEXTS_NAME = "texts.parquet"
CACHE_STEMS_NAME = "stems.parquet"
CACHE_SETTINGS_NAME = "settings.json"
# Random keys and mostly unique texts gain little from compression or dictionaries, and the
# cache is read on every run: plain pages read about twice as fast.
_CACHE_PARQUET = {"compression": "none", "use_dictionary": False}

# The seed wrote [^a-zA-z], whose A-z range also keeps [ \ ] ^ _ and the backtick. This table
# keeps a-z, lowercases A-Z and turns every other byte into a space: [^a-zA-Z] -> " ", lower().
# "can't" splits into "can" "t", both stopwords (the other n't forms leave a negated
# auxiliary such as "didn"): with negations kept, it becomes "not".
_CANT = re.compile(r"\bcan['\u2019]t\b", re.IGNORECASE)
_LOWER_LETTERS = bytes(b + 32 if 65 <= b <= 90 else b if 97 <= b <= 122 else 32 for b in range(256))
# Zero-width space/joiners, word joiner, BOM and soft hyphen are invisible to a reader, so they
# are deleted rather than turned into a space: "gr\u200beat" is the word "great", not "gr eat".
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
NEGATIONS = frozenset({"no", "nor", "not"})
# What NLTK's n't stopwords become once the apostrophe is gone ("didn't" -> "didn" "t").
NEGATED_AUXILIARIES = frozenset(
    {
        "ain", "aren", "couldn", "didn", "doesn", "don", "hadn", "hasn", "haven", "isn",
        "mightn", "mustn", "needn", "shan", "shouldn", "wasn", "weren", "won", "wouldn",
    }
)  # fmt: skip


@dataclass(frozen=True)
class PreprocessSettings:
    """Switches over the seed's steps; the defaults reproduce the seed (with the regex fixed).

    Attributes:
        keep_negations: Keep no/nor/not and map the n't forms to "not".
        use_title: Prepend the review title to its text.
        unescape_html: Turn entities such as ``&#39;`` back into characters first.
    """

    keep_negations: bool = False
    use_title: bool = False
    unescape_html: bool = True


def english_stopwords() -> frozenset[str]:
    """NLTK's English stopword list, read from the copy shipped in this package."""
    import nltk
    from nltk.corpus import stopwords

    # Our copy first, so no worker ever needs nltk.download (most have no internet).
    if str(NLTK_DATA_DIR) not in nltk.data.path:
        nltk.data.path.insert(0, str(NLTK_DATA_DIR))
    return frozenset(stopwords.words("english"))


class TextCleaner:
    """Cleans review texts; builds the stopword set and stemmer once and memoises stems.

    Equivalent to ``re.sub("[^a-zA-Z]", " ", text).lower().split()`` followed by stopword
    removal and stemming, but done with one ``bytes.translate`` per text (non-ASCII characters
    become spaces, as the regex makes them) and one dict look-up per word.
    """

    def __init__(self, settings: PreprocessSettings, stopwords: Iterable[str] | None = None) -> None:
        from nltk.stem import PorterStemmer

        self.settings = settings
        words = frozenset(english_stopwords() if stopwords is None else stopwords)
        if settings.keep_negations:
            words = words - NEGATIONS - NEGATED_AUXILIARIES
        self.stopwords = words
        self._stem = PorterStemmer().stem
        # word (lowercase ASCII bytes) -> its stem, or "" when the word is dropped.
        self._stems: dict[bytes, str] = {}

    @property
    def stems(self) -> dict[bytes, str]:
        """The memo: each word seen (lowercase ASCII) -> its stem, or "" when it is dropped."""
        return self._stems

    def _stem_of(self, word: bytes) -> str:
        text = word.decode("ascii")
        if text in self.stopwords:
            stem = ""
        elif self.settings.keep_negations and text in NEGATED_AUXILIARIES:
            stem = self._stem("not")
        else:
            stem = self._stem(text)
        self._stems[word] = stem
        return stem

    def words(self, text: str) -> list[bytes]:
        """The lowercase letter-only words of ``text``, before stopwords and stemming."""
        if self.settings.unescape_html and "&" in text:
            text = html.unescape(text)
        if self.settings.keep_negations:
            text = _CANT.sub("not", text)
        if not text.isascii():
            text = text.translate(_INVISIBLE)
        return text.encode("ascii", "replace").translate(_LOWER_LETTERS).split()

    def clean(self, text: str, title: str = "") -> str:
        """Clean one review (and its title when ``use_title`` is on)."""
        if self.settings.use_title and title:
            text = f"{title} {text}"
        stems = self._stems
        out = []
        for word in self.words(text):
            stem = stems.get(word)
            if stem is None:
                stem = self._stem_of(word)
            if stem:
                out.append(stem)
        return " ".join(out)

    def clean_many(self, texts: Iterable[str], titles: Iterable[str] | None = None) -> list[str]:
        """Clean many reviews; ``titles`` pairs with ``texts`` when given."""
        if titles is None:
            return [self.clean(t) for t in texts]
        return [self.clean(t, ti) for t, ti in zip(texts, titles, strict=True)]


def cleaner_inputs(frame: pd.DataFrame, settings: PreprocessSettings) -> list[str]:
    """The exact string the cleaner sees for each row: the text, or "title text" with ``use_title``.

    The cleaned text depends on this string and the settings alone, so it is also the cache key.
    """
    texts = frame[schema.TEXT].fillna("").astype(str).tolist()
    if not settings.use_title:
        return texts
    titles = frame[schema.TITLE].fillna("").astype(str).tolist()
    return [f"{title} {text}" if title else text for text, title in zip(texts, titles, strict=True)]


def clean_frame(frame: pd.DataFrame, settings: PreprocessSettings) -> pd.Series:
    """Clean the texts of a canonical-schema frame; returns the ``clean_text`` column."""
    import pandas as pd

    cleaner = TextCleaner(settings)
    cleaned = [cleaner.clean(text) for text in cleaner_inputs(frame, settings)]
    return pd.Series(cleaned, index=frame.index, name=CLEAN, dtype=object)


def text_keys(texts: list[str]) -> np.ndarray:
    """The first 128 bits of each text's SHA-256 (of its UTF-8), as an ``(n, 2)`` uint64 array."""
    import numpy as np

    sha256 = hashlib.sha256  # the fastest hashlib digest here (hardware SHA), ~0.5 µs a review
    digests = b"".join([sha256(t.encode("utf-8", "surrogatepass")).digest()[:16] for t in texts])
    return np.frombuffer(digests, dtype=np.uint64).reshape(-1, 2)


def cache_fingerprint(cleaner: TextCleaner) -> str:
    """Short hash of everything besides the input text that decides the output.

    That is the settings, the effective stopword list, this module's ``CLEANER_VERSION`` and
    NLTK's version (its Porter stemmer has changed between releases).
    """
    return hashlib.sha256(json.dumps(_cache_identity(cleaner), sort_keys=True).encode()).hexdigest()[:24]


def _cache_identity(cleaner: TextCleaner) -> dict[str, object]:
    import nltk

    return {
        **asdict(cleaner.settings),
        "stopwords": sorted(cleaner.stopwords),
        "cleaner_version": CLEANER_VERSION,
        "nltk_version": nltk.__version__,
    }


class PreprocessCache:
    """Cleaned texts kept between runs, so a weekly run only cleans the reviews it has not seen.

    One folder per settings fingerprint (:func:`cache_fingerprint`) holds a Parquet table from
    the 128-bit hash of each cleaner input (:func:`cleaner_inputs`) to its cleaned text, and the
    cleaner's stem memo, so the new reviews are cleaned at the warm rate too. A new setting,
    stopword list, cleaner version or NLTK release gives a new folder, so stale entries are
    never read. Files are replaced atomically; if two runs ever race, the last rename wins and
    the loser's new entries are simply cleaned again next time. Nothing is evicted: delete the
    folder to reset it. An unreadable file counts as empty: the cache never fails a run.
    """

    def __init__(self, cache_dir: str | Path, cleaner: TextCleaner) -> None:
        import numpy as np

        self.cleaner = cleaner
        self.fingerprint = cache_fingerprint(cleaner)
        self.folder = Path(cache_dir) / self.fingerprint
        self.hits = 0
        self.misses = 0
        self._keys = np.zeros((0, 2), dtype=np.uint64)
        self._texts = np.zeros(0, dtype=object)
        self._new_keys: list[np.ndarray] = []
        self._new_texts: list[list[str]] = []
        texts = _read_table(self.folder / CACHE_TEXTS_NAME, ("key_hi", "key_lo", CLEAN))
        if texts is not None:
            self._keys = np.column_stack([texts["key_hi"].to_numpy(), texts["key_lo"].to_numpy()])
            self._texts = texts[CLEAN].to_numpy(zero_copy_only=False)
        stems = _read_table(self.folder / CACHE_STEMS_NAME, ("word", "stem"))
        if stems is not None:
            words = stems["word"].to_numpy(zero_copy_only=False)
            cleaner.stems.update(zip(words, stems["stem"].to_numpy(zero_copy_only=False), strict=True))
        self._stems_saved = len(cleaner.stems)

    def __len__(self) -> int:
        """Number of cached texts, this run's new ones included."""
        return len(self._keys) + sum(len(k) for k in self._new_keys)

    def clean(self, inputs: list[str]) -> list[str]:
        """Cleaned ``inputs``: cached ones looked up, the rest cleaned and remembered."""
        import numpy as np
        import pandas as pd

        keys = text_keys(inputs)
        # The first 64 bits find the candidate (they are unique in the table); the other 64
        # must match too, so a hit means all 128 bits agree.
        found = pd.Index(self._keys[:, 0]).get_indexer(keys[:, 0])
        hit = found >= 0
        hit[hit] = self._keys[found[hit], 1] == keys[hit, 1]
        out = np.empty(len(inputs), dtype=object)
        out[hit] = self._texts[found[hit]]
        missing = np.flatnonzero(~hit)
        fresh: dict[str, str] = {}  # a review repeated within the run is cleaned once
        first: list[int] = []
        for i in missing:
            text = inputs[i]
            cleaned = fresh.get(text)
            if cleaned is None:
                cleaned = fresh[text] = self.cleaner.clean(text)
                first.append(i)
            out[i] = cleaned
        if fresh:
            self._new_keys.append(keys[first])
            self._new_texts.append(list(fresh.values()))
        self.hits += int(hit.sum())
        self.misses += len(missing)
        return out.tolist()

    def save(self) -> None:
        """Write this run's new texts and stems (atomically); a no-op when nothing is new."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._new_keys or len(self.cleaner.stems) != self._stems_saved:
            write_json(self.folder / CACHE_SETTINGS_NAME, _cache_identity(self.cleaner))
        if self._new_keys:
            keys = np.concatenate([self._keys, *self._new_keys])
            texts = np.concatenate([self._texts, *(np.asarray(t, dtype=object) for t in self._new_texts)])
            _, first = np.unique(keys[:, 0], return_index=True)  # keep the table unique on key_hi
            first.sort()
            keys, texts = keys[first], texts[first]
            table = pa.table(
                {"key_hi": keys[:, 0], "key_lo": keys[:, 1], CLEAN: pa.array(texts, pa.string())}
            )
            with atomic_file(self.folder / CACHE_TEXTS_NAME) as tmp:
                pq.write_table(table, tmp, **_CACHE_PARQUET)
            self._keys, self._texts = keys, texts
            self._new_keys, self._new_texts = [], []
        if len(self.cleaner.stems) != self._stems_saved:
            stems = self.cleaner.stems
            table = pa.table(
                {
                    "word": pa.array(list(stems), pa.binary()),
                    "stem": pa.array(list(stems.values()), pa.string()),
                }
            )
            with atomic_file(self.folder / CACHE_STEMS_NAME) as tmp:
                pq.write_table(table, tmp, **_CACHE_PARQUET)
            self._stems_saved = len(stems)


def _read_table(path: Path, columns: tuple[str, ...]) -> pa.Table | None:
    """A cache file's columns, or None when it is missing or unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        return None
    try:
        return pq.read_table(path, columns=list(columns))
    except (OSError, pa.ArrowException, KeyError) as exc:
        log.warning("ignoring unreadable preprocess cache file %s: %s", path, exc)
        return None


def preprocess(
    input_path: str | Path,
    output_dir: str | Path,
    settings: PreprocessSettings | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Add a ``clean_text`` column to the snapshot; write Parquet plus the settings used.

    The settings file also holds the stopword list, so the registered model carries exactly
    the preprocessing it was trained with.

    Args:
        input_path: Ingest's Parquet snapshot.
        output_dir: Folder for the cleaned Parquet file and the settings.
        settings: Preprocessing switches (default: the seed's).
        cache_dir: Folder of a :class:`PreprocessCache` kept between runs; only reviews not in
            it are cleaned, and the output is the same as without it. None: no cache.

    Returns:
        Path of the cleaned Parquet file.
    """
    import pandas as pd

    settings = settings or PreprocessSettings()
    frame = pd.read_parquet(input_path)
    if cache_dir is None:
        frame[CLEAN] = clean_frame(frame, settings)
    else:
        cache = PreprocessCache(cache_dir, TextCleaner(settings))
        cleaned = cache.clean(cleaner_inputs(frame, settings))
        frame[CLEAN] = pd.Series(cleaned, index=frame.index, name=CLEAN, dtype=object)
        cache.save()
        log.info("preprocess cache %s: %d hits, %d cleaned", cache.folder, cache.hits, cache.misses)
    output_dir = Path(output_dir)
    out = output_dir / OUTPUT_NAME
    with atomic_file(out) as tmp:
        frame.to_parquet(tmp, index=False)
    write_json(output_dir / SETTINGS_NAME, settings_payload(settings))
    log.info("preprocessed %d reviews with %s", len(frame), settings)
    return out


def settings_payload(settings: PreprocessSettings) -> dict[str, object]:
    """The JSON form of ``settings``, stopwords included."""
    return {**asdict(settings), "stopwords": sorted(english_stopwords())}


def cleaner_from_payload(payload: dict[str, object]) -> TextCleaner:
    """Rebuild the exact cleaner that ``settings_payload`` describes."""
    fields = {k: bool(payload[k]) for k in ("keep_negations", "use_title", "unescape_html")}
    stopwords = payload["stopwords"]
    assert isinstance(stopwords, list)
    return TextCleaner(PreprocessSettings(**fields), stopwords=stopwords)
