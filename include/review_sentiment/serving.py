"""The registered model's scoring path: cleaned text -> model inputs -> P(recommended).

Logged with each model: the trained core as a ``.keras`` file (inputs ``tokens``/``ngrams``,
output ``recommended``; loaded with ``safe_mode``) and a JSON description of its inputs (the
sequence vocabulary, the n-gram vocabulary and IDF weights). At load the inputs are rebuilt with
``features`` (the functions tokenize trains on), and the default grid's architectures run as a
numpy forward pass over the core's weights; the others are called through Keras.

Why not Keras end to end: a ``TextVectorization`` n-gram TF-IDF inside the graph scored about
1,200 reviews a second; featurising with Arrow and scipy and a numpy forward pass score more
than ten times that. The CNN's forward pass uses that a 1-D convolution over embeddings is a sum
of per-token projections: ``conv(E[tok])[t] = b + sum_k (E @ W_k)[tok[t + k]]``. The tables
``E @ W_k`` are computed once at load, so scoring is gathers and additions, over each review's
own length rather than the padded one (a window of padding only has a constant value).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from review_sentiment.model import CNN_WIDTHS, NGRAMS_INPUT, RECOMMENDED_OUTPUT, TOKENS_INPUT

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

FEATURES_FORMAT = 1
_CNN_CHUNK = 128  # reviews per gather batch: keeps the (chunk, length, filters) block in cache
_KERAS_BATCH = 1024


def features_payload(
    architecture: str,
    vocabulary: Sequence[str] | None,
    sequence_length: int | None,
    ngrams: dict[str, Any] | None,
) -> dict[str, Any]:
    """What the model's inputs are made from, as JSON: logged beside the core.

    Args:
        architecture: The grid point's architecture (which forward pass applies).
        vocabulary: The sequence vocabulary already cut to the point's ``max_tokens``, or None.
        sequence_length: Length of the token-id sequences, or None.
        ngrams: ``tokenize.fit_ngrams``' payload (with its title block, if any), or None.
    """
    payload: dict[str, Any] = {"format": FEATURES_FORMAT, "architecture": architecture}
    if vocabulary is not None:
        payload[TOKENS_INPUT] = {"vocabulary": list(vocabulary), "sequence_length": int(sequence_length or 0)}
    if ngrams is not None:
        payload[NGRAMS_INPUT] = ngrams
    return payload


def inference_core(core: Any) -> Any:
    """The trained core with only the ``recommended`` output (no rating head, no optimizer)."""
    import keras

    return keras.Model(core.input, core.output[RECOMMENDED_OUTPUT], name=f"{core.name}_core")


class TextFeatures:
    """The core's inputs from cleaned texts, as tokenize computed them for training."""

    def __init__(self, payload: dict[str, Any]) -> None:
        from review_sentiment.features import ReviewNgrams, SequenceEncoder

        if payload.get("format") != FEATURES_FORMAT:
            raise ValueError(f"unknown features format {payload.get('format')!r}; expected {FEATURES_FORMAT}")
        self.architecture = str(payload["architecture"])
        tokens = payload.get(TOKENS_INPUT)
        self.sequences = (
            SequenceEncoder(tokens["vocabulary"], tokens["sequence_length"]) if tokens is not None else None
        )
        ngrams = payload.get(NGRAMS_INPUT)
        self.ngrams = ReviewNgrams(ngrams) if ngrams is not None else None

    @property
    def uses_titles(self) -> bool:
        """Whether the inputs include the cleaned title on its own (the n-gram title block)."""
        return self.ngrams is not None and self.ngrams.uses_titles

    def inputs(self, texts: Sequence[str], titles: Sequence[str] | None = None) -> dict[str, Any]:
        """``tokens`` (int32 ids) and/or ``ngrams`` (float32 CSR) of cleaned ``texts`` (and of
        cleaned ``titles``, when :attr:`uses_titles`): ``features.model_inputs``, as training."""
        from review_sentiment.features import model_inputs

        return model_inputs(texts, titles, sequences=self.sequences, ngrams=self.ngrams)


def _sigmoid(logit: np.ndarray) -> np.ndarray:
    import numpy as np

    return (1.0 / (1.0 + np.exp(-logit))).reshape(-1)


