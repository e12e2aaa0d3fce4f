"""review_sentiment.mlflow_users (the mlflow-init job): its settings, which grants it makes, its
error lines and exit codes. Against a real MLflow with the auth app: tests/stack/test_mlflow_auth.py."""

from __future__ import annotations

import base64

import pytest

from review_sentiment import mlflow_users
from review_sentiment.mlflow_users import (
    GRANTS,
    Login,
    SettingsError,
    UserSettings,
    error_message,
    grants_to_make,
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


def test_basic_auth_header() -> None:
    header = Login("airflow", "p:w").header()
    assert header.startswith("Basic ")
    assert base64.b64decode(header.removeprefix("Basic ")) == b"airflow:p:w"


def _row(resource_type: str, permission: str, pattern: str = "*") -> dict[str, str]:
    return {"resource_type": resource_type, "resource_pattern": pattern, "permission": permission,
            "role_name": "__user_2__", "workspace": "default"}  # fmt: skip


def test_a_new_user_gets_every_grant() -> None:
    assert grants_to_make([]) == [(grant, False) for grant in GRANTS]
    assert {grant[0] for grant in GRANTS} == {"experiment", "registered_model"}
    assert all(grant[1:] == ("*", "MANAGE") for grant in GRANTS)


def test_grants_in_place_are_left_alone() -> None:
    assert grants_to_make([_row("experiment", "MANAGE"), _row("registered_model", "MANAGE")]) == []


def test_a_lower_grant_is_replaced_and_grants_on_one_resource_do_not_count() -> None:
    rows = [
        _row("experiment", "READ"),
        _row("registered_model", "MANAGE", pattern="customer-sentiment-analysis"),
    ]
    assert grants_to_make(rows) == [(GRANTS[0], True), (GRANTS[1], False)]


def test_error_message_is_one_line() -> None:
    body = (
        b'{"error_code": "INVALID_PARAMETER_VALUE", "message": "Password must be\\n at least 12 characters."}'
    )
    assert error_message(400, body) == "HTTP 400: Password must be at least 12 characters."
    assert error_message(403, b"Permission denied") == "HTTP 403: Permission denied"


def test_bad_settings_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert mlflow_users.main({**ENV, "MLFLOW_SERVICE_PASSWORD": ""}) == mlflow_users.EXIT_BAD_SETTINGS
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("mlflow_users: error: MLFLOW_SERVICE_PASSWORD unset or empty")


def test_an_unreachable_mlflow_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert mlflow_users.main({**ENV, "MLFLOW_TRACKING_URI": url}) == mlflow_users.EXIT_MLFLOW
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"mlflow_users: error: cannot reach MLflow at {url}")
