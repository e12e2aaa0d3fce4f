"""review_sentiment.mlflow_users (compose's mlflow-init) against a real ``mlflow server`` running
MLflow's basic-auth app with the project's deploy/mlflow/basic_auth.ini (READ for every logged-in
user): the first run creates the service user and grants it MANAGE on every experiment and model,
a second changes nothing, a wrong admin password exits 1 with the line that says what to check, a
changed service password is set again, and a lower grant is replaced.

The test process holds MLFLOW_TRACKING_USERNAME/PASSWORD of the service user, as a task runner or
a Kubernetes pod would: the job must act as the admin of its MLFLOW_ADMIN_* settings regardless.
One server (SQLite stores in a temp folder) for the module; each test has its own service user.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from mlflow.utils.rest_utils import http_request

from review_sentiment import mlflow_users
from review_sentiment.config import PROJECT_ROOT
from review_sentiment.mlflow_users import AdminClient, Login
from tests.support.servers import MlflowServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN = Login("mlflow-admin", "admin-password-0123456789")


@pytest.fixture(scope="module")
def server() -> Iterator[MlflowServer]:
    server = MlflowServer(
        "sqlite:///mlflow.db",
        extra_args=("--app-name", "basic-auth"),
        env={
            "MLFLOW_AUTH_CONFIG_PATH": "basic_auth.ini",
            "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN.username,
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN.password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-flask-secret-key",
        },
    )
    shutil.copy(PROJECT_ROOT / "deploy" / "mlflow" / "basic_auth.ini", server.root / "basic_auth.ini")
    try:
        yield server.start(timeout=120)
    finally:
        server.cleanup()


@pytest.fixture(autouse=True)
def _tracking_login_of_the_service_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "airflow")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-admin-password")


def _env(server: MlflowServer, service: Login, admin: Login = ADMIN) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": server.url,
        "MLFLOW_ADMIN_USERNAME": admin.username,
        "MLFLOW_ADMIN_PASSWORD": admin.password,
        "MLFLOW_SERVICE_USERNAME": service.username,
        "MLFLOW_SERVICE_PASSWORD": service.password,
    }


def _run(server: MlflowServer, service: Login, capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert mlflow_users.main(_env(server, service)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out.splitlines()


def _admins_experiment(server: MlflowServer, name: str) -> str:
    response = http_request(
        ADMIN.host_creds(server.url), "/api/2.0/mlflow/experiments/create", "POST", json={"name": name}
    )
    assert response.status_code == 200, response.text
    return response.json()["experiment_id"]


def _tag_status(server: MlflowServer, login: Login, experiment_id: str) -> int:
    """HTTP status of a write (an experiment tag) by ``login`` on an experiment it did not make."""
    body = {"experiment_id": experiment_id, "key": "writer", "value": login.username}
    return http_request(
        login.host_creds(server.url), "/api/2.0/mlflow/experiments/set-experiment-tag", "POST", json=body,
        max_retries=0,
    ).status_code  # fmt: skip


def test_first_run_creates_and_grants_and_a_second_changes_nothing(
    server: MlflowServer, capsys: pytest.CaptureFixture[str]
) -> None:
    service = Login("airflow-first", "service-password-0123")
    experiment_id = _admins_experiment(server, "made-by-the-admin")
    assert _run(server, service, capsys) == [
        "mlflow_users: created the MLflow user 'airflow-first'",
        "mlflow_users: granted 'airflow-first' MANAGE on every experiment ('*')",
        "mlflow_users: granted 'airflow-first' MANAGE on every registered_model ('*')",
    ]
    assert _tag_status(server, service, experiment_id) == 200
    assert _run(server, service, capsys) == [
        "mlflow_users: the MLflow user 'airflow-first' logs in and has its grants"
    ]


def test_a_wrong_admin_password_exits_1_with_the_line_to_check(
    server: MlflowServer, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = Login(ADMIN.username, "not-the-first-password")
    env = _env(server, Login("airflow-never", "service-password-0123"), admin=wrong)
    assert mlflow_users.main(env) == mlflow_users.EXIT_MLFLOW
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("mlflow_users: error: MLflow refused the admin login 'mlflow-admin'")
    assert "MLFLOW_ADMIN_USERNAME/PASSWORD" in err
    assert "MLflow keeps the admin's first password" in err


def test_a_changed_service_password_is_set_again(
    server: MlflowServer, capsys: pytest.CaptureFixture[str]
) -> None:
    old = Login("airflow-rotated", "old-service-password-0123")
    new = Login(old.username, "new-service-password-0123")
    _run(server, old, capsys)
    assert _run(server, new, capsys) == [
        "mlflow_users: set the password of the MLflow user 'airflow-rotated' to .env's"
    ]
    client = AdminClient(server.url, ADMIN)
    assert client.logs_in(new)
    assert not client.logs_in(old)


def test_a_lower_grant_is_replaced(server: MlflowServer, capsys: pytest.CaptureFixture[str]) -> None:
    service = Login("airflow-lowered", "service-password-0123")
    experiment_id = _admins_experiment(server, "made-by-the-admin-too")
    _run(server, service, capsys)
    client = AdminClient(server.url, ADMIN)
    client.revoke_user_permission(service.username, "experiment", "*")
    client.grant_user_permission(service.username, "experiment", "*", "READ")
    assert _tag_status(server, service, experiment_id) == 403
    assert _run(server, service, capsys) == [
        "mlflow_users: granted 'airflow-lowered' MANAGE on every experiment ('*')"
    ]
    assert client.get_user_permission(service.username, "experiment", "*").permission == "MANAGE"
    assert _tag_status(server, service, experiment_id) == 200
