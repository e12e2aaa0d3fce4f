"""The hyperparameter grid (declared once, as data) and the Keras model factory."""

from __future__ import annotations

import json
import numbers
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from review_sentiment.errors import GridError

# average_pooling is the classic text classifier's; the others read word sequences (cnn, bigru),
# a TF-IDF bag of word 1-2-grams (tfidf linear, tfidf_mlp), or both as a two-branch ensemble.
ARCHITECTURES = ("average_pooling", "cnn", "bigru", "tfidf", "tfidf_mlp", "ensemble")
SEQUENCE_ARCHITECTURES = frozenset({"average_pooling", "cnn", "bigru", "ensemble"})
NGRAM_ARCHITECTURES = frozenset({"tfidf", "tfidf_mlp", "ensemble"})
# Input and output names of every model: train, the pyfunc and the tests rely on them.
TOKENS_INPUT = "tokens"
NGRAMS_INPUT = "ngrams"
TEXT_INPUT = "text"
RECOMMENDED_OUTPUT = "recommended"
RATING_OUTPUT = "rating"
# Conv1D kernel sizes (words) of the cnn and ensemble readers, in their Concatenate's order.
CNN_WIDTHS = (2, 3, 4)


NAME_PATTERN = "^[A-Za-z0-9_.=-]+$"
NAME_MAX_LENGTH = 64


@dataclass(frozen=True)
class Bound:
    """The type and range of one numeric grid field: the one declaration that both the
    dataclass check and the trigger form's JSON schema read."""

    kind: type[int] | type[float]
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False

    def problem(self, name: str, value: Any) -> str | None:
        """Why ``value`` is not allowed for field ``name``, or None."""
        numeric = numbers.Integral if self.kind is int else numbers.Real
        if isinstance(value, bool) or not isinstance(value, numeric):
            return f"{name} must be {'an integer' if self.kind is int else 'a number'}, got {value!r}"
        low_ok = self.minimum is None or (
            value > self.minimum if self.exclusive_minimum else value >= self.minimum
        )
        high_ok = self.maximum is None or (
            value < self.maximum if self.exclusive_maximum else value <= self.maximum
        )
        if low_ok and high_ok:
            return None
        low = "(-inf" if self.minimum is None else f"{'(' if self.exclusive_minimum else '['}{self.minimum:g}"
        high = "inf)" if self.maximum is None else f"{self.maximum:g}{')' if self.exclusive_maximum else ']'}"
        return f"{name} must be in {low}, {high}, got {value!r}"

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer" if self.kind is int else "number"}
        if self.minimum is not None:
            schema["exclusiveMinimum" if self.exclusive_minimum else "minimum"] = self.minimum
        if self.maximum is not None:
            schema["exclusiveMaximum" if self.exclusive_maximum else "maximum"] = self.maximum
        return schema


def _bounded(default: float, bound: Bound) -> Any:
    return field(default=default, metadata={"bound": bound})


