"""Models and artifacts load without running arbitrary code.

A static check over the code that loads things back (include/, dags/, plugins/): no pickle-family
module, no ``allow_pickle=True``, no ``safe_mode=False`` or unsafe Keras deserialisation, no
``yaml.load``/``eval``/``exec``, and the MLflow model is logged from code (a file path), not as a
pickled object. Then the registered model's own loader refuses a ``.keras`` file with a Lambda
layer, while the same model without it loads.
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

from review_sentiment.config import PROJECT_ROOT

SOURCES = sorted(
    p
    for folder in ("include/review_sentiment", "dags", "plugins")
    for p in (PROJECT_ROOT / folder).rglob("*.py")
    if ".ipynb_checkpoints" not in p.parts
)
UNSAFE_MODULES = {"pickle", "cPickle", "cloudpickle", "dill", "joblib", "shelve", "marshal", "_pickle"}
UNSAFE_KEYWORDS = {("allow_pickle", True), ("safe_mode", False)}
UNSAFE_CALLS = {"eval", "exec", "enable_unsafe_deserialization", "yaml.load", "torch.load"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _problems(source: str, name: str) -> list[str]:
    tree = ast.parse(source, filename=name)
    found = []
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [
                f"{where} imports {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            found.append(f"{where} imports from {node.module}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in UNSAFE_CALLS or name.rsplit(".", 1)[-1] == "enable_unsafe_deserialization":
                found.append(f"{where} calls {name}")
            for keyword in node.keywords:
                value = keyword.value
                if isinstance(value, ast.Constant) and (keyword.arg, value.value) in UNSAFE_KEYWORDS:
                    found.append(f"{where} passes {keyword.arg}={value.value}")
                if keyword.arg == "python_model" and not (
                    isinstance(value, ast.Constant | ast.JoinedStr)
                    or (isinstance(value, ast.Call) and _dotted(value.func) == "str")
                ):
                    found.append(f"{where} logs python_model as an object (pickled), not a code path")
    return found


def test_the_scan_covers_the_loading_code() -> None:
    names = {p.name for p in SOURCES}
    assert {"pyfunc_model.py", "train.py", "tokenize.py", "register.py", "sentiment_retrain.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_no_code_runs_when_loading(path: Path) -> None:
    assert _problems(path.read_text(), str(path.relative_to(PROJECT_ROOT))) == []


@pytest.mark.parametrize(
    ("snippet", "problem"),
    [
        ("import pickle", "imports pickle"),
        ("from joblib import load", "imports from joblib"),
        ("np.load(p, allow_pickle=True)", "passes allow_pickle=True"),
        ("keras.saving.load_model(p, safe_mode=False)", "passes safe_mode=False"),
        ("keras.config.enable_unsafe_deserialization()", "calls keras.config.enable_unsafe_deserialization"),
        ("yaml.load(text)", "calls yaml.load"),
        ("eval(text)", "calls eval"),
        (
            "mlflow.pyfunc.log_model(name='m', python_model=SentimentModel())",
            "logs python_model as an object",
        ),
    ],
)
def test_the_scan_finds_each_unsafe_pattern(snippet: str, problem: str) -> None:
    found = _problems(snippet + "\n", "probe.py")
    assert len(found) == 1, found
    assert problem in found[0]


def _context(tmp_path: Path, keras_path: Path) -> SimpleNamespace:
    from review_sentiment.artifacts import write_json
    from review_sentiment.cleaning_rules import PreprocessSettings
    from review_sentiment.names import ARTIFACT_DECISION, ARTIFACT_KERAS, ARTIFACT_PREPROCESS
    from review_sentiment.preprocess import settings_payload

    preprocess = write_json(tmp_path / "preprocess.json", settings_payload(PreprocessSettings.notebook()))
    decision = write_json(tmp_path / "decision.json", {"threshold": 0.5})
    return SimpleNamespace(
        artifacts={
            ARTIFACT_KERAS: str(keras_path),
            ARTIFACT_PREPROCESS: str(preprocess),
            ARTIFACT_DECISION: str(decision),
        }
    )


def _save(tmp_path: Path, name: str, with_lambda: bool) -> Path:
    import keras

    from review_sentiment.tokenize import make_vectorizer

    # As the registered model is: text in, its vectoriser inside.
    inputs = keras.Input(shape=(), dtype="string")
    x = make_vectorizer(["", "[UNK]", "love"], 4)(inputs)
    x = keras.layers.Embedding(3, 2)(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    if with_lambda:
        x = keras.layers.Lambda(lambda t: t * 2.0)(x)  # code stored in the file: must not load
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    path = tmp_path / f"{name}.keras"
    keras.Model(inputs, outputs).save(path)
    return path


def test_the_model_loader_refuses_a_lambda_layer(tmp_path: Path) -> None:
    import pandas as pd

    from review_sentiment.pyfunc_model import SentimentModel

    # The same loader and artifacts, without the Lambda layer: loads and scores one row.
    plain = SentimentModel()
    plain.load_context(_context(tmp_path, _save(tmp_path, "plain", with_lambda=False)))
    assert len(plain.predict(None, pd.DataFrame({"Review Text": ["love it"]}))) == 1

    with pytest.raises(ValueError, match=r"Lambda.*arbitrary code execution|safe_mode"):
        SentimentModel().load_context(_context(tmp_path, _save(tmp_path, "lambda", with_lambda=True)))


def _save_core(tmp_path: Path, with_lambda: bool) -> tuple[Path, Path]:
    """A tiny core as train logs it (input ``ngrams``, output ``recommended``) and its features."""
    import keras

    from review_sentiment.artifacts import write_json
    from review_sentiment.serving import features_payload

    ngrams = {
        "tokens": ["[UNK]", "love", "not", "not love"],
        "idf_weights": [0.0, 1.0, 1.5, 2.0],
        "ngrams": 2,
    }
    inputs = {"ngrams": keras.Input(shape=(4,), sparse=True, name="ngrams")}
    x = inputs["ngrams"]
    if with_lambda:
        x = keras.layers.Lambda(lambda t: t * 2.0)(x)  # code stored in the file: must not load
    outputs = keras.layers.Dense(1, activation="sigmoid", name="recommended")(x)
    path = tmp_path / ("lambda.keras" if with_lambda else "core.keras")
    keras.Model(inputs, outputs).save(path)
    return path, write_json(tmp_path / "features.json", features_payload("tfidf", None, None, ngrams))


def test_the_core_loader_unpickles_nothing_and_refuses_a_lambda_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pickle

    import pandas as pd

    from review_sentiment.names import ARTIFACT_CORE, ARTIFACT_FEATURES
    from review_sentiment.pyfunc_model import SentimentModel

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model loader unpickled something")

    core, features = _save_core(tmp_path, with_lambda=False)
    context = _context(tmp_path, core)
    context.artifacts.update({ARTIFACT_CORE: str(core), ARTIFACT_FEATURES: str(features)})
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    model = SentimentModel()
    model.load_context(context)
    out = model.predict(None, pd.DataFrame({"Review Text": ["love it, love it", ""]}))
    assert out["probability"].between(0, 1).all()
    assert out["probability"].nunique() == 2

    lambda_core, _ = _save_core(tmp_path, with_lambda=True)
    context.artifacts[ARTIFACT_CORE] = str(lambda_core)
    with pytest.raises(ValueError, match=r"Lambda.*arbitrary code execution|safe_mode"):
        SentimentModel().load_context(context)
