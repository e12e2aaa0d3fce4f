"""Briefly trained cores for the serving benchmark and the serving tests: one home for "train a
grid point's core for a few epochs on tokenize's inputs and write what ``train`` would log".

A core can leave the n-gram title block out (``titles=False``): the legacy registered form, a
Keras model with ``TextVectorization`` inside, has one text input and no title block, so the
comparisons with it use such a core.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from review_sentiment.artifacts import read_json, write_json
from review_sentiment.features import TITLE_BLOCK, NgramTfidf
from review_sentiment.model import NGRAMS_INPUT, GridPoint, build_model
from review_sentiment.serving import features_payload, inference_core
from review_sentiment.tokenize import Tokenized
from review_sentiment.train import _inputs, _targets, export_legacy_serving_model


def core_inputs(data: Tokenized, split: str, point: GridPoint, titles: bool = True) -> dict[str, Any]:
    """tokenize's inputs of ``split``; without ``titles``, the n-gram matrix's review block only
    (the title block's columns come after it)."""
    inputs = _inputs(data, split, point)
    if NGRAMS_INPUT in inputs and not titles:
        inputs[NGRAMS_INPUT] = inputs[NGRAMS_INPUT][:, : NgramTfidf(read_json(data.ngrams_path)).size]
    return inputs


def brief_core(
    data: Tokenized, point: GridPoint, epochs: int, titles: bool = True
) -> tuple[Any, dict | None]:
    """A core trained ``epochs`` epochs on train, and the n-gram payload it reads (None for a
    sequence-only point)."""
    vocabulary = read_json(data.vocabulary_path)["tokens"]
    ngrams = read_json(data.ngrams_path) if point.uses_ngrams else None
    if ngrams is not None and not titles:
        ngrams = {k: v for k, v in ngrams.items() if k != TITLE_BLOCK}
    inputs = core_inputs(data, "train", point, titles)
    width = inputs[NGRAMS_INPUT].shape[1] if ngrams is not None else None
    core = build_model(point, len(vocabulary), int(data.manifest["sequence_length"]), width)
    targets = _targets(data, "train", list(core.output_names))
    core.fit(inputs, targets, epochs=epochs, batch_size=point.batch_size, verbose=0)
    return core, ngrams


def write_core(
    folder: Path, data: Tokenized, point: GridPoint, core: Any, ngrams: dict | None
) -> dict[str, Path]:
    """``core.keras`` and ``features.json`` as ``train`` logs them, by artifact name."""
    from review_sentiment import names

    vocabulary = read_json(data.vocabulary_path)["tokens"]
    length = int(data.manifest["sequence_length"])
    folder.mkdir(parents=True, exist_ok=True)
    inference_core(core).save(folder / "core.keras")
    payload = features_payload(
        point.architecture,
        vocabulary[: point.max_tokens] if point.uses_tokens else None,
        length if point.uses_tokens else None,
        ngrams,
    )
    return {
        names.ARTIFACT_CORE: folder / "core.keras",
        names.ARTIFACT_FEATURES: write_json(folder / "features.json", payload),
    }


def write_legacy(
    folder: Path, data: Tokenized, point: GridPoint, core: Any, ngrams: dict | None
) -> dict[str, Path]:
    """The legacy ``keras_model`` artifact of a core without the title block."""
    from review_sentiment import names

    vocabulary = read_json(data.vocabulary_path)["tokens"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "legacy.keras"
    export_legacy_serving_model(core, point, vocabulary, int(data.manifest["sequence_length"]), ngrams).save(
        path
    )
    return {names.ARTIFACT_KERAS: path}
