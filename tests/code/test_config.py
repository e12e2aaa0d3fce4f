"""Unit tests of the one configuration surface: typed defaults, overridden by the environment."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from review_sentiment import config
from review_sentiment.config import Settings


def test_defaults_without_any_environment() -> None:
    settings = Settings.from_env({})
    assert settings.reviews_path == config.PROJECT_ROOT / "data/womens_clothing_reviews.csv.gz"
    assert settings.artifact_root == config.PROJECT_ROOT / ".local" / "artifacts"
    assert settings.tracking_uri == f"sqlite:///{config.PROJECT_ROOT / '.local/mlflow/mlflow.db'}"
    assert settings.experiment_name == "sentiment-retrain"
    assert settings.model_name == "customer-sentiment-analysis"
    assert settings.mlflow_ui_url == "http://127.0.0.1:5000"
    assert settings.schedule == "0 3 * * 1"


def test_project_root_is_the_repository() -> None:
    assert (config.PROJECT_ROOT / "pyproject.toml").is_file()
    assert (config.NLTK_DATA_DIR / "corpora" / "stopwords" / "english").is_file()


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("REVIEWS_PATH", "/data/r.csv.gz", "reviews_path", Path("/data/r.csv.gz")),
        ("SENTIMENT_ARTIFACT_ROOT", "/srv/art", "artifact_root", Path("/srv/art")),
        ("MLFLOW_TRACKING_URI", "http://mlflow:5000", "tracking_uri", "http://mlflow:5000"),
        ("SENTIMENT_EXPERIMENT", "exp", "experiment_name", "exp"),
        ("SENTIMENT_MODEL_NAME", "m", "model_name", "m"),
        ("MLFLOW_UI_URL", "https://ml.example.org/", "mlflow_ui_url", "https://ml.example.org"),
        ("SENTIMENT_SCHEDULE", "@daily", "schedule", "@daily"),
        ("SENTIMENT_DATA_ROOTS", "/a:/b", "data_roots", (Path("/a"), Path("/b"))),
        ("SENTIMENT_LOCK_URI", "postgresql://h/db", "lock_uri", "postgresql://h/db"),
        ("SENTIMENT_LOCK_TIMEOUT", "12.5", "lock_timeout_s", 12.5),
        ("SENTIMENT_SOURCE", "postgres:reviews", "source", "postgres:reviews"),
        ("SENTIMENT_AIRFLOW_UI_URL", "https://af.example.org/", "airflow_ui_url", "https://af.example.org"),
        ("SENTIMENT_NOTIFY_TO", "a@x.org, b@y.org,", "notify_to", ("a@x.org", "b@y.org")),
        ("SENTIMENT_SMTP_CONN_ID", "mail", "smtp_conn_id", "mail"),
    ],
)
def test_each_variable_overrides_its_field(variable: str, value: str, field: str, expected: object) -> None:
    settings = Settings.from_env({variable: value})
    assert getattr(settings, field) == expected
    defaults = Settings.from_env({})
    # The data roots and the source default to the review file (or its folder): they follow it.
    derived = {"data_roots", "source"} if variable == "REVIEWS_PATH" else set()
    others = {f.name for f in dataclasses.fields(Settings)} - {field} - derived
    assert {n: getattr(settings, n) for n in others} == {n: getattr(defaults, n) for n in others}


def test_data_roots_default_to_the_review_files_folder() -> None:
    assert Settings.from_env({"REVIEWS_PATH": "/data/r.csv.gz"}).data_roots == (Path("/data"),)


def test_a_lock_timeout_that_is_not_a_number_is_named() -> None:
    with pytest.raises(ValueError, match="SENTIMENT_LOCK_TIMEOUT must be a number of seconds, got 'soon'"):
        Settings.from_env({"SENTIMENT_LOCK_TIMEOUT": "soon"})


def test_the_lock_is_a_file_under_the_artifact_root_unless_a_uri_is_set(tmp_path: Path) -> None:
    local = Settings.from_env({"SENTIMENT_ARTIFACT_ROOT": str(tmp_path)})
    assert local.lock_target() == str(tmp_path.resolve() / "locks" / f"{local.model_name}.lock")
    shared = Settings.from_env({"SENTIMENT_LOCK_URI": "postgresql://h/db"})
    assert shared.lock_target() == "postgresql://h/db"


def test_empty_tracking_uri_falls_back_to_the_embedded_store() -> None:
    assert Settings.from_env({"MLFLOW_TRACKING_URI": ""}).tracking_uri == config.default_tracking_uri()


def test_reads_os_environ_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTIMENT_MODEL_NAME", "from-environ")
    assert Settings.from_env().model_name == "from-environ"
    monkeypatch.delenv("SENTIMENT_MODEL_NAME")
    assert Settings.from_env().model_name == config.REGISTERED_MODEL_NAME


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings.from_env({}).model_name = "x"  # type: ignore[misc]


def test_importing_config_has_no_side_effects(tmp_path: Path) -> None:
    # The DAG imports this module at parse time: no heavy imports and no files or folders made.
    code = (
        "import sys, review_sentiment.config as c; "
        "heavy = {'pandas', 'tensorflow', 'keras', 'mlflow', 'nltk', 'airflow'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
    assert list(tmp_path.iterdir()) == []
