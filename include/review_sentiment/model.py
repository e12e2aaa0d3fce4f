"""The hyperparameter grid (declared once, as data) and the Keras model factory."""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

ARCHITECTURES = ("average_pooling",)


@dataclass(frozen=True)
class GridPoint:
    """One model configuration: one mapped Airflow task, one MLflow run.

    The defaults are the seed's: Embedding -> GlobalAveragePooling1D -> Dense(6, relu) ->
    Dense(1, sigmoid), Adam, up to 50 epochs with early stopping after 2 idle epochs.
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

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.name, str) or not self.name:
            problems.append(f"name must be a non-empty string, got {self.name!r}")
        if self.architecture not in ARCHITECTURES:
            problems.append(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        # Grids arrive as JSON (CLI, DAG params): a "64" or 64.5 must be a ValueError naming the
        # field, not a TypeError from a comparison below or a crash deep inside Keras.
        mistyped = set()
        for name in ("embedding_dim", "batch_size", "max_epochs", "patience", "dense_units", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                mistyped.add(name)
                problems.append(f"{name} must be an integer, got {value!r}")
        for name in ("learning_rate", "dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                mistyped.add(name)
                problems.append(f"{name} must be a number, got {value!r}")
        for name in ("embedding_dim", "batch_size", "max_epochs", "dense_units"):
            if name not in mistyped and getattr(self, name) < 1:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        if "patience" not in mistyped and self.patience < 0:
            problems.append(f"patience must be >= 0, got {self.patience}")
        if "dropout" not in mistyped and not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if "learning_rate" not in mistyped and not self.learning_rate > 0:
            problems.append(f"learning_rate must be positive, got {self.learning_rate}")
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
        return f"dim={self.embedding_dim} batch={self.batch_size}"


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
        },
    }


# The seed notebook's grid: embedding dim paired with batch size.
SEED_GRID: tuple[dict[str, Any], ...] = tuple(
    {"name": f"seed-dim{d}", "embedding_dim": d, "batch_size": d} for d in (32, 64, 128)
)
GRIDS: dict[str, tuple[dict[str, Any], ...]] = {"seed": SEED_GRID, "default": SEED_GRID}
DEFAULT_GRID = "default"


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


def build_model(point: GridPoint, vocab_size: int, sequence_length: int) -> Any:
    """The Keras model for ``point``; compiled, ready to fit."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(sequence_length,), dtype="int32", name="tokens")
    x = layers.Embedding(vocab_size, point.embedding_dim, name="embedding")(inputs)
    x = layers.GlobalAveragePooling1D(name="average")(x)
    if point.dropout:
        x = layers.Dropout(point.dropout, seed=point.seed)(x)
    x = layers.Dense(point.dense_units, activation="relu", name="hidden")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="recommended")(x)
    model = keras.Model(inputs, outputs, name=point.name.replace("=", "").replace(" ", "_"))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=point.learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    return model
