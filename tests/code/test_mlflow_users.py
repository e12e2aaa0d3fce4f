"""review_sentiment.mlflow_users (the mlflow-init job): its settings, which grants it makes, its
error lines and exit codes. Against a real MLflow with the auth app:
tests/integration/test_mlflow_users_on_server.py and tests/stack/test_mlflow_auth.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from review_sentiment import mlflow_users
from review_sentiment.mlflow_users import (
    GRANTS,
    Login,
    MlflowAuthError,
    SettingsError,
    UserSettings,
    grants_to_make,
    one_line,
    root_cause,
)
from tests.support.servers import free_port

ENV = {
    "MLFLOW_TRACKING_URI": "http://mlflow:5000/",
    "MLFLOW_ADMIN_USERNAME": "mlflow-admin",
    "MLFLOW_ADMIN_PASSWORD": "a" * 48,
    "MLFLOW_SERVICE_USERNAME": "airflow",
    "MLFLOW_SERVICE_PASSWORD": "s" * 48,
}


def test_settings_from_the_environment() -> None:
    settings = UserSettings.from_env(ENV)
    assert settings.tracking_uri == "http://mlflow:5000"
    assert settings.admin == Login("mlflow-admin", "a" * 48)
    assert settings.service == Login("airflow", "s" * 48)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"MLFLOW_SERVICE_PASSWORD": ""}, "MLFLOW_SERVICE_PASSWORD unset or empty"),
        ({"MLFLOW_SERVICE_USERNAME": None}, "MLFLOW_SERVICE_USERNAME unset or empty"),
        ({"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}, "http(s) URL"),
        ({"MLFLOW_SERVICE_USERNAME": "mlflow-admin"}, "must differ from MLFLOW_ADMIN_USERNAME"),
        ({"MLFLOW_SERVICE_PASSWORD": "short"}, "shorter than 12 characters"),
    ],
)
def test_bad_settings_are_named(change: dict[str, str | None], message: str) -> None:
    env = {key: value for key, value in {**ENV, **change}.items() if value is not None}
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        UserSettings.from_env(env)


def test_a_login_becomes_mlflow_host_creds() -> None:
    creds = Login("airflow", "p:w").host_creds("http://mlflow:5000")
    assert (creds.host, creds.username, creds.password) == ("http://mlflow:5000", "airflow", "p:w")


def test_a_new_user_gets_every_grant() -> None:
    # With no grant MLflow resolves a user's permission to default_permission (READ here).
    assert grants_to_make({("experiment", "*"): "READ", ("registered_model", "*"): "READ"}) == list(GRANTS)
    assert grants_to_make({}) == list(GRANTS)
    assert {grant[0] for grant in GRANTS} == {"experiment", "registered_model"}
    assert all(grant[1:] == ("*", "MANAGE") for grant in GRANTS)


def test_grants_in_place_are_left_alone() -> None:
    assert grants_to_make({("experiment", "*"): "MANAGE", ("registered_model", "*"): "MANAGE"}) == []


def test_a_lower_or_denied_grant_is_made_again() -> None:
    effective = {("experiment", "*"): "EDIT", ("registered_model", "*"): "DENY"}
    assert grants_to_make(effective) == list(GRANTS)
    assert grants_to_make({("experiment", "*"): "MANAGE", ("registered_model", "*"): "EDIT"}) == [GRANTS[1]]


def test_one_line() -> None:
    assert one_line("INVALID_PARAMETER_VALUE: Password must be\n  at least 12.") == (
        "INVALID_PARAMETER_VALUE: Password must be at least 12."
    )
    assert len(one_line("x " * 500)) == 300


def _chained() -> MlflowAuthError:
    """An error raised from a socket error, as MLflow wraps requests' wrapping of urllib3's."""
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as exc:
            raise MlflowAuthError("API request failed with exception HTTPConnectionPool(...)") from exc
    except MlflowAuthError as outer:
        return outer


def test_root_cause_is_the_innermost_error() -> None:
    assert str(root_cause(_chained())) == "[Errno 111] Connection refused"
    alone = ValueError("alone")
    assert root_cause(alone) is alone


def test_bad_settings_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert mlflow_users.main({**ENV, "MLFLOW_SERVICE_PASSWORD": ""}) == mlflow_users.EXIT_BAD_SETTINGS
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("mlflow_users: error: MLFLOW_SERVICE_PASSWORD unset or empty")


def test_an_unreachable_mlflow_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert mlflow_users.main({**ENV, "MLFLOW_TRACKING_URI": url}) == mlflow_users.EXIT_MLFLOW
    err = capsys.readouterr().err
    assert err == f"mlflow_users: error: cannot reach MLflow at {url}: [Errno 111] Connection refused\n"


def test_the_command_writes_one_line_on_stderr() -> None:
    """``python -m`` as compose runs it: importing MLflow's auth client adds no warning to stderr."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    result = subprocess.run(
        [sys.executable, "-m", "review_sentiment.mlflow_users"],
        env={**env, **ENV, "MLFLOW_ADMIN_PASSWORD": ""},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == mlflow_users.EXIT_BAD_SETTINGS
    assert result.stderr == (
        "mlflow_users: error: MLFLOW_ADMIN_PASSWORD unset or empty (deploy/gen-secrets.sh --add-missing)\n"
    )
    assert result.stdout == ""
