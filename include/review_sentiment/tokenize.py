"""Tokenize: de-duplicate, split by a hash of each review's id, fit the vocabularies on train only.

A review's split is a function of its id alone, so adding, removing or sampling other reviews never
moves it: week W+1's test split holds none of week W's training reviews, and the gate can compare
a new model with the champion on reviews neither was trained on.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from review_sentiment import schema
from review_sentiment.artifacts import atomic_file, read_json, write_json
from review_sentiment.config import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_NGRAM_MAX_TOKENS,
    DEFAULT_SEQUENCE_LENGTH,
    DEFAULT_TITLE_NGRAM_MAX_TOKENS,
    SPLIT_SALT,
)
from review_sentiment.console import import_keras
from review_sentiment.errors import DataContractError
from review_sentiment.features import TITLE_BLOCK, ReviewNgrams, SequenceEncoder, model_inputs
from review_sentiment.layout import (
    MANIFEST_NAME,
    NGRAMS_NAME,
    SETTINGS_NAME,
    VOCABULARY_NAME,
    PreprocessFiles,
)
from review_sentiment.model import NGRAMS_INPUT, TOKENS_INPUT
from review_sentiment.preprocess import CLEAN, CLEAN_TITLE

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

NGRAM_SIZE = 2  # word unigrams and bigrams: "not good", "too small"
OOV_TOKEN = "[UNK]"  # Keras' out-of-vocabulary token
SPLITS = ("train", "validation", "test")
# Columns kept beside each split: raw text for end-to-end evaluation, slices for reports, and the
# model's two cleaned inputs (preprocess wrote them; the title's is "" when titles are left out).
SPLIT_COLUMNS = (
    schema.ID, schema.TITLE, schema.TEXT, "rating", "department_name", CLEAN, schema.LABEL, CLEAN_TITLE,
)  # fmt: skip


def split_buckets(review_ids: pd.Series, salt: str = SPLIT_SALT) -> np.ndarray:
    """Each review id's bucket in 0..99: the first 8 bytes of a keyed BLAKE2b of the id, mod 100."""
    import numpy as np

    key = salt.encode()
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8, key=key).digest(), "big") % 100
            for i in review_ids
        ),
        dtype=np.int16,
        count=len(review_ids),
    )


def split_frame(
    frame: pd.DataFrame, fractions: tuple[float, float] = (0.1, 0.1), salt: str = SPLIT_SALT
) -> dict[str, pd.DataFrame]:
    """Drop duplicate and empty texts, then split train/validation/test by a hash of the review id.

    Args:
        frame: Preprocessed reviews with ``clean_text``, ``clean_title`` and the label.
        fractions: Shares of validation and test (whole percents).
        salt: Key of the hash; changing it reshuffles every review.

    Raises:
        DataContractError: a split would lack one of the two classes.
    """
    # Duplicates are decided on the model's input, so two raw texts that clean to the same
    # tokens cannot land in different splits; the lowest id stands for them all.
    frame = frame.sort_values(schema.ID, kind="stable")
    usable = frame[frame[CLEAN].str.len() > 0].drop_duplicates(subset=CLEAN, keep="first")
    val_pct, test_pct = (round(f * 100) for f in fractions)
    bucket = split_buckets(usable[schema.ID], salt)
    parts = {
        "test": usable[bucket < test_pct],
        "validation": usable[(bucket >= test_pct) & (bucket < test_pct + val_pct)],
        "train": usable[bucket >= test_pct + val_pct],
    }
    lacking = [
        f"the {name} split has no reviews labelled {label} ({len(part)} reviews in it)"
        for name, part in parts.items()
        for label in (0, 1)
        if not (part[schema.LABEL] == label).any()
    ]
    if lacking:
        raise DataContractError(lacking, "the split")
    return {name: parts[name].loc[:, list(SPLIT_COLUMNS)].reset_index(drop=True) for name in SPLITS}


def make_vectorizer(vocabulary: list[str], sequence_length: int) -> Any:
    """A Keras ``TextVectorization`` layer fixed to ``vocabulary`` (pad and OOV first): the
    legacy serving model's (``train.export_legacy_serving_model``); ``features.model_inputs`` gives
    the same ids."""
    from keras.layers import TextVectorization

    return TextVectorization(
        max_tokens=len(vocabulary),
        standardize=None,  # the text is already cleaned
        split="whitespace",
        output_sequence_length=sequence_length,
        vocabulary=vocabulary,
    )


