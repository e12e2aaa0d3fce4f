"""The hyperparameter grid (declared once, as data) and the Keras model factory."""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

# average_pooling is the seed's; the others read word sequences (cnn, bigru), a TF-IDF bag of
# word 1-2-grams (tfidf linear, tfidf_mlp), or both as a two-branch ensemble (ensemble).
ARCHITECTURES = ("average_pooling", "cnn", "bigru", "tfidf", "tfidf_mlp", "ensemble")
SEQUENCE_ARCHITECTURES = frozenset({"average_pooling", "cnn", "bigru", "ensemble"})
NGRAM_ARCHITECTURES = frozenset({"tfidf", "tfidf_mlp", "ensemble"})
# Input and output names of every model: train, the pyfunc and the tests rely on them.
TOKENS_INPUT = "tokens"
NGRAMS_INPUT = "ngrams"
TEXT_INPUT = "text"
RECOMMENDED_OUTPUT = "recommended"
RATING_OUTPUT = "rating"


@dataclass(frozen=True)
class GridPoint:
    """One model configuration: one mapped Airflow task, one MLflow run.

    The defaults are the seed's: Embedding -> GlobalAveragePooling1D -> Dense(6, relu) ->
    Dense(1, sigmoid) over a 3,000-token vocabulary, Adam, up to 50 epochs with early stopping
    after 2 idle epochs.

    Attributes beyond the seed's:
        max_tokens: Sequence vocabulary size used (the most frequent tokens of the shared one).
        conv_filters: Filters per kernel size (cnn, ensemble) or GRU units (bigru).
        class_weight: Loss weight of not-recommended reviews (the rare class); 1 = unweighted.
        rating_weight: Loss weight of an auxiliary head that predicts the star rating from the
            text during training only (0 = off). The rating is a finer label than the
            recommendation; it is never an input.
    """

    name: str
    embedding_dim: int = 64
    batch_size: int = 64
    max_epochs: int = 50
    patience: int = 2
    architecture: str = "average_pooling"
    dense_units: int = 6
    learning_rate: float = 1e-3
    dropout: float = 0.0
    seed: int = 42
    max_tokens: int = 3000
    conv_filters: int = 64
    class_weight: float = 1.0
    rating_weight: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.name, str) or not self.name:
            problems.append(f"name must be a non-empty string, got {self.name!r}")
        if self.architecture not in ARCHITECTURES:
            problems.append(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        # Grids arrive as JSON (CLI, DAG params): a "64" or 64.5 must be a ValueError naming the
        # field, not a TypeError from a comparison below or a crash deep inside Keras.
        mistyped = set()
        for name in (
            "embedding_dim", "batch_size", "max_epochs", "patience", "dense_units", "seed", "max_tokens",
            "conv_filters",
        ):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                mistyped.add(name)
                problems.append(f"{name} must be an integer, got {value!r}")
        for name in ("learning_rate", "dropout", "class_weight", "rating_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                mistyped.add(name)
                problems.append(f"{name} must be a number, got {value!r}")
        for name in ("embedding_dim", "batch_size", "max_epochs", "dense_units", "conv_filters"):
            if name not in mistyped and getattr(self, name) < 1:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        if "patience" not in mistyped and self.patience < 0:
            problems.append(f"patience must be >= 0, got {self.patience}")
        if "dropout" not in mistyped and not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if "learning_rate" not in mistyped and not self.learning_rate > 0:
            problems.append(f"learning_rate must be positive, got {self.learning_rate}")
        if "max_tokens" not in mistyped and self.max_tokens < 3:
            problems.append(
                f"max_tokens must be >= 3 (padding, out-of-vocabulary, a word), got {self.max_tokens}"
            )
        if "class_weight" not in mistyped and not self.class_weight > 0:
            problems.append(f"class_weight must be positive, got {self.class_weight}")
        if "rating_weight" not in mistyped and not self.rating_weight >= 0:
            problems.append(f"rating_weight must be >= 0, got {self.rating_weight}")
        if problems:
            raise ValueError(f"grid point {self.name!r}: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GridPoint:
        """Build from a plain dict (a DAG param, a JSON file), refusing unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown grid keys {unknown}; known: {sorted(known)}")
        if "name" not in data:
            data = {**data, "name": f"dim{data.get('embedding_dim', 64)}-batch{data.get('batch_size', 64)}"}
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

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
    """JSON schema of one grid point, for the DAG's trigger-form validation."""
    integer = {"type": "integer", "minimum": 1}
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_.=-]+$"},
            "embedding_dim": {**integer, "maximum": 1024},
            "batch_size": {**integer, "maximum": 8192},
            "max_epochs": {**integer, "maximum": 500},
            "patience": {"type": "integer", "minimum": 0, "maximum": 50},
            "architecture": {"type": "string", "enum": list(ARCHITECTURES)},
            "dense_units": {**integer, "maximum": 1024},
            "learning_rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
            "seed": {"type": "integer"},
            "max_tokens": {"type": "integer", "minimum": 3, "maximum": 1_000_000},
            "conv_filters": {**integer, "maximum": 1024},
            "class_weight": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
            "rating_weight": {"type": "number", "minimum": 0, "maximum": 100},
        },
    }


