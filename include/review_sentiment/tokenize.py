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
from review_sentiment.features import TITLE_BLOCK, ReviewNgrams, SequenceEncoder
from review_sentiment.layout import (
    MANIFEST_NAME,
    NGRAMS_NAME,
    SETTINGS_NAME,
    VOCABULARY_NAME,
    PreprocessFiles,
)
from review_sentiment.preprocess import CLEAN, TextCleaner, cleaner_from_payload

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

NGRAM_SIZE = 2  # word unigrams and bigrams: "not good", "too small"
OOV_TOKEN = "[UNK]"  # Keras' out-of-vocabulary token
SPLITS = ("train", "validation", "test")
ENCODE_BATCH = 8192
CLEAN_TITLE = "clean_title"  # the title alone, cleaned: the n-gram input's title block
# Columns kept beside each split: raw text for end-to-end evaluation, slices for reports.
SPLIT_COLUMNS = (
    schema.ID, schema.TITLE, schema.TEXT, "rating", "department_name", CLEAN, schema.LABEL,
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
        frame: Preprocessed reviews with ``clean_text`` and the label.
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
    legacy serving model's (``train.export_legacy_serving_model``); :func:`encode` gives the same ids."""
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
        title block's under ``"title"``) from which :func:`ngram_features` (training and
        serving alike) computes the rows, and :func:`make_ngram_vectorizer` the legacy layer.
    """
    payload = _fit_block(texts, max_tokens, ngrams)
    if titles is not None and any(titles):
        payload[TITLE_BLOCK] = _fit_block(titles, title_max_tokens, ngrams)
    return payload


def clean_titles(frame: pd.DataFrame, cleaner: TextCleaner) -> list[str] | None:
    """The titles alone, cleaned as the review is; None when the run leaves titles out."""
    if not cleaner.settings.use_title:
        return None
    return cleaner.clean_many(frame[schema.TITLE].fillna("").astype(str).tolist())


def ngram_features(
    ngrams: dict[str, Any] | ReviewNgrams, texts: list[str], titles: list[str] | None = None
) -> Any:
    """L2-normalised TF-IDF rows of ``texts`` (and of ``titles`` in the title block) as float32
    CSR, each block's (always empty) OOV column first: the training inputs, and what the
    registered model computes at serving time.

    Row normalisation matters: without it long reviews get large inputs and a linear layer
    trains poorly.

    Args:
        ngrams: :func:`fit_ngrams`' payload, or the transform already built from it.
        texts: Cleaned texts.
        titles: Cleaned titles, when the payload has a title block.
    """
    import scipy.sparse as sp

    transform = ngrams if isinstance(ngrams, ReviewNgrams) else ReviewNgrams(ngrams)
    # In batches, so the per-word temporaries stay small at 10x data; stacking rows is a copy.
    parts = [
        transform.transform(
            texts[i : i + ENCODE_BATCH], None if titles is None else titles[i : i + ENCODE_BATCH]
        )
        for i in range(0, len(texts), ENCODE_BATCH)
    ] or [transform.transform([], [])]
    return parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr", dtype="float32")


def make_ngram_vectorizer(payload: dict[str, Any]) -> Any:
    """The TF-IDF ``TextVectorization`` layer that ``fit_ngrams`` described: the legacy serving
    model's; :func:`ngram_features` gives the same rows after L2 normalisation.

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


def encode(texts: list[str], vocabulary: list[str], sequence_length: int) -> np.ndarray:
    """Integer sequences of ``texts``, padded or cut to ``sequence_length``."""
    import numpy as np

    out = np.zeros((len(texts), sequence_length), dtype=np.int32)
    encoder = SequenceEncoder(vocabulary, sequence_length)
    # In batches, so memory stays bounded at 10x data; each row is encoded on its own.
    for start in range(0, len(texts), ENCODE_BATCH):
        batch = texts[start : start + ENCODE_BATCH]
        out[start : start + len(batch)] = encoder.encode(batch)
    return out


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
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    import_keras()
    input_path = Path(input_path)
    output_dir = Path(output_dir)
    frame = pd.read_parquet(input_path, columns=list(SPLIT_COLUMNS))  # only what the splits keep
    splits = split_frame(frame, salt=salt)
    settings = read_json(PreprocessFiles.of(input_path).settings)
    # The title block is cleaned by the same cleaner the registered model rebuilds from settings.
    cleaner = cleaner_from_payload(settings)
    for part in splits.values():
        titles = clean_titles(part, cleaner)
        part[CLEAN_TITLE] = titles if titles is not None else ""
    train_texts = splits["train"][CLEAN].tolist()
    vocabulary = fit_vocabulary(train_texts, max_tokens)
    # One n-gram vocabulary for every grid point that reads a bag of n-grams; train only.
    # Titles left out: the column is all "", and fit_ngrams fits no title block.
    ngrams = fit_ngrams(train_texts, ngram_max_tokens, titles=splits["train"][CLEAN_TITLE].tolist())
    ngram_transform = ReviewNgrams(ngrams)
    write_json(output_dir / NGRAMS_NAME, ngrams)
    # Copied beside the vocabulary so this folder alone describes the model's input.
    write_json(output_dir / SETTINGS_NAME, settings)
    write_json(
        output_dir / VOCABULARY_NAME,
        {"tokens": vocabulary, "max_tokens": max_tokens, "sequence_length": sequence_length},
    )
    files: dict[str, dict[str, str]] = {}
    counts: dict[str, dict[str, int]] = {}
    for name, part in splits.items():
        x = encode(part[CLEAN].tolist(), vocabulary, sequence_length)
        y = part[schema.LABEL].to_numpy(dtype=np.int8)
        paths = {
            "frame": output_dir / f"{name}.parquet",
            "x": output_dir / f"{name}_x.npy",
            "y": output_dir / f"{name}_y.npy",
            "ngrams": output_dir / f"{name}_ngrams.npz",
        }
        with atomic_file(paths["frame"]) as tmp:
            part.to_parquet(tmp, index=False)
        for key, array in (("x", x), ("y", y)):
            with atomic_file(paths[key]) as tmp, open(tmp, "wb") as fh:
                np.save(fh, array, allow_pickle=False)
        with atomic_file(paths["ngrams"]) as tmp, open(tmp, "wb") as fh:
            rows = ngram_features(ngram_transform, part[CLEAN].tolist(), part[CLEAN_TITLE].tolist())
            sp.save_npz(fh, rows, compressed=False)
        files[name] = {k: v.name for k, v in paths.items()}
        counts[name] = {str(k): int(v) for k, v in part[schema.LABEL].value_counts().items()}
    manifest = {
        "vocabulary": VOCABULARY_NAME,
        "ngrams": NGRAMS_NAME,
        "preprocess_settings": SETTINGS_NAME,
        "splits": files,
        "label_counts": counts,
        "rows_in": len(frame),
        "duplicates_or_empty_dropped": len(frame) - sum(len(p) for p in splits.values()),
        "vocabulary_size": len(vocabulary),
        "sequence_length": sequence_length,
        "split": {"by": "keyed BLAKE2b of the review id, mod 100", "salt": salt},
    }
    log.info("tokenized %s", {k: len(v) for k, v in splits.items()})
    return write_json(output_dir / MANIFEST_NAME, manifest)


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
