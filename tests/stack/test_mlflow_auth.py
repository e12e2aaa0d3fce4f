"""MLflow's basic-auth app on the running stack, by raw HTTP against MLflow's REST API: without a
login nothing is read or written (``/health`` excepted), a logged-in user with only the default
READ permission reads but cannot move or delete the ``champion`` alias, and the service user that
mlflow-init made (the login of the DAG's tasks) can. The champion is the one the session's quick
run promoted (``rest_run``); every write here leaves it where it was.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from review_sentiment.config import REGISTERED_MODEL_NAME
from tests.stack.airflow_api import FinishedRun
from tests.stack.conftest import RunningStack

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ALIAS = "/api/2.0/mlflow/registered-models/alias"
USERS = "/api/2.0/mlflow/users"
Auth = tuple[str, str] | None


def _call(stack: RunningStack, method: str, path: str, auth: Auth, **kwargs: Any) -> requests.Response:
    return requests.request(method, stack.stack.mlflow_url + path, auth=auth, timeout=30, **kwargs)


def _champion(stack: RunningStack) -> str:
    """The champion's version, read as the service user."""
    params = {"name": REGISTERED_MODEL_NAME, "alias": "champion"}
    answer = _call(stack, "GET", ALIAS, _service(stack), params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()["model_version"]["version"]


def _admin(stack: RunningStack) -> tuple[str, str]:
    return stack.secrets["MLFLOW_ADMIN_USERNAME"], stack.secrets["MLFLOW_ADMIN_PASSWORD"]


def _service(stack: RunningStack) -> tuple[str, str]:
    return stack.secrets["MLFLOW_SERVICE_USERNAME"], stack.secrets["MLFLOW_SERVICE_PASSWORD"]


@pytest.fixture(scope="module")
def champion(running_stack: RunningStack, rest_run: FinishedRun) -> str:
    assert rest_run.state == "success", rest_run.states()
    return _champion(running_stack)


@pytest.fixture(scope="module")
def reader(running_stack: RunningStack) -> Iterator[tuple[str, str]]:
    """A user the admin makes, granted nothing: the default permission (READ) only."""
    login = (f"reader-{secrets.token_hex(4)}", secrets.token_hex(16))
    made = _call(running_stack, "POST", f"{USERS}/create", _admin(running_stack),
                 json={"username": login[0], "password": login[1]})  # fmt: skip
    assert made.status_code == 200, made.text
    yield login
    gone = _call(
        running_stack, "DELETE", f"{USERS}/delete", _admin(running_stack), json={"username": login[0]}
    )
    assert gone.status_code == 200, gone.text


def test_health_answers_without_a_login(running_stack: RunningStack) -> None:
    answer = _call(running_stack, "GET", "/health", None)
    assert (answer.status_code, answer.text) == (200, "OK")


def test_without_a_login_the_champion_cannot_be_read_set_or_deleted(
    running_stack: RunningStack, champion: str
) -> None:
    body = {"name": REGISTERED_MODEL_NAME, "alias": "champion"}
    for method, kwargs in (("GET", {"params": body}), ("POST", {"json": {**body, "version": "1"}}),
                           ("DELETE", {"json": body})):  # fmt: skip
        answer = _call(running_stack, method, ALIAS, None, **kwargs)
        assert answer.status_code == 401, (method, answer.status_code, answer.text)
        # The browser shows its login prompt on this challenge.
        assert answer.headers["WWW-Authenticate"].startswith("Basic"), method
    wrong = _call(running_stack, "DELETE", ALIAS, (_service(running_stack)[0], "not-the-password"), json=body)
    assert wrong.status_code == 401, wrong.text
    assert _champion(running_stack) == champion


def test_a_reader_cannot_move_or_delete_the_champion(
    running_stack: RunningStack, champion: str, reader: tuple[str, str]
) -> None:
    body = {"name": REGISTERED_MODEL_NAME, "alias": "champion"}
    read = _call(running_stack, "GET", ALIAS, reader, params=body)
    assert read.status_code == 200, read.text
    assert read.json()["model_version"]["version"] == champion
    moved = _call(running_stack, "POST", ALIAS, reader, json={**body, "version": champion})
    assert moved.status_code == 403, moved.text
    deleted = _call(running_stack, "DELETE", ALIAS, reader, json=body)
    assert deleted.status_code == 403, deleted.text
    assert _champion(running_stack) == champion


def test_the_service_user_sets_and_deletes_aliases_without_being_admin(
    running_stack: RunningStack, champion: str
) -> None:
    service = _service(running_stack)
    me = _call(running_stack, "GET", f"{USERS}/current", service)
    assert me.status_code == 200, me.text
    assert me.json()["user"] == {**me.json()["user"], "username": service[0], "is_admin": False}
    # The champion set again on the version it already names: allowed, and no other test sees a change.
    body = {"name": REGISTERED_MODEL_NAME, "alias": "champion"}
    assert _call(running_stack, "POST", ALIAS, service, json={**body, "version": champion}).status_code == 200
    assert _champion(running_stack) == champion
    # Delete rights, on an alias of its own.
    probe = {"name": REGISTERED_MODEL_NAME, "alias": f"auth-probe-{secrets.token_hex(3)}"}
    assert (
        _call(running_stack, "POST", ALIAS, service, json={**probe, "version": champion}).status_code == 200
    )
    deleted = _call(running_stack, "DELETE", ALIAS, service, json=probe)
    assert deleted.status_code == 200, deleted.text
    assert _call(running_stack, "GET", ALIAS, service, params=probe).status_code != 200
    assert _champion(running_stack) == champion