# The seed notebook's grid: embedding dim paired with batch size.
SEED_GRID: tuple[dict[str, Any], ...] = tuple(
    {"name": f"seed-dim{d}", "embedding_dim": d, "batch_size": d} for d in (32, 64, 128)
)
# The default grid, chosen on the validation split of the real data (see README, "Model
# quality"). All read the DAG's default preprocessing (title, negations and stopwords kept,
# Porter stems), weight the rare not-recommended class twice, and most learn the star rating
# as a second target. A 128-filter ensemble of the MLP and the CNN was no better on validation
# and took five times as long, so it is an option, not a default.
_WEIGHTED = {"class_weight": 2.0, "learning_rate": 1e-3}
DEFAULT_GRID: tuple[dict[str, Any], ...] = (
    {"name": "mlp256-rating", "architecture": "tfidf_mlp", "dense_units": 256, "dropout": 0.5,
     "batch_size": 128, "rating_weight": 1.0, **_WEIGHTED},
    {"name": "mlp64-rating", "architecture": "tfidf_mlp", "dense_units": 64, "dropout": 0.5,
     "batch_size": 64, "rating_weight": 0.5, **_WEIGHTED},
    {"name": "tfidf-linear", "architecture": "tfidf", "batch_size": 64, **_WEIGHTED, "learning_rate": 3e-3},
    {"name": "cnn64-rating", "architecture": "cnn", "embedding_dim": 64, "conv_filters": 64,
     "dense_units": 32, "dropout": 0.3, "max_tokens": 20000, "batch_size": 128, "rating_weight": 0.5,
     **_WEIGHTED},
)  # fmt: skip
GRIDS: dict[str, tuple[dict[str, Any], ...]] = {"seed": SEED_GRID, "default": DEFAULT_GRID}
STEPS_PER_EXECUTION = 32