class CoreForward:
    """P(recommended) from the core's inputs: numpy for tfidf, tfidf_mlp and cnn, else Keras.

    The numpy passes read the weights of ``model.build_model``'s named layers (dropout is off
    at inference) and agree with Keras to float32 rounding.
    """

    def __init__(self, core: Any, architecture: str) -> None:
        self.architecture = architecture
        self._keras = core
        self._weights: dict[str, list[np.ndarray]] = {}
        numpy_layers = {
            "tfidf": [RECOMMENDED_OUTPUT],
            "tfidf_mlp": ["ngram_hidden", RECOMMENDED_OUTPUT],
            "cnn": ["embedding", *(f"conv{w}" for w in CNN_WIDTHS), "hidden", RECOMMENDED_OUTPUT],
        }.get(architecture)
        if numpy_layers is None:
            return
        for name in numpy_layers:
            self._weights[name] = [w.astype("float32") for w in core.get_layer(name).get_weights()]
        if architecture == "cnn":
            self._prepare_cnn()

    @classmethod
    def load(cls, path: str | Path, architecture: str) -> CoreForward:
        """Load the core from ``.keras`` (``safe_mode``: no code runs) for ``architecture``."""
        from review_sentiment.console import import_keras

        import_keras()
        import keras

        return cls(keras.saving.load_model(path, compile=False, safe_mode=True), architecture)

    def _prepare_cnn(self) -> None:
        import numpy as np

        (embedding,) = self._weights["embedding"]
        kernels = [self._weights[f"conv{w}"] for w in CNN_WIDTHS]
        filters = kernels[0][0].shape[2]
        depth = max(CNN_WIDTHS)
        # tables[k][token] = the token's contribution at offset k to every filter of every width
        tables = np.zeros((depth, embedding.shape[0], filters * len(CNN_WIDTHS)), dtype=np.float32)
        for j, (kernel, _) in enumerate(kernels):
            for k in range(kernel.shape[0]):
                tables[k][:, j * filters : (j + 1) * filters] = embedding @ kernel[k]
        self._tables = tables
        self._conv_bias = np.concatenate([bias for _, bias in kernels]).astype(np.float32)
        self._widths = np.repeat(np.asarray(CNN_WIDTHS), filters)

    def probability(self, inputs: dict[str, Any]) -> np.ndarray:
        """P(recommended) per row of ``inputs`` (float64)."""
        import numpy as np

        if self.architecture == "tfidf":
            kernel, bias = self._weights[RECOMMENDED_OUTPUT]
            p = _sigmoid(inputs[NGRAMS_INPUT] @ kernel + bias)
        elif self.architecture == "tfidf_mlp":
            (hidden, hidden_bias), (kernel, bias) = (
                self._weights["ngram_hidden"],
                self._weights[RECOMMENDED_OUTPUT],
            )
            p = _sigmoid(np.maximum(inputs[NGRAMS_INPUT] @ hidden + hidden_bias, 0.0) @ kernel + bias)
        elif self.architecture == "cnn":
            (hidden, hidden_bias), (kernel, bias) = self._weights["hidden"], self._weights[RECOMMENDED_OUTPUT]
            pooled = np.maximum(self._conv_max(inputs[TOKENS_INPUT]) + self._conv_bias, 0.0)
            p = _sigmoid(np.maximum(pooled @ hidden + hidden_bias, 0.0) @ kernel + bias)
        else:
            p = np.asarray(self._keras.predict(inputs, batch_size=_KERAS_BATCH, verbose=0)).reshape(-1)
        return p.astype(np.float64)

    def _conv_max(self, tokens: np.ndarray) -> np.ndarray:
        """Each row's maximum over positions of every filter's pre-bias convolution ("valid")."""
        import numpy as np

        rows, length = tokens.shape
        depth = self._tables.shape[0]
        out = np.empty((rows, self._tables.shape[2]), dtype=np.float32)
        if rows == 0:
            return out
        # Token ids are > 0 up to each review's end, padding (0) after it.
        counts = np.count_nonzero(tokens, axis=1)
        order = np.argsort(counts, kind="stable")
        padded = np.concatenate([tokens, np.zeros((rows, depth - 1), dtype=tokens.dtype)], axis=1)
        for start in range(0, rows, _CNN_CHUNK):
            chunk = order[start : start + _CNN_CHUNK]
            # Window starts up to the longest review of the chunk plus one all-padding window:
            # every other start has the same value as that one (exact, not an approximation).
            starts = int(min(length, counts[chunk].max() + depth))
            ids = padded[chunk, : starts + depth - 1]
            z = self._tables[0][ids[:, :starts]]
            for k in range(1, depth):
                z += self._tables[k][ids[:, k : k + starts]]
            # A width-w filter has no window starting after length - w.
            missing = np.arange(starts)[:, None] > length - self._widths[None, :]
            if missing.any():
                z[:, missing] = -np.inf
            out[chunk] = z.max(axis=1)
        return out