@dataclass(frozen=True)
class GridPoint:
    """One model configuration: one mapped Airflow task, one MLflow run.

    The defaults are the classic text classifier's: Embedding -> GlobalAveragePooling1D ->
    Dense(6, relu) -> Dense(1, sigmoid) over a 3,000-token vocabulary, Adam, up to 50 epochs
    with early stopping after 2 idle epochs. Each numeric field's type and range is its
    ``Bound``, checked here and published as the trigger form's JSON schema.

    Attributes:
        max_tokens: Sequence vocabulary size used (the most frequent tokens of the shared one).
        conv_filters: Filters per kernel size (cnn, ensemble) or GRU units (bigru).
        class_weight: Loss weight of not-recommended reviews (the rare class); 1 = unweighted.
        rating_weight: Loss weight of an auxiliary head that predicts the star rating from the
            text during training only (0 = off). The rating is a finer label than the
            recommendation; it is never an input.
    """

    name: str
    embedding_dim: int = _bounded(64, Bound(int, 1, 1024))
    batch_size: int = _bounded(64, Bound(int, 1, 8192))
    max_epochs: int = _bounded(50, Bound(int, 1, 500))
    patience: int = _bounded(2, Bound(int, 0, 50))
    architecture: str = "average_pooling"
    dense_units: int = _bounded(6, Bound(int, 1, 1024))
    learning_rate: float = _bounded(1e-3, Bound(float, 0, 1, exclusive_minimum=True))
    dropout: float = _bounded(0.0, Bound(float, 0, 1, exclusive_maximum=True))
    seed: int = _bounded(42, Bound(int))
    max_tokens: int = _bounded(3000, Bound(int, 3, 1_000_000))  # padding, out-of-vocabulary, a word
    conv_filters: int = _bounded(64, Bound(int, 1, 1024))
    class_weight: float = _bounded(1.0, Bound(float, 0, 100, exclusive_minimum=True))
    rating_weight: float = _bounded(0.0, Bound(float, 0, 100))

    def __post_init__(self) -> None:
        problems = []
        # Grids arrive as JSON (CLI, DAG params): a "64" or 64.5 must be a ValueError naming the
        # field, not a TypeError from a comparison or a crash deep inside Keras.
        if not isinstance(self.name, str) or not re.match(NAME_PATTERN, self.name):
            problems.append(f"name must be a non-empty string of {NAME_PATTERN}, got {self.name!r}")
        elif len(self.name) > NAME_MAX_LENGTH:
            problems.append(f"name must be at most {NAME_MAX_LENGTH} characters, got {len(self.name)}")
        if self.architecture not in ARCHITECTURES:
            problems.append(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        for f in fields(self):
            bound = f.metadata.get("bound")
            problem = bound.problem(f.name, getattr(self, f.name)) if bound else None
            if problem:
                problems.append(problem)
        if problems:
            raise GridError(f"grid point {self.name!r}: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GridPoint:
        """Build from a plain dict (a DAG param, a JSON file), refusing unknown keys.

        Raises:
            GridError: unknown keys or values out of their bounds.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise GridError(f"unknown grid keys {unknown}; known: {sorted(known)}")
        if "name" not in data:
            data = {**data, "name": f"dim{data.get('embedding_dim', 64)}-batch{data.get('batch_size', 64)}"}
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        """The grid point as logged with its MLflow run: read back by :meth:`from_json`."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GridPoint:
        return cls.from_dict(json.loads(text))

    @property
    def label(self) -> str:
        """Short name for the Airflow UI (``map_index_template``)."""
        if self.architecture == "average_pooling":
            return f"dim={self.embedding_dim} batch={self.batch_size}"
        return self.name

    @property
    def uses_tokens(self) -> bool:
        return self.architecture in SEQUENCE_ARCHITECTURES

    @property
    def uses_ngrams(self) -> bool:
        return self.architecture in NGRAM_ARCHITECTURES


def grid_point_json_schema() -> dict[str, Any]:
    """JSON schema of one grid point, for the DAG's trigger-form validation (from the bounds)."""
    properties: dict[str, Any] = {
        "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX_LENGTH, "pattern": NAME_PATTERN},
        "architecture": {"type": "string", "enum": list(ARCHITECTURES)},
    }
    for f in fields(GridPoint):
        if "bound" in f.metadata:
            properties[f.name] = f.metadata["bound"].json_schema()
    return {"type": "object", "additionalProperties": False, "properties": properties}


# The classic classifier's grid: embedding dim paired with batch size.
CLASSIC_GRID: tuple[dict[str, Any], ...] = tuple(
    {"name": f"classic-dim{d}", "embedding_dim": d, "batch_size": d} for d in (32, 64, 128)
)
# The default grid, chosen on the validation split of the real data (see README, "Model
# quality"). All read the DAG's default preprocessing (title, negations and stopwords kept,
# Porter stems) and the n-gram input's two blocks (review, title alone), weight the rare
# not-recommended class twice, and most learn the star rating as a second target. A 256-unit
# MLP was on par with 64 units on validation (0.9697 against 0.9695) and took three times as
# long; a 128-filter ensemble of the MLP and the CNN was no better and took five times as long:
# options, not defaults.
_WEIGHTED = {"class_weight": 2.0, "learning_rate": 1e-3}
_MLP64 = {"architecture": "tfidf_mlp", "dense_units": 64, "dropout": 0.5, "batch_size": 64, **_WEIGHTED}
DEFAULT_GRID: tuple[dict[str, Any], ...] = (
    {"name": "mlp64-rating", **_MLP64, "rating_weight": 0.5},
    {"name": "mlp64-rating1", **_MLP64, "rating_weight": 1.0},
    {"name": "tfidf-linear", "architecture": "tfidf", "batch_size": 64, **_WEIGHTED, "learning_rate": 3e-3},
    {"name": "cnn64-rating", "architecture": "cnn", "embedding_dim": 64, "conv_filters": 64,
     "dense_units": 32, "dropout": 0.3, "max_tokens": 20000, "batch_size": 128, "rating_weight": 0.5,
     **_WEIGHTED},
)  # fmt: skip
GRIDS: dict[str, tuple[dict[str, Any], ...]] = {"classic": CLASSIC_GRID, "default": DEFAULT_GRID}
STEPS_PER_EXECUTION = 32


def resolve_grid(grid: str | list[dict[str, Any]]) -> list[GridPoint]:
    """A named grid or an explicit list of configs, validated.

    Raises:
        GridError: unknown grid name, unknown keys, bad values, or duplicate names.
    """
    if isinstance(grid, str):
        if grid not in GRIDS:
            raise GridError(f"unknown grid {grid!r}; named grids: {sorted(GRIDS)}")
        grid = list(GRIDS[grid])
    points = [GridPoint.from_dict(dict(p)) for p in grid]
    if not points:
        raise GridError("the grid is empty")
    names = [p.name for p in points]
    if len(set(names)) != len(names):
        raise GridError(f"grid point names must be unique, got {names}")
    return points


def build_model(
    point: GridPoint,
    vocab_size: int,
    sequence_length: int,
    ngram_features: int | None = None,
) -> Any:
    """The Keras model for ``point``; compiled, ready to fit.

    Inputs: ``tokens`` (int sequences, ids >= ``point.max_tokens`` already mapped to OOV) for
    sequence architectures; ``ngrams`` (a sparse, L2-normalised TF-IDF vector of
    ``ngram_features`` word 1-2-grams) for n-gram ones. Outputs: ``recommended`` (a probability)
    and, with ``rating_weight``, ``rating`` (the scaled star rating). Each branch (sequence,
    n-grams) reads one input through the encoder its architecture names in ``_SEQUENCE_ENCODERS``
    or ``_NGRAM_ENCODERS``; the heads sit on the branches' last hidden features.
    """
    import keras

    if point.uses_ngrams and not ngram_features:
        raise ValueError(f"architecture {point.architecture!r} needs the n-gram vocabulary size")
    inputs: dict[str, Any] = {}
    branches: dict[str, Any] = {}  # branch name -> its last hidden features
    if point.uses_tokens:
        inputs[TOKENS_INPUT] = keras.Input(shape=(sequence_length,), dtype="int32", name=TOKENS_INPUT)
        branches["sequence"] = _sequence_branch(
            point, inputs[TOKENS_INPUT], min(vocab_size, point.max_tokens)
        )
    if point.uses_ngrams:
        inputs[NGRAMS_INPUT] = keras.Input(shape=(ngram_features,), sparse=True, name=NGRAMS_INPUT)
        branches["ngrams"] = _NGRAM_ENCODERS[point.architecture](point, inputs[NGRAMS_INPUT])
    heads = _Heads()
    heads.recommendation(branches)
    if point.rating_weight:
        heads.rating(branches, point.rating_weight)
    model = keras.Model(inputs, heads.outputs, name=point.name.replace("=", "").replace(" ", "_"))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=point.learning_rate),
        loss=heads.losses,
        loss_weights=heads.weights,
        metrics={RECOMMENDED_OUTPUT: [keras.metrics.AUC(name="auc")]},
        # Several batches per graph call: the same updates in the same order, but far less
        # Python overhead per step, which dominates for these small models (classic grid 1.4x faster).
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return model


def _sequence_branch(point: GridPoint, tokens: Any, vocab_size: int) -> Any:
    """Embedding -> the architecture's encoder -> (dropout) -> the ``hidden`` Dense layer."""
    from keras import layers

    embedded = layers.Embedding(
        vocab_size, point.embedding_dim, mask_zero=point.architecture == "bigru", name="embedding"
    )(tokens)
    x = _SEQUENCE_ENCODERS[point.architecture](point, embedded)
    if point.dropout:
        x = layers.Dropout(point.dropout, seed=point.seed)(x)
    return layers.Dense(point.dense_units, activation="relu", name="hidden")(x)


def _average(point: GridPoint, embedded: Any) -> Any:
    """The classic classifier's mean of the word vectors."""
    from keras import layers

    return layers.GlobalAveragePooling1D(name="average")(embedded)


def _spatial_dropout(point: GridPoint, embedded: Any) -> Any:
    """Whole embedding channels dropped (the readers of word order only)."""
    from keras import layers

    return layers.SpatialDropout1D(point.dropout, seed=point.seed)(embedded) if point.dropout else embedded


def _bigru(point: GridPoint, embedded: Any) -> Any:
    """A bidirectional GRU of ``conv_filters`` units over the (masked) sequence."""
    from keras import layers

    return layers.Bidirectional(layers.GRU(point.conv_filters), name="bigru")(
        _spatial_dropout(point, embedded)
    )


def _convolutions(point: GridPoint, embedded: Any) -> Any:
    """Phrase detectors of ``CNN_WIDTHS`` words, each max-pooled over the review, side by side
    (the serving fast path reads the ``conv<width>`` layers in this order)."""
    from keras import layers

    embedded = _spatial_dropout(point, embedded)
    convs = [
        layers.GlobalMaxPooling1D()(
            layers.Conv1D(point.conv_filters, width, activation="relu", name=f"conv{width}")(embedded)
        )
        for width in CNN_WIDTHS
    ]
    return layers.Concatenate(name="conv")(convs)


def _linear(point: GridPoint, bag: Any) -> Any:
    """The bag itself: the head on it is a logistic regression, trained by Keras."""
    return bag


def _ngram_hidden(point: GridPoint, bag: Any) -> Any:
    """A hidden layer over the bag (sparse matmul), shared with the rating head."""
    from keras import layers

    x = layers.Dense(point.dense_units, activation="relu", name="ngram_hidden")(bag)
    return layers.Dropout(point.dropout, seed=point.seed)(x) if point.dropout else x


# Each architecture's encoder of its branch's input (see ARCHITECTURES, and the *_ARCHITECTURES
# sets that say which inputs it reads).
_SEQUENCE_ENCODERS = {
    "average_pooling": _average,
    "cnn": _convolutions,
    "bigru": _bigru,
    "ensemble": _convolutions,
}
_NGRAM_ENCODERS = {"tfidf": _linear, "tfidf_mlp": _ngram_hidden, "ensemble": _ngram_hidden}


class _Heads:
    """The model's outputs, with the loss and loss weight of each."""

    def __init__(self) -> None:
        self.outputs: dict[str, Any] = {}
        self.losses: dict[str, Any] = {}
        self.weights: dict[str, float] = {}

    def _add(self, name: str, output: Any, loss: str, weight: float) -> None:
        self.outputs[name], self.losses[name], self.weights[name] = output, loss, weight

    def recommendation(self, branches: dict[str, Any]) -> None:
        """P(recommended) from one branch, or the mean of one head per branch."""
        from keras import layers

        if len(branches) == 1:
            (features,) = branches.values()
            output = layers.Dense(1, activation="sigmoid", name=RECOMMENDED_OUTPUT)(features)
            self._add(RECOMMENDED_OUTPUT, output, "binary_crossentropy", 1.0)
            return
        # An ensemble in one model: each branch has its own output and loss, so each learns as it
        # would alone (a joint logit lets the faster branch starve the other), and the served
        # probability is their mean.
        for name, features in branches.items():
            head = f"{RECOMMENDED_OUTPUT}_{name}"
            output = layers.Dense(1, activation="sigmoid", name=head)(features)
            self._add(head, output, "binary_crossentropy", 1.0 / len(branches))
        mean = layers.Average(name=RECOMMENDED_OUTPUT)(list(self.outputs.values()))
        self._add(RECOMMENDED_OUTPUT, mean, "binary_crossentropy", 1.0)

    def rating(self, branches: dict[str, Any], weight: float) -> None:
        """The scaled star rating, a training signal from all branches' features."""
        from keras import layers

        features = list(branches.values())
        shared = features[0] if len(features) == 1 else layers.Concatenate(name="rating_features")(features)
        self._add(RATING_OUTPUT, layers.Dense(1, name=RATING_OUTPUT)(shared), "mse", weight)
