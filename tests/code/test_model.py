"""Unit tests of the grid (hyperparameters as data) and the Keras model factory."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from review_sentiment.model import (
    ARCHITECTURES,
    CLASSIC_GRID,
    CNN_WIDTHS,
    GRIDS,
    GridPoint,
    build_model,
    grid_point_json_schema,
    resolve_grid,
)


def test_seed_grid_is_the_notebooks_three_points() -> None:
    points = resolve_grid("classic")
    assert [(p.embedding_dim, p.batch_size) for p in points] == [(32, 32), (64, 64), (128, 128)]
    for point in points:
        assert point.max_epochs == 50
        assert point.patience == 2
        assert point.architecture == "average_pooling"
        assert point.dense_units == 6
        assert point.dropout == 0.0
    assert len({p.name for p in points}) == 3


def test_default_grid_tries_what_helps_on_review_text() -> None:
    points = resolve_grid("default")
    assert resolve_grid("classic") == [GridPoint.from_dict(p) for p in CLASSIC_GRID]  # still a named grid
    assert {p.architecture for p in points} >= {"tfidf_mlp", "tfidf", "cnn"}
    assert all(p.class_weight > 1 for p in points)  # the rare not-recommended class counts more
    assert any(p.rating_weight > 0 for p in points)
    assert len(points) <= 4  # the full run's 300-second budget


def test_explicit_grid_and_generated_names() -> None:
    points = resolve_grid([{"embedding_dim": 16, "batch_size": 8}, {"name": "wide", "embedding_dim": 256}])
    assert [p.name for p in points] == ["dim16-batch8", "wide"]
    assert points[1].batch_size == 64  # unspecified keys take the seed's defaults


def test_to_dict_round_trips() -> None:
    point = GridPoint(name="x", embedding_dim=8, dropout=0.25, learning_rate=0.01)
    assert GridPoint.from_dict(point.to_dict()) == point


def test_unknown_keys_are_refused_and_named() -> None:
    with pytest.raises(ValueError, match=r"unknown grid keys \['epochs', 'lr'\]; known: .*max_epochs"):
        resolve_grid([{"embedding_dim": 32, "epochs": 5, "lr": 0.1}])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"embedding_dim": 0}, r"embedding_dim must be in \[1, 1024\], got 0"),
        ({"batch_size": -32}, r"batch_size must be in \[1, 8192\], got -32"),
        ({"max_epochs": 0}, r"max_epochs must be in \[1, 500\], got 0"),
        ({"dense_units": 0}, r"dense_units must be in \[1, 1024\], got 0"),
        ({"patience": -1}, r"patience must be in \[0, 50\], got -1"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ({"dropout": -0.1}, r"dropout must be in \[0, 1\), got -0.1"),
        ({"learning_rate": 0}, r"learning_rate must be in \(0, 1\], got 0"),
        ({"learning_rate": float("nan")}, r"learning_rate must be in \(0, 1\], got nan"),
        ({"architecture": "lstm"}, "architecture must be one of .*got 'lstm'"),
        ({"embedding_dim": "64"}, "embedding_dim must be an integer, got '64'"),
        ({"batch_size": 64.5}, "batch_size must be an integer, got 64.5"),
        ({"max_epochs": True}, "max_epochs must be an integer, got True"),
        ({"learning_rate": "0.01"}, "learning_rate must be a number, got '0.01'"),
        ({"dropout": None}, "dropout must be a number, got None"),
        ({"name": ""}, "name must be a non-empty string of .*, got ''"),
        ({"batch_size": 10_000}, r"batch_size must be in \[1, 8192\], got 10000"),  # the form's bound too
        ({"name": "a b"}, "name must be a non-empty string of"),
        ({"name": "x" * 65}, "name must be at most 64 characters, got 65"),
    ],
)
def test_bad_values_are_a_value_error_naming_the_field(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_grid([{"name": "p", **change}])


def test_every_bad_value_is_reported_at_once() -> None:
    with pytest.raises(ValueError, match="grid point 'p'") as caught:
        GridPoint(name="p", embedding_dim=0, patience=-1, dropout="high")
    for fragment in (
        "embedding_dim must be in [1, 1024]",
        "patience must be in [0, 50]",
        "dropout must be a number",
    ):
        assert fragment in str(caught.value)


def test_numpy_numbers_are_accepted() -> None:
    point = GridPoint(name="np", embedding_dim=np.int64(16), learning_rate=np.float32(0.01))
    assert point.embedding_dim == 16


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match=r"names must be unique, got \['a', 'b', 'a'\]"):
        resolve_grid([{"name": "a"}, {"name": "b", "embedding_dim": 8}, {"name": "a", "embedding_dim": 16}])


@pytest.mark.parametrize(
    ("grid", "message"),
    [("nope", r"unknown grid 'nope'; named grids: \['classic', 'default'\]"), ([], "the grid is empty")],
)
def test_unknown_or_empty_grid_is_refused(grid, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_grid(grid)


def test_named_grids_are_valid() -> None:
    for name in GRIDS:
        assert resolve_grid(name)


def test_trigger_form_schema_covers_exactly_the_grid_fields() -> None:
    schema = grid_point_json_schema()
    assert set(schema["properties"]) == {f.name for f in dataclasses.fields(GridPoint)}
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize(
    ("field", "value"),
    [("batch_size", 8192), ("batch_size", 8193), ("dropout", 0.99), ("dropout", 1.0), ("learning_rate", 0.0),
     ("max_tokens", 2), ("max_tokens", 3), ("rating_weight", 0.0), ("class_weight", 0.0), ("seed", -7)],
)  # fmt: skip
def test_the_form_schema_and_the_dataclass_agree_on_every_bound(field: str, value: float) -> None:
    """One declaration: a value the trigger form accepts is a value the grid point accepts."""
    import jsonschema

    schema = grid_point_json_schema()
    form_ok = jsonschema.Draft7Validator(schema).is_valid({"name": "p", field: value})
    try:
        GridPoint(name="p", **{field: value})
        dataclass_ok = True
    except ValueError:
        dataclass_ok = False
    assert form_ok == dataclass_ok


def test_a_grid_point_round_trips_through_its_logged_json() -> None:
    point = GridPoint.from_dict(dict(GRIDS["default"][0]))
    assert GridPoint.from_json(point.to_json()) == point


@pytest.mark.parametrize(("embedding_dim", "batch_size"), [(32, 32), (64, 64), (128, 128)])
def test_build_model_is_the_seed_architecture(embedding_dim: int, batch_size: int) -> None:
    from keras import layers

    point = GridPoint(name=f"seed-dim{embedding_dim}", embedding_dim=embedding_dim, batch_size=batch_size)
    model = build_model(point, vocab_size=300, sequence_length=20)

    kinds = [type(layer) for layer in model.layers]
    assert kinds == [
        layers.InputLayer,
        layers.Embedding,
        layers.GlobalAveragePooling1D,
        layers.Dense,
        layers.Dense,
    ]
    embedding, hidden, output = model.layers[1], model.layers[3], model.layers[4]
    assert (embedding.input_dim, embedding.output_dim) == (300, embedding_dim)
    assert (hidden.units, hidden.activation.__name__) == (6, "relu")
    assert (output.units, output.activation.__name__) == (1, "sigmoid")
    assert model.input_shape == (None, 20)
    assert model.output_names == ["recommended"]
    assert model.output_shape == (None, 1)
    assert model.optimizer is not None
    assert model.loss == {"recommended": "binary_crossentropy"}


def test_build_model_predicts_one_probability_per_row() -> None:
    model = build_model(GridPoint(name="tiny", embedding_dim=4), vocab_size=10, sequence_length=6)
    x = np.array([[2, 3, 0, 0, 0, 0], [9, 9, 9, 9, 9, 9], [1, 0, 0, 0, 0, 0]], dtype=np.int32)
    probability = model.predict({"tokens": x}, verbose=0)["recommended"]
    assert probability.shape == (3, 1)
    assert ((probability > 0) & (probability < 1)).all()


def test_dropout_adds_a_layer_only_when_asked() -> None:
    from keras import layers

    plain = build_model(GridPoint(name="plain"), vocab_size=10, sequence_length=4)
    dropped = build_model(GridPoint(name="drop", dropout=0.3), vocab_size=10, sequence_length=4)
    assert not any(isinstance(layer, layers.Dropout) for layer in plain.layers)
    assert [layer.rate for layer in dropped.layers if isinstance(layer, layers.Dropout)] == [0.3]


@pytest.mark.parametrize(
    ("architecture", "inputs", "outputs"),
    [
        ("cnn", {"tokens"}, {"recommended"}),
        ("bigru", {"tokens"}, {"recommended"}),
        ("tfidf", {"ngrams"}, {"recommended"}),
        ("tfidf_mlp", {"ngrams"}, {"recommended"}),
        ("ensemble", {"tokens", "ngrams"}, {"recommended", "recommended_sequence", "recommended_ngrams"}),
    ],
)
def test_architectures_declare_their_inputs_and_heads(
    architecture: str, inputs: set[str], outputs: set[str]
) -> None:
    point = GridPoint(
        name=architecture, architecture=architecture, embedding_dim=4, conv_filters=4, dense_units=4
    )
    model = build_model(point, vocab_size=50, sequence_length=8, ngram_features=30)
    assert {i.name for i in model.inputs} == inputs
    assert set(model.output_names) == outputs
    with_rating = build_model(
        GridPoint(
            name="r",
            architecture=architecture,
            embedding_dim=4,
            conv_filters=4,
            dense_units=4,
            rating_weight=0.5,
        ),
        vocab_size=50,
        sequence_length=8,
        ngram_features=30,
    )
    assert set(with_rating.output_names) == outputs | {"rating"}


def test_every_architecture_has_an_encoder_for_each_input_it_reads() -> None:
    from review_sentiment.model import _NGRAM_ENCODERS, _SEQUENCE_ENCODERS

    for architecture in ARCHITECTURES:
        point = GridPoint(name=architecture, architecture=architecture)
        assert (architecture in _SEQUENCE_ENCODERS) == point.uses_tokens, architecture
        assert (architecture in _NGRAM_ENCODERS) == point.uses_ngrams, architecture
    assert set(_SEQUENCE_ENCODERS) | set(_NGRAM_ENCODERS) == set(ARCHITECTURES)


def test_cnn_convolutions_follow_cnn_widths_in_order() -> None:
    """The serving fast path reads the ``conv<width>`` kernels in ``CNN_WIDTHS`` order."""
    from keras import layers

    point = GridPoint(name="c", architecture="cnn", embedding_dim=4, conv_filters=3, dense_units=4)
    model = build_model(point, vocab_size=50, sequence_length=8)
    convs = [layer for layer in model.layers if isinstance(layer, layers.Conv1D)]
    assert [(c.name, c.kernel_size[0]) for c in convs] == [(f"conv{w}", w) for w in CNN_WIDTHS]
    assert model.get_layer("conv").output.shape[-1] == 3 * len(CNN_WIDTHS)


def test_max_tokens_caps_the_embedding() -> None:
    model = build_model(GridPoint(name="cap", max_tokens=40), vocab_size=20000, sequence_length=8)
    assert model.get_layer("embedding").input_dim == 40


def test_ngram_architectures_need_the_ngram_size() -> None:
    with pytest.raises(ValueError, match="needs the n-gram vocabulary size"):
        build_model(GridPoint(name="t", architecture="tfidf"), vocab_size=50, sequence_length=8)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_tokens": 2}, r"max_tokens must be in \[3, 1e\+06\], got 2"),
        ({"class_weight": 0.0}, r"class_weight must be in \(0, 100\], got 0.0"),
        ({"rating_weight": -1.0}, r"rating_weight must be in \[0, 100\], got -1.0"),
        ({"conv_filters": 0}, r"conv_filters must be in \[1, 1024\], got 0"),
        ({"architecture": "transformer"}, "architecture must be one of"),
    ],
)
def test_new_grid_fields_are_validated(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GridPoint(name="x", **change)