def fit_vocabulary(texts: list[str], max_tokens: int) -> list[str]:
    """Fit ``TextVectorization`` on ``texts``; return its vocabulary (pad, OOV, then tokens)."""
    import numpy as np
    from keras.layers import TextVectorization

    layer = TextVectorization(max_tokens=max_tokens, standardize=None, split="whitespace")
    layer.adapt(np.asarray(texts, dtype=object))
    return [str(token) for token in layer.get_vocabulary()]


def _fit_block(texts: list[str], max_tokens: int, ngrams: int) -> dict[str, Any]:
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    # Whitespace tokens, as Keras' TextVectorization splits; L2 rows, as UnitNormalization gives.
    vectorizer = TfidfVectorizer(
        token_pattern=r"\S+",
        lowercase=False,
        ngram_range=(1, ngrams),
        max_features=max_tokens,
        dtype=np.float32,
    ).fit(texts)
    vocabulary = [""] * len(vectorizer.vocabulary_)
    for token, index in vectorizer.vocabulary_.items():
        vocabulary[index] = str(token)
    return {
        "tokens": [OOV_TOKEN, *vocabulary],
        "idf_weights": [0.0, *(round(float(w), 6) for w in vectorizer.idf_)],
        "ngrams": ngrams,
    }


def fit_ngrams(
    texts: list[str],
    max_tokens: int,
    ngrams: int = NGRAM_SIZE,
    *,
    titles: list[str] | None = None,
    title_max_tokens: int = DEFAULT_TITLE_NGRAM_MAX_TOKENS,
) -> dict[str, Any]:
    """Fit TF-IDF over word 1..``ngrams``-grams of ``texts`` and, given ``titles``, a second
    block over the titles alone (scikit-learn, fast and sparse).

    Returns:
        The JSON form (vocabulary and IDF weights, out-of-vocabulary first with weight 0; the
        title block's under ``"title"``) from which ``features.ReviewNgrams`` (training and
        serving alike) computes the rows, and :func:`make_ngram_vectorizer` the legacy layer.
    """
    payload = _fit_block(texts, max_tokens, ngrams)
    if titles is not None and any(titles):
        payload[TITLE_BLOCK] = _fit_block(titles, title_max_tokens, ngrams)
    return payload


def make_ngram_vectorizer(payload: dict[str, Any]) -> Any:
    """The TF-IDF ``TextVectorization`` layer that ``fit_ngrams`` described: the legacy serving
    model's; ``features.model_inputs`` gives the same rows after L2 normalisation.

    Raises:
        ValueError: the payload has a title block, which the legacy form (one text input) lacks.
    """
    import numpy as np
    from keras.layers import TextVectorization

    if TITLE_BLOCK in payload:
        raise ValueError("the legacy Keras serving model has no title block; fit the n-grams without titles")

    return TextVectorization(
        standardize=None,
        split="whitespace",
        ngrams=int(payload["ngrams"]),
        output_mode="tf_idf",
        vocabulary=list(payload["tokens"]),
        idf_weights=np.asarray(payload["idf_weights"], dtype=np.float32),
        name="ngram_tfidf",
    )


def tokenize(
    input_path: str | Path,
    output_dir: str | Path,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    sequence_length: int = DEFAULT_SEQUENCE_LENGTH,
    ngram_max_tokens: int = DEFAULT_NGRAM_MAX_TOKENS,
    salt: str = SPLIT_SALT,
) -> Path:
    """Split the cleaned reviews and write vocabulary, sequences and labels of each split.

    Every file is written atomically and the manifest last, so a manifest on disk means
    a complete output.

    Returns:
        Path of ``manifest.json``, which names every file written (relative to itself).
    """
    import_keras()
    input_path = Path(input_path)
    output_dir = Path(output_dir)
    frame = _read_cleaned(input_path)
    splits = split_frame(frame, salt=salt)
    train = splits["train"]
    vocabulary = fit_vocabulary(train[CLEAN].tolist(), max_tokens)
    # One n-gram vocabulary for every grid point that reads a bag of n-grams; train only.
    # Titles left out: the column is all "", and fit_ngrams fits no title block.
    ngrams = fit_ngrams(train[CLEAN].tolist(), ngram_max_tokens, titles=train[CLEAN_TITLE].tolist())
    write_json(output_dir / NGRAMS_NAME, ngrams)
    # Copied beside the vocabulary so this folder alone describes the model's input.
    write_json(output_dir / SETTINGS_NAME, read_json(PreprocessFiles.of(input_path).settings))
    write_json(
        output_dir / VOCABULARY_NAME,
        {"tokens": vocabulary, "max_tokens": max_tokens, "sequence_length": sequence_length},
    )
    sequences, ngram_transform = SequenceEncoder(vocabulary, sequence_length), ReviewNgrams(ngrams)
    files = {
        name: _write_split(output_dir, name, part, sequences, ngram_transform)
        for name, part in splits.items()
    }
    manifest = {
        "vocabulary": VOCABULARY_NAME,
        "ngrams": NGRAMS_NAME,
        "preprocess_settings": SETTINGS_NAME,
        "splits": files,
        "label_counts": {
            name: {str(k): int(v) for k, v in part[schema.LABEL].value_counts().items()}
            for name, part in splits.items()
        },
        "rows_in": len(frame),
        "duplicates_or_empty_dropped": len(frame) - sum(len(p) for p in splits.values()),
        "vocabulary_size": len(vocabulary),
        "sequence_length": sequence_length,
        "split": {"by": "keyed BLAKE2b of the review id, mod 100", "salt": salt},
    }
    log.info("tokenized %s", {k: len(v) for k, v in splits.items()})
    return write_json(output_dir / MANIFEST_NAME, manifest)


