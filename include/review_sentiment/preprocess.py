"""Preprocess: the seed's cleaning (letters only, lowercase, NLTK stopwords, Porter stems)."""

from __future__ import annotations

import html
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
    import pandas as pd

log = logging.getLogger(__name__)

OUTPUT_NAME = "reviews_clean.parquet"
SETTINGS_NAME = "preprocess.json"
CLEAN = "clean_text"

# The seed wrote [^a-zA-z], whose A-z range also keeps [ \ ] ^ _ and the backtick. This table
# keeps a-z, lowercases A-Z and turns every other byte into a space: [^a-zA-Z] -> " ", lower().
# "can't" splits into "can" "t", both stopwords (the other n't forms leave a negated
# auxiliary such as "didn"): with negations kept, it becomes "not".
_CANT = re.compile(r"\bcan['\u2019]t\b", re.IGNORECASE)
_LOWER_LETTERS = bytes(b + 32 if 65 <= b <= 90 else b if 97 <= b <= 122 else 32 for b in range(256))
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


def clean_frame(frame: pd.DataFrame, settings: PreprocessSettings) -> pd.Series:
    """Clean the texts of a canonical-schema frame; returns the ``clean_text`` column."""
    import pandas as pd

    cleaner = TextCleaner(settings)
    titles = frame[schema.TITLE].fillna("").astype(str) if settings.use_title else None
    cleaned = cleaner.clean_many(frame[schema.TEXT].fillna("").astype(str), titles)
    return pd.Series(cleaned, index=frame.index, name=CLEAN, dtype=object)


def preprocess(
    input_path: str | Path, output_dir: str | Path, settings: PreprocessSettings | None = None
) -> Path:
    """Add a ``clean_text`` column to the snapshot; write Parquet plus the settings used.

    The settings file also holds the stopword list, so the registered model carries exactly
    the preprocessing it was trained with.

    Returns:
        Path of the cleaned Parquet file.
    """
    import pandas as pd

    settings = settings or PreprocessSettings()
    frame = pd.read_parquet(input_path)
    frame[CLEAN] = clean_frame(frame, settings)
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
