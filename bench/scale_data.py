"""10x review data for the scale benchmark: real rows resampled with small perturbations.

Each extra row is a real row drawn with replacement whose text gets one small edit to a
content word: dropped, swapped with the next one, or (with probability ``typo_rate``) misspelt
by a letter dropped, doubled, replaced or swapped. An edit is redone until the cleaned text is
new (a handful of very short reviews run out of attempts; they are counted), and the typos add
new words at about the rate Heaps' law predicts for more real reviews.
Written in the original schema (gzip CSV, like the real file) under .local/bench/, never
committed: the data set is third-party.
"""

from __future__ import annotations

import functools
import random
import string
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

TEXT_COLUMN = "Review Text"
ID_COLUMN = "Unnamed: 0"  # the original file's unnamed row-number column, as pandas names it
# Chosen so the 10x vocabulary of cleaned stems lands near the Heaps'-law extrapolation of the
# real data (the benchmark reports both).
DEFAULT_TYPO_RATE = 0.16
_ATTEMPTS = 20


def typo(word: str, rng: random.Random) -> str:
    """One keyboard slip between two letters of ``word``: drop, double, replace, or swap.

    Only letters are touched: splitting a "\\r\\n" inside a word would make a line break that
    CSV readers see, and changing punctuation would not change the cleaned text.
    """
    spots = [i for i in range(len(word) - 1) if word[i].isalpha() and word[i + 1].isalpha()]
    if not spots:
        return word + rng.choice(string.ascii_lowercase)
    i = rng.choice(spots)
    kind = rng.randrange(4)
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1:
        return word[: i + 1] + word[i] + word[i + 1 :]
    if kind == 2:
        return word[:i] + rng.choice(string.ascii_lowercase) + word[i + 1 :]
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def perturb(
    text: str, rng: random.Random, is_content: Callable[[str], bool], typo_rate: float = DEFAULT_TYPO_RATE
) -> str:
    """``text`` with a content word dropped, two swapped, or (with ``typo_rate``) misspelt.

    Content words (three letters or more, not stopwords) are the ones that survive cleaning,
    so the edit changes the model's input and not only the raw text.
    """
    words = text.split(" ")
    content = [i for i, w in enumerate(words) if is_content(w)]
    if len(content) < 2 or rng.random() < typo_rate:
        i = rng.choice(content or range(len(words)))
        words[i] = typo(words[i], rng)
    elif len(content) >= 3 and rng.random() < 0.5:
        del words[rng.choice(content)]
    else:
        j = rng.randrange(len(content) - 1)
        a, b = content[j], content[j + 1]
        words[a], words[b] = words[b], words[a]
    return " ".join(words)


def content_word_test(stopwords: frozenset[str]) -> Callable[[str], bool]:
    """Memoised: does a raw word keep three letters or more and is it not a stopword?"""

    @functools.cache
    def is_content(word: str) -> bool:
        letters = "".join(c for c in word.lower() if "a" <= c <= "z")
        return len(letters) >= 3 and letters not in stopwords

    return is_content


def scale_reviews(
    raw: pd.DataFrame, factor: int, seed: int = 0, typo_rate: float = DEFAULT_TYPO_RATE
) -> tuple[pd.DataFrame, int]:
    """The real rows once, then ``factor - 1`` times as many resampled, perturbed rows.

    A perturbed text is kept only when its cleaned form (the seed's settings) is new too, so
    tokenize's de-duplication keeps about ``factor`` times the real rows.

    Args:
        raw: The real file in its original schema, every cell as text.
        factor: Size of the result over ``raw``.
        seed: Seed of the resampling and the edits.
        typo_rate: Probability of a typo in each perturbed text.

    Returns:
        The rows (new, unique row ids) and how many perturbed texts still clean to an earlier
        text after every attempt (a few very short reviews).
    """
    import pandas as pd

    from review_sentiment.cleaning_rules import PreprocessSettings
    from review_sentiment.preprocess import TextCleaner

    cleaner = TextCleaner(PreprocessSettings.notebook())
    is_content = content_word_test(cleaner.stopwords)
    rng = random.Random(seed)
    texts = raw[TEXT_COLUMN].tolist()
    seen = {cleaner.clean(t) for t in texts}
    picks = [rng.randrange(len(raw)) for _ in range((factor - 1) * len(raw))]
    new_texts, repeats = [], 0
    for row in picks:
        text = texts[row]
        if not text.strip():  # rows without text stay so; ingest drops and counts them
            new_texts.append(text)
            continue
        candidate = text
        for _ in range(_ATTEMPTS):  # a short text may need more than one edit to be new
            candidate = perturb(candidate, rng, is_content, typo_rate)
            cleaned = cleaner.clean(candidate)
            if cleaned not in seen:
                break
        else:
            repeats += 1
        seen.add(cleaned)
        new_texts.append(candidate)
    extra = raw.iloc[picks].reset_index(drop=True)
    extra[TEXT_COLUMN] = new_texts
    scaled = pd.concat([raw, extra], ignore_index=True)
    scaled[ID_COLUMN] = [str(i) for i in range(len(scaled))]
    return scaled, repeats


def write_scaled_csv(source: Path, output: Path, factor: int, seed: int = 0) -> tuple[int, int]:
    """Read the real file, write the scaled one as gzip CSV in the same schema.

    Returns:
        Rows written and repeated texts (see :func:`scale_reviews`).
    """
    import pandas as pd

    from review_sentiment.artifacts import atomic_file

    raw = pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8-sig", index_col=False)
    scaled, repeats = scale_reviews(raw, factor, seed)
    with atomic_file(output) as tmp:
        scaled.rename(columns={ID_COLUMN: ""}).to_csv(
            tmp, index=False, compression={"method": "gzip", "compresslevel": 6}
        )
    return len(scaled), repeats


def write_repeated_parquet(source: Path, output: Path, rows: int) -> int:
    """The real reviews repeated to ``rows`` rows with distinct ids (0..rows-1), as Parquet in
    the original column names, only the columns scoring reads; row groups of 50,000.

    Returns:
        Rows written.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from review_sentiment.artifacts import atomic_file

    raw = pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8-sig", index_col=False)
    raw = raw.loc[:, [ID_COLUMN, "Title", TEXT_COLUMN]]
    repeats = -(-rows // len(raw))
    frame = pd.concat([raw] * repeats, ignore_index=True).iloc[:rows].copy()
    frame[ID_COLUMN] = [str(i) for i in range(rows)]
    with atomic_file(output) as tmp:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp, row_group_size=50_000)
    return rows
