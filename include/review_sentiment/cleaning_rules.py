"""The review cleaner's rules, declared once: what a review's characters and words become, and
the switches over them (:class:`PreprocessSettings`).

``preprocess.TextCleaner.clean`` applies them one review at a time (the reference),
``fast_clean`` applies the same declarations to a whole batch, and the preprocess cache keys on
the same joined input (:func:`with_title`). Changing any of them changes the cleaned text: bump
``preprocess.CLEANER_VERSION`` so old cache entries stop matching.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

# The original notebook wrote [^a-zA-z], whose A-z range also keeps [ \ ] ^ _ and the backtick. This
# table keeps a-z, lowercases A-Z and turns every other byte into a space: [^a-zA-Z] -> " ", lower().
LOWER_LETTERS = bytes(b + 32 if 65 <= b <= 90 else b if 97 <= b <= 122 else 32 for b in range(256))
# Zero-width space/joiners, word joiner, BOM and soft hyphen are invisible to a reader, so they
# are deleted rather than turned into a space: "gr\u200beat" is the word "great", not "gr eat".
INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
NEGATIONS = frozenset({"no", "nor", "not"})
# What NLTK's n't stopwords become once the apostrophe is gone ("didn't" -> "didn" "t").
NEGATED_AUXILIARIES = frozenset(
    {
        "ain", "aren", "couldn", "didn", "doesn", "don", "hadn", "hasn", "haven", "isn",
        "mightn", "mustn", "needn", "shan", "shouldn", "wasn", "weren", "won", "wouldn",
    }
)  # fmt: skip


@dataclass(frozen=True)
class WordRewrite:
    """A whole-word rewrite applied to the text before the letters-only split.

    Attributes:
        pattern: What is rewritten; ``\\b`` on both sides, so a match stands between non-letters.
        replacement: What each match becomes.
        ascii_key: The lowercase ASCII text inside every match in ASCII text: the batch cleaner
            looks for it first and runs ``pattern`` only on the texts that hold it.
    """

    pattern: re.Pattern[str]
    replacement: str
    ascii_key: bytes

    def apply(self, text: str) -> str:
        """``text`` with every match replaced."""
        return self.pattern.sub(self.replacement, text)


# "can't" splits into "can" "t", both stopwords (the other n't forms leave a negated auxiliary
# such as "didn"): with negations kept, it becomes "not".
CANT = WordRewrite(re.compile(r"\bcan['\u2019]t\b", re.IGNORECASE), "not", b"can't")


def with_title(text: str, title: str) -> str:
    """What the cleaner reads for a review with its title: "title text", or the text alone when
    the title is empty."""
    return f"{title} {text}" if title else text


@dataclass(frozen=True)
class PreprocessSettings:
    """Switches over the classic steps. The defaults are what the DAG runs (one truth for the CLI,
    the DAG's params and the bench); :meth:`notebook` gives the original notebook's switches.

    Attributes:
        keep_negations: Keep no/nor/not and map the n't forms to "not".
        use_title: Prepend the review title to its text, and clean the title alone too
            (``clean_title``).
        unescape_html: Turn entities such as ``&#39;`` back into characters first.
        remove_stopwords: Drop NLTK's English stopwords (the classic step). Off keeps words
            such as "too", "but" and "very" that carry sentiment in reviews ("too small").
    """

    keep_negations: bool = True
    use_title: bool = True
    unescape_html: bool = True
    remove_stopwords: bool = False

    @classmethod
    def notebook(cls, **changes: bool) -> PreprocessSettings:
        """The original notebook's steps (stopwords dropped, no title, negations dropped; regex
        fixed), with ``changes``: the seed comparison and the bench's classic cleaner."""
        return cls(**{"keep_negations": False, "use_title": False, "remove_stopwords": True, **changes})


class Cleaner(Protocol):
    """What the batch cleaner and the cache use of ``preprocess.TextCleaner`` (the reference
    implementation): declared here, below both, so neither imports the module that uses it."""

    settings: PreprocessSettings

    @property
    def stems(self) -> dict[bytes, str]: ...

    def identity(self) -> dict[str, Any]: ...

    def clean(self, text: str, title: str = "") -> str: ...

    def _ascii(self, text: str) -> bytes: ...

    def _stem_of(self, word: bytes) -> str: ...