def resolve_grid(grid: str | list[dict[str, Any]]) -> list[GridPoint]:
    """A named grid or an explicit list of configs, validated.

    Raises:
        ValueError: unknown grid name, unknown keys, bad values, or duplicate names.
    """
    if isinstance(grid, str):
        if grid not in GRIDS:
            raise ValueError(f"unknown grid {grid!r}; named grids: {sorted(GRIDS)}")
        grid = list(GRIDS[grid])
    points = [GridPoint.from_dict(dict(p)) for p in grid]
    if not points:
        raise ValueError("the grid is empty")
    names = [p.name for p in points]
    if len(set(names)) != len(names):
        raise ValueError(f"grid point names must be unique, got {names}")
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
    and, with ``rating_weight``, ``rating`` (the scaled star rating).
    """
    import keras
    from keras import layers

    if point.uses_ngrams and not ngram_features:
        raise ValueError(f"architecture {point.architecture!r} needs the n-gram vocabulary size")
    vocab_size = min(vocab_size, point.max_tokens)
    inputs: dict[str, Any] = {}
    branches: dict[str, Any] = {}  # branch name -> its last hidden features
    if point.uses_tokens:
        tokens = inputs[TOKENS_INPUT] = keras.Input(
            shape=(sequence_length,), dtype="int32", name=TOKENS_INPUT
        )
        embedded = layers.Embedding(
            vocab_size, point.embedding_dim, mask_zero=point.architecture == "bigru", name="embedding"
        )(tokens)
        if point.architecture == "average_pooling":
            x = layers.GlobalAveragePooling1D(name="average")(embedded)
        else:
            if point.dropout:
                embedded = layers.SpatialDropout1D(point.dropout, seed=point.seed)(embedded)
            if point.architecture == "bigru":
                x = layers.Bidirectional(layers.GRU(point.conv_filters), name="bigru")(embedded)
            else:  # cnn, ensemble: phrase detectors of 2-4 words, max over the review
                convs = [
                    layers.GlobalMaxPooling1D()(
                        layers.Conv1D(point.conv_filters, width, activation="relu", name=f"conv{width}")(
                            embedded
                        )
                    )
                    for width in (2, 3, 4)
                ]
                x = layers.Concatenate(name="conv")(convs)
        if point.dropout:
            x = layers.Dropout(point.dropout, seed=point.seed)(x)
        branches["sequence"] = layers.Dense(point.dense_units, activation="relu", name="hidden")(x)
    if point.uses_ngrams:
        bag = inputs[NGRAMS_INPUT] = keras.Input(shape=(ngram_features,), sparse=True, name=NGRAMS_INPUT)
        if point.architecture == "tfidf":  # linear: logistic regression, trained by Keras
            branches["ngrams"] = bag
        else:  # a hidden layer over the bag (sparse matmul), shared with the rating head
            x = layers.Dense(point.dense_units, activation="relu", name="ngram_hidden")(bag)
            if point.dropout:
                x = layers.Dropout(point.dropout, seed=point.seed)(x)
            branches["ngrams"] = x
    outputs: dict[str, Any] = {}
    losses: dict[str, Any] = {}
    weights: dict[str, float] = {}
    if len(branches) == 1:
        (features,) = branches.values()
        outputs[RECOMMENDED_OUTPUT] = layers.Dense(1, activation="sigmoid", name=RECOMMENDED_OUTPUT)(features)
    else:
        # An ensemble in one model: each branch has its own output and loss, so each learns as it
        # would alone (a joint logit lets the faster branch starve the other), and the served
        # probability is their mean.
        for name, features in branches.items():
            head = f"{RECOMMENDED_OUTPUT}_{name}"
            outputs[head] = layers.Dense(1, activation="sigmoid", name=head)(features)
            losses[head], weights[head] = "binary_crossentropy", 1.0 / len(branches)
        outputs[RECOMMENDED_OUTPUT] = layers.Average(name=RECOMMENDED_OUTPUT)(list(outputs.values()))
    losses[RECOMMENDED_OUTPUT], weights[RECOMMENDED_OUTPUT] = "binary_crossentropy", 1.0
    if point.rating_weight:
        features = list(branches.values())
        shared = features[0] if len(features) == 1 else layers.Concatenate(name="rating_features")(features)
        outputs[RATING_OUTPUT] = layers.Dense(1, name=RATING_OUTPUT)(shared)
        losses[RATING_OUTPUT], weights[RATING_OUTPUT] = "mse", point.rating_weight
    model = keras.Model(inputs, outputs, name=point.name.replace("=", "").replace(" ", "_"))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=point.learning_rate),
        loss=losses,
        loss_weights=weights,
        metrics={RECOMMENDED_OUTPUT: [keras.metrics.AUC(name="auc")]},
        # Several batches per graph call: the same updates in the same order, but far less
        # Python overhead per step, which dominates for these small models (seed grid 1.4x faster).
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return model