def _read_cleaned(path: Path) -> pd.DataFrame:
    """Preprocess's output, only the columns the splits keep.

    Raises:
        DataContractError: the file lacks a column (``clean_title`` is missing from files that
            preprocess wrote before it cleaned titles on their own: rerun preprocess).
    """
    import pandas as pd
    import pyarrow.parquet as pq

    missing = [c for c in SPLIT_COLUMNS if c not in pq.read_schema(path).names]
    if missing:
        raise DataContractError([f"no column {c!r}" for c in missing], str(path))
    return pd.read_parquet(path, columns=list(SPLIT_COLUMNS))


def _write_split(
    output_dir: Path, name: str, part: pd.DataFrame, sequences: SequenceEncoder, ngrams: ReviewNgrams
) -> dict[str, str]:
    """Write one split's rows, model inputs and labels; return their file names by kind."""
    import numpy as np
    import scipy.sparse as sp

    inputs = model_inputs(
        part[CLEAN].tolist(), part[CLEAN_TITLE].tolist(), sequences=sequences, ngrams=ngrams
    )
    paths = {
        "frame": output_dir / f"{name}.parquet",
        "x": output_dir / f"{name}_x.npy",
        "y": output_dir / f"{name}_y.npy",
        "ngrams": output_dir / f"{name}_ngrams.npz",
    }
    with atomic_file(paths["frame"]) as tmp:
        part.to_parquet(tmp, index=False)
    for key, array in (("x", inputs[TOKENS_INPUT]), ("y", part[schema.LABEL].to_numpy(dtype=np.int8))):
        with atomic_file(paths[key]) as tmp, open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
    with atomic_file(paths["ngrams"]) as tmp, open(tmp, "wb") as fh:
        sp.save_npz(fh, inputs[NGRAMS_INPUT], compressed=False)
    return {k: v.name for k, v in paths.items()}


class Tokenized:
    """Read access to a tokenize output folder through its manifest."""

    def __init__(self, manifest_path: str | Path) -> None:
        self.manifest_path = Path(manifest_path)
        self.root = self.manifest_path.parent
        self.manifest: dict[str, Any] = read_json(self.manifest_path)

    def path(self, name: str) -> Path:
        """Absolute path of a file named in the manifest."""
        return self.root / name

    @property
    def vocabulary_path(self) -> Path:
        return self.path(self.manifest["vocabulary"])

    @property
    def ngrams_path(self) -> Path:
        return self.path(self.manifest["ngrams"])

    @property
    def settings_path(self) -> Path:
        return self.path(self.manifest["preprocess_settings"])

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Sequences and labels of ``split``."""
        import numpy as np

        files = self.manifest["splits"][split]
        x = np.load(self.path(files["x"]), allow_pickle=False)
        y = np.load(self.path(files["y"]), allow_pickle=False)
        return x, y

    def ngrams(self, split: str) -> Any:
        """The L2-normalised TF-IDF n-gram matrix of ``split`` (CSR, float32)."""
        import scipy.sparse as sp

        return sp.load_npz(self.path(self.manifest["splits"][split]["ngrams"]))  # never unpickles

    def frame(self, split: str) -> pd.DataFrame:
        """The rows of ``split`` with raw and cleaned text."""
        import pandas as pd

        return pd.read_parquet(self.path(self.manifest["splits"][split]["frame"]))
